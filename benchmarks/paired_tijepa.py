"""TI-JEPA on Flickr8k (1,000 photos at 32x32, five captions each, official split): caption-image matching and
retrieval from the fused model, against random-init cross-attention, the frozen encoders with CCA, pixels +
TF-IDF with CCA, and the committed CLIP two-tower numbers.

    python benchmarks/paired_tijepa.py [DATA.npz] [--seeds 0,1] [--jobs 2] [KEY=VALUE ...]  # -> paired-tijepa.json
    python benchmarks/paired_tijepa.py --shapes [--seeds 0,1] [--jobs 2]         # -> paired-tijepa-shapes.json

Recipe tijepa-flickr8k: an I-JEPA ViT on the training images and a masked-token text transformer on the training
captions, both then frozen; cross-attention fuses the caption into the patches, a narrow predictor regresses the
fused target blocks (L2 energy). Every one of the 125 x 625 test (image, caption) pairs is scored by -energy and
by a logistic probe on the fused embedding (trained on matched / mismatched training pairs). ``--shapes`` runs
the recipe on synthetic coloured squares instead whose captions name colour and corner (the text then says what the
masked blocks hold). One thread. Each cell is the mean over the seeds; the match AUC is followed by its spread,
half the range between the lowest and the highest seed.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _args  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "../shared/data/flickr8k_1000_32px_captions.npz"
COLS = ["match_auc", "a2b_r1", "a2b_r5", "a2b_r10", "a2b_medr", "b2a_r1", "b2a_r5", "b2a_r10", "b2a_medr"]
HEADER = ["score", "match AUC", "± (seeds)", "image->text R@1", "R@5", "R@10", "medR", "text->image R@1", "R@5",
          "R@10", "medR"]
DIAG = ("energy_matched", "energy_mismatched", "rankme_fused", "rankme_image_encoder", "final_target_std",
        "final_loss")


def shapes_npz(path: Path, n_train: int = 600, n_test: int = 100, size: int = 16, seed: int = 0) -> Path:
    """Synthetic pairs: a coloured square (3 colours) in one of 4 corners of a size x size image with mild noise;
    two captions name its colour and corner."""
    rng = np.random.default_rng(seed)
    colours = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    half = size // 2
    corners = {"top left": (0, 0), "top right": (0, half), "bottom left": (half, 0), "bottom right": (half, half)}
    n = n_train + n_test
    images = rng.integers(0, 40, (n, size, size, 3)).astype(np.uint8)
    captions = []
    for i in range(n):
        c, k = rng.choice(list(colours)), rng.choice(list(corners))
        r, q = corners[k]
        images[i, r:r + half, q:q + half] = colours[c]
        captions.append([f"a {c} square at the {k}", f"the {k} corner holds a {c} block"])
    np.savez(path, images=images, captions=np.array(captions), split=np.array(["train"] * n_train + ["test"] * n_test))
    return path


def one_seed(data: str, seed: int, overrides: list[str]) -> dict:
    """The recipe's summary for one seed, on one thread (run in this process or a worker)."""
    import torch

    from polyjepa.runner import pretrain

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        return pretrain("tijepa-flickr8k", data=data, out=str(Path(tmp) / "run"), seed=seed,
                        overrides=["train.threads=1", *overrides], echo=lambda *a, **k: None)


def run(data: str, seeds: list[int], overrides: list[str], jobs: int = 1) -> tuple[dict, dict, dict]:
    """Every seed's summary, collected per score; ``jobs`` > 1 runs the seeds in that many worker processes,
    each on one thread (the numbers are those of running them one after the other)."""
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            summaries = list(pool.map(one_seed, [data] * len(seeds), seeds, [overrides] * len(seeds)))
    else:
        summaries = (one_seed(data, seed, overrides) for seed in seeds)
    found: dict[str, list[dict]] = {}
    diags: dict[str, list[dict]] = {}
    first = {}
    for seed, s in zip(seeds, summaries):
        first = first or s
        for key, row in s["results"].items():
            found.setdefault(key, []).append(row)
        for key, d in s["diagnostics"].items():
            diags.setdefault(key, []).append(d)
        r = s["results"]
        parts = ", ".join(f"{k} {v:.0f}s" for k, v in s["seconds_by_part"].items())
        print(f"  seed {seed}: match AUC energy {r['tijepa_energy']['match_auc']:.3f}, centred "
              f"{r['tijepa_energy_centred']['match_auc']:.3f}, probe {r['tijepa_probe']['match_auc']:.3f} "
              f"({s['seconds'] / 60:.1f} min: {parts})", flush=True)
        diags.setdefault("seconds_by_part", []).append(s["seconds_by_part"])
    return found, diags, first


def table(found: dict, names: dict) -> list[list]:
    """One row per score: the mean over seeds of every column, the match AUC followed by half its range."""
    rows = []
    for k, runs in found.items():
        auc = [r["match_auc"] for r in runs]
        means = [float(np.mean([r[c] for r in runs])) for c in COLS]
        rows.append([names.get(k, k), means[0], (max(auc) - min(auc)) / 2, *means[1:]])
    return rows


def print_table(title: str, rows: list[list]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" + "---:|" * (len(HEADER) - 1))
    for r in rows:
        cols = [COLS[0], "spread", *COLS[1:]]
        cells = ["-" if v is None else (f"{v:.1f}" if c.endswith("medr") else f"{v:.3f}") for v, c in zip(r[1:], cols)]
        print("| " + " | ".join([r[0], *cells]) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--shapes", action="store_true", help="run on synthetic coloured squares instead")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own one-thread process")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    _args.data_file(args, DEFAULT_DATA, "Flickr8k file", "../shared/data/flickr8k_1000_32px_captions.npz")
    import torch

    torch.set_num_threads(1)
    from polyjepa.paired.tijepa_run import ROW_NAMES
    from polyjepa.results import save_result

    t0 = time.time()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.shapes:
        shapes(seeds, args.overrides, t0, args.jobs)
        return
    found, diags, first = run(args.data, seeds, args.overrides, args.jobs)
    built = first["built"]
    built_line = (f"image encoder: {built['image_encoder']}, I-JEPA {first['pretraining']['image']['steps']} steps; "
                  f"text encoder: {built['text_encoder']}, masked tokens {first['pretraining']['text']['steps']} "
                  f"steps; fusion: {built['fusion']}; predictor: {built['predictor']}; "
                  f"{built['trainable_parameters']} trainable parameters; {first['training']['tijepa']['steps']} "
                  f"TI-JEPA steps; {first['n_train']} train / {first['n_test']} test photos x "
                  f"{first['captions_per_image']} captions")
    print(built_line)
    print(f"masker: {built['masker']}")
    rows = table(found, ROW_NAMES)
    clip = ROOT / "results" / "paired_flickr8k.json"
    if clip.exists():
        c = json.loads(clip.read_text())
        row = next(r for r in c["rows"] if r[0].startswith("CLIP"))
        rows.append(["CLIP two towers (results/paired_flickr8k.json, 3 seeds)", None, None, *row[1:]])
    print_table(f"Flickr8k 32px, every test (image, caption) pair scored (mean over seeds {args.seeds})", rows)
    save_result("paired-tijepa", columns=HEADER, rows=rows, seconds=time.time() - t0,
                title="Flickr8k 32px: TI-JEPA (energy, fused-embedding probe) vs random-init cross-attention, frozen "
                      "encoders + CCA, pixels + TF-IDF CCA, CLIP",
                notes=[built_line, f"masker: {built['masker']}", *diag_notes(found, diags),
                       f"seeds {args.seeds}, one thread each ({args.jobs} at once)"],
                extra={"per_seed": found, "diagnostics": diags, "built": built})


def diag_notes(found: dict, diags: dict) -> list[str]:
    from polyjepa.paired.tijepa_run import ROW_NAMES

    notes = [f"{key}: " + ", ".join(f"{k} {np.mean([d[k] for d in ds]):.4g}" for k in DIAG if k in ds[0])
             for key, ds in diags.items() if key != "seconds_by_part"]
    notes.append("seconds per part (mean over seeds): " + ", ".join(
        f"{k} {np.mean([d[k] for d in diags['seconds_by_part']]):.0f}" for k in diags["seconds_by_part"][0]))
    notes.append("match AUC per seed: " + "; ".join(f"{ROW_NAMES.get(k, k)} " + ", ".join(f"{r['match_auc']:.3f}"
                                                                                          for r in v)
                                                  for k, v in found.items()))
    return notes


def shapes(seeds: list[int], overrides: list[str], t0: float, jobs: int = 1) -> None:
    """The recipe on synthetic squares, where the caption says what the masked blocks hold."""
    from polyjepa.paired.tijepa_run import ROW_NAMES
    from polyjepa.results import save_result

    with tempfile.TemporaryDirectory() as tmp:
        path = shapes_npz(Path(tmp) / "shapes.npz")   # 2x2 patches: the 8x8 grid of the 32x32 photos
        found, diags, first = run(str(path), seeds, ["data.max_len=12", "image_encoder.patch_size=2", *overrides],
                                  jobs)
    rows = table(found, ROW_NAMES)
    title = "Synthetic squares (600 train / 100 test, 16x16, two captions naming colour and corner)"
    print_table(title, rows)
    save_result("paired-tijepa-shapes", columns=HEADER, rows=rows, seconds=time.time() - t0, title=title,
                notes=[f"image encoder: {first['built']['image_encoder']}; fusion: {first['built']['fusion']}; "
                       f"{first['n_train']} train / {first['n_test']} test images x 2 captions",
                       *diag_notes(found, diags),
                       f"seeds {','.join(map(str, seeds))}, one thread each ({jobs} at once)"],
                extra={"per_seed": found, "diagnostics": diags})

if __name__ == "__main__":
    main()

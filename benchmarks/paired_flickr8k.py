"""CLIP-style image <-> caption retrieval on Flickr8k (1,000 photos at 32x32, five captions each, official
split), against random-init towers and pixels + TF-IDF with CCA.

    python benchmarks/paired_flickr8k.py [DATA.npz] [--epochs 30] [--seeds 0] [KEY=VALUE ...]

Recipe clip-flickr8k: the library's ViT on the image, a small transformer on the caption, one caption
drawn per step. Retrieval is among the 125 test photos and their 625 captions (an image is found at the
rank of its best-placed caption). One thread. No labels: no probes.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _args  # noqa: E402

DEFAULT_DATA = "../shared/data/flickr8k_1000_32px_captions.npz"
COLS = ["a2b_r1", "a2b_r5", "a2b_r10", "a2b_medr", "b2a_r1", "b2a_r5", "b2a_r10", "b2a_medr"]
NAMES = {"trained": "CLIP two towers (trained)", "random_init": "random-init towers",
         "raw_cca": "pixels + TF-IDF, CCA"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    _args.data_file(args, DEFAULT_DATA, "Flickr8k file", "../shared/data/flickr8k_1000_32px_captions.npz")
    import torch

    torch.set_num_threads(1)
    from polyjepa.results import save_result
    from polyjepa.runner import pretrain

    t0 = time.time()
    found: dict[str, list[dict]] = {}
    built = ""
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            s = pretrain("clip-flickr8k", data=args.data, out=str(Path(tmp) / "run"), seed=seed,
                         overrides=[f"train.max_epochs={args.epochs}", "train.threads=1", *args.overrides],
                         progress=False, echo=lambda *a, **k: None)
            if not built:
                from polyjepa.paired.run import load_paired_run

                method, pairs = load_paired_run(Path(tmp) / "run")
                enc = method.tower_a.backbone.encoder
                built = (f"tower a: ViT {enc.depth} blocks x {enc.dim}, patch "
                         f"{method.tower_a.backbone.tokenizer.patch_size} on {tuple(pairs.a.shape[1:])}; tower b: "
                         f"text transformer {len(method.tower_b.blocks)} blocks x {method.tower_b.dim}, vocabulary "
                         f"{method.tower_b.vocab_size}, max_len {method.tower_b.max_len}; shared space "
                         f"{method.proj_dim}; {s['n_train']} train / {s['n_test']} test photos x "
                         f"{pairs.b.shape[1]} captions; {s['steps']} steps; final scale {s['scale']:.1f}")
                print(built)
        for key, name in NAMES.items():
            found.setdefault(name, []).append(s["results"][key])
        print(f"  seed {seed}: image->text r@10 {s['results']['trained']['a2b_r10']:.3f} "
              f"({s['seconds'] / 60:.1f} min)", flush=True)
    rows = [[name] + [float(np.mean([r[c] for r in runs])) for c in COLS] for name, runs in found.items()]
    header = ["representation", "image->text R@1", "R@5", "R@10", "medR", "text->image R@1", "R@5", "R@10", "medR"]
    print(f"\nFlickr8k 32px image <-> caption retrieval, 125 test photos x 5 captions (mean over seeds "
          f"{args.seeds})\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join([r[0]] + [f"{v:.1f}" if "medr" in c else f"{v:.3f}" for v, c in zip(r[1:], COLS)])
              + " |")
    save_result("paired_flickr8k", columns=header, rows=rows, seconds=time.time() - t0,
                title="Flickr8k 32px: CLIP two towers vs random-init towers vs pixels + TF-IDF CCA",
                notes=[built, f"seeds {args.seeds}, {args.epochs} epochs, one thread"], extra={"per_seed": found})


if __name__ == "__main__":
    main()

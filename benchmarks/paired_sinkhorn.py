"""Multi-assignment Sinkhorn vs plain InfoNCE on paired data: retrieval, and how well the shared space keeps each
side's own neighbourhoods (kNN overlap with the tower's space and with the raw features).

    python benchmarks/paired_sinkhorn.py [DATA.npz] [--recipe clip-flickr8k] [--epochs 30] [--seeds 0] [KEY=VALUE ...]

Both objectives train the recipe's towers on the same split with the same steps and seed; the Sinkhorn run is
objective.name=sinkhorn (CLIP's InfoNCE plus the structure term). No video-music pairs are available here, so
this is shown on image-caption (Flickr8k) or paper-graph (CiteSeer, --recipe congrat-citeseer) pairs.
kNN overlap (k = 10, cosine) is measured on the test items: the shared space against the tower's own features
and against the raw features (pixels or adjacency rows, and caption TF-IDF, each SVD-reduced on the training
items). One thread.
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
# each variant replaces the recipe's whole objective section
VARIANTS = {"plain InfoNCE (CLIP loss)": {"name": "clip"},
            "InfoNCE + multi-assignment Sinkhorn": {"name": "sinkhorn"}}
COLS = ["a2b_r1", "a2b_r5", "a2b_r10", "b2a_r1", "b2a_r5", "b2a_r10", "knn_tower_a", "knn_tower_b", "knn_raw_a",
        "knn_raw_b"]


def structure(method, pairs, k: int = 10, seed: int = 0) -> dict:
    """kNN overlap of the shared space with each tower's features and with the raw features (test items)."""
    from polyjepa.paired.baselines import raw_features
    from polyjepa.paired.retrieval import knn_overlap
    from polyjepa.paired.run import embed_side

    test = pairs.test
    a, b = pairs.a[test], pairs.b[test][:, 0]
    raw = raw_features(pairs, seed=seed)
    out = {}
    for side, x, r in (("a", a, raw.a_test), ("b", b, raw.b_test[:, 0])):
        z = embed_side(method, x, side)
        out[f"knn_tower_{side}"] = knn_overlap(z, embed_side(method, x, side, "tower"), k)
        out[f"knn_raw_{side}"] = knn_overlap(z, r, k)
        out[f"knn_tower_raw_{side}"] = knn_overlap(embed_side(method, x, side, "tower"), r, k)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--recipe", default="clip-flickr8k")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    _args.data_file(args, DEFAULT_DATA, "paired data file", DEFAULT_DATA)
    import torch
    import yaml

    torch.set_num_threads(1)
    from polyjepa.config import recipe_dir
    from polyjepa.paired.run import load_paired_run
    from polyjepa.results import save_result
    from polyjepa.runner import pretrain

    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.time()
    found: dict[str, list[dict]] = {}
    built = ""
    for seed in seeds:
        for name, over in VARIANTS.items():
            with tempfile.TemporaryDirectory() as tmp:
                recipe = yaml.safe_load((recipe_dir() / f"{args.recipe}.yaml").read_text())
                recipe["objective"] = dict(over)
                path = Path(tmp) / f"{recipe['name']}.yaml"
                path.write_text(yaml.safe_dump(recipe))
                s = pretrain(str(path), data=args.data, out=str(Path(tmp) / "run"), seed=seed,
                             overrides=[f"train.max_epochs={args.epochs}", "train.threads=1", "eval.baselines=false",
                                        *args.overrides], progress=False, echo=lambda *a, **k: None)
                method, pairs = load_paired_run(Path(tmp) / "run")
                row = {**s["results"]["trained"], **structure(method, pairs, seed=seed), "scale": s["scale"]}
                crit = method.criterion
                if not built:
                    built = (f"{args.recipe}: towers {type(method.tower_a).__name__} (width "
                             f"{method.tower_a.dim}) and {type(method.tower_b).__name__} (width {method.tower_b.dim}); "
                             f"shared space {method.proj_dim}; {s['n_train']} train / {s['n_test']} test items; "
                             f"{s['steps']} steps")
                if hasattr(crit, "n_anchors") and "Sinkhorn:" not in built:
                    built += (f"; Sinkhorn: {crit.n_anchors} anchors per side and space, weight {crit.weight}, "
                              f"eps {crit.sk['eps']}, {crit.sk['iters']} iterations, logit temperature "
                              f"{crit.temperature}")
            found.setdefault(name, []).append(row)
            print(f"  seed {seed} {name}: a2b R@10 {row['a2b_r10']:.3f}, b2a R@10 {row['b2a_r10']:.3f}, kNN overlap "
                  f"tower a/b {row['knn_tower_a']:.3f}/{row['knn_tower_b']:.3f}, raw a/b {row['knn_raw_a']:.3f}/"
                  f"{row['knn_raw_b']:.3f} ({s['seconds'] / 60:.1f} min)", flush=True)
    print(built)
    header = ["objective", "a->b R@1", "R@5", "R@10", "b->a R@1", "R@5", "R@10", "kNN overlap a: tower",
              "b: tower", "a: raw", "b: raw"]
    rows = [[name] + [float(np.mean([r[c] for r in runs])) for c in COLS] for name, runs in found.items()]
    print(f"\n{args.recipe} on {Path(args.data).name} (mean over seeds {args.seeds}; test items; k = 10)\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join([r[0]] + [f"{v:.3f}" for v in r[1:]]) + " |")
    plain, sk = found[list(VARIANTS)[0]], found[list(VARIANTS)[1]]
    notes = [built,
             "Sinkhorn minus plain, R@10 summed over both directions, per seed: " +
             ", ".join(f"{s['a2b_r10'] + s['b2a_r10'] - p['a2b_r10'] - p['b2a_r10']:+.3f}" for s, p in zip(sk, plain)),
             "Sinkhorn minus plain, kNN overlap with the tower (a, b), per seed: " +
             ", ".join(f"({s['knn_tower_a'] - p['knn_tower_a']:+.3f}, {s['knn_tower_b'] - p['knn_tower_b']:+.3f})"
                       for s, p in zip(sk, plain)),
             "Sinkhorn minus plain, kNN overlap with raw features (a, b), per seed: " +
             ", ".join(f"({s['knn_raw_a'] - p['knn_raw_a']:+.3f}, {s['knn_raw_b'] - p['knn_raw_b']:+.3f})"
                       for s, p in zip(sk, plain)),
             f"seeds {args.seeds}, {args.epochs} epochs, one thread"]
    print("\n" + "\n".join(notes[1:]))
    stem = Path(args.data).stem.split("_")[0]
    save_result(f"paired_sinkhorn_{stem}", columns=header, rows=rows, seconds=time.time() - t0,
                title=f"Multi-assignment Sinkhorn vs plain InfoNCE on {stem}: retrieval and structure (kNN overlap)",
                notes=notes, extra={"per_seed": found})


if __name__ == "__main__":
    main()

"""The semi-supervised paired objective on CiteSeer: InfoNCE on every pair plus cross-modal SupCon on a labelled
share, with query-time mixing of the two heads, against plain InfoNCE.

    python benchmarks/paired_semisup.py [DATA.npz] [--epochs 6] [--seeds 0] [--label-fraction 0.25] [KEY=VALUE ...]

Both objectives train the recipe congrat-citeseer's towers (GCN over the citation graph, text transformer over
title + abstract) on the same split, steps and seed; the semi-supervised one sees the labels of a fixed random
share of the training papers. For alpha in 0, 0.5, 1 (z = (1 - alpha) z_pairing + alpha z_label) it reports
node <-> text R@10 among the held-out papers and class precision@10 (the share of a query's 10 nearest
held-out items of the other side that have its class). No video-music pairs are available here, so the
method is shown on paper-graph pairs. One thread.
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

DEFAULT_DATA = "../shared/data/citeseer_tag.npz"
ALPHAS = (0.0, 0.5, 1.0)


def class_precision(sim: np.ndarray, y_q: np.ndarray, y_c: np.ndarray, k: int = 10) -> float:
    """Mean share of each query's k best-scoring candidates that have the query's class."""
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return float((y_c[top] == y_q[:, None]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--label-fraction", type=float, default=0.25)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    _args.data_file(args, DEFAULT_DATA, "CiteSeer file", DEFAULT_DATA)
    import torch
    import yaml

    torch.set_num_threads(1)
    from polyjepa.config import recipe_dir
    from polyjepa.paired.retrieval import retrieval_metrics
    from polyjepa.paired.run import embed_side, load_paired_run
    from polyjepa.results import save_result
    from polyjepa.runner import pretrain

    variants = {"plain InfoNCE (CLIP loss)": {"name": "clip"},
                f"InfoNCE + SupCon on {args.label_fraction:.0%} labels": {"name": "semisup",
                                                                          "label_fraction": args.label_fraction}}
    t0 = time.time()
    found: dict[str, list[dict]] = {}
    built = ""
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name, objective in variants.items():
            with tempfile.TemporaryDirectory() as tmp:
                recipe = yaml.safe_load((recipe_dir() / "congrat-citeseer.yaml").read_text())
                recipe["objective"] = dict(objective)
                path = Path(tmp) / "semisup-citeseer.yaml"
                path.write_text(yaml.safe_dump(recipe))
                s = pretrain(str(path), data=args.data, out=str(Path(tmp) / "run"), seed=seed,
                             overrides=[f"train.max_epochs={args.epochs}", "train.threads=1", "eval.baselines=false",
                                        *args.overrides], progress=False, echo=lambda *a, **k: None)
                method, pairs = load_paired_run(Path(tmp) / "run")
                test = pairs.test
                y = pairs.y[test]
                row = {}
                for alpha in (ALPHAS if objective["name"] == "semisup" else (0.0,)):
                    za = embed_side(method, pairs.a[test], "a", alpha=alpha)
                    zb = embed_side(method, pairs.b[test][:, 0], "b", alpha=alpha)
                    sim = za @ zb.T
                    m = retrieval_metrics(sim)
                    row[alpha] = {"a2b_r10": m["a2b_r10"], "b2a_r10": m["b2a_r10"],
                                  "a2b_prec10": class_precision(sim, y, y), "b2a_prec10": class_precision(sim.T, y, y)}
                if not built:
                    built = (f"congrat-citeseer towers: GCN {len(method.tower_a.convs)} layers x {method.tower_a.dim}, "
                             f"text transformer {len(method.tower_b.blocks)} blocks x {method.tower_b.dim}; shared "
                             f"space {method.proj_dim}; {s['n_train']} train / {s['n_test']} test papers; "
                             f"{s['steps']} steps")
                    print(built)
            found.setdefault(name, []).append(row)
            for alpha, r in row.items():
                print(f"  seed {seed} {name} alpha {alpha}: R@10 {r['a2b_r10']:.3f}/{r['b2a_r10']:.3f}, class "
                      f"precision@10 {r['a2b_prec10']:.3f}/{r['b2a_prec10']:.3f} ({s['seconds'] / 60:.1f} min)",
                      flush=True)
    header = ["objective", "alpha", "node->text R@10", "text->node R@10", "node->text class P@10",
              "text->node class P@10"]
    rows = []
    for name, runs in found.items():
        for alpha in runs[0]:
            rows.append([name, alpha] + [float(np.mean([r[alpha][c] for r in runs]))
                                         for c in ("a2b_r10", "b2a_r10", "a2b_prec10", "b2a_prec10")])
    print(f"\nCiteSeer, held-out papers (mean over seeds {args.seeds})\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join([r[0], f"{r[1]:.1f}"] + [f"{v:.3f}" for v in r[2:]]) + " |")
    notes = [built, f"labels of {args.label_fraction:.0%} of the training papers (fixed random share); "
                    f"seeds {args.seeds}, {args.epochs} epochs, one thread"]
    save_result("paired_semisup_citeseer", columns=header, rows=rows, seconds=time.time() - t0,
                title="CiteSeer: semi-supervised paired objective (InfoNCE + cross-modal SupCon) vs plain InfoNCE",
                notes=notes, extra={"per_seed": found})


if __name__ == "__main__":
    main()

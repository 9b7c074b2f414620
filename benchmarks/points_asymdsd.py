"""AsymDSD on ModelNet10: both branches against each alone, Point-JEPA, a random init and voxel occupancy.

Every encoder trains for the same wall-clock budget (``--minutes``, 1 thread) on the official training
split; the frozen embeddings (``mean+max`` of the patch tokens) of the official test split are probed
the same way: logistic regression, a linear SVM (C on a validation split), and RankMe of the pooled
embeddings and of the patch tokens themselves (a collapse measure: how many directions the
per-patch features use).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/points_asymdsd.py ../shared/data/modelnet10_vox32.npz --minutes 4
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _points import occupancy, pretrained, probe, rounded  # noqa: E402  (the same probes as the ModelNet10 benchmark)

VARIANTS = {"asymdsd": ("asymdsd-modelnet10", [], "AsymDSD (both branches)"),
            "mpm-only": ("asymdsd-modelnet10", ["method.cls_weight=0"], "AsymDSD, masked prediction only"),
            "cls-only": ("asymdsd-modelnet10", ["method.mpm_weight=0"], "AsymDSD, CLS distillation only"),
            "pointjepa": ("pointjepa", [], "Point-JEPA (its recipe)")}


def patch_tokens(encoder, x: np.ndarray, n: int = 4096, batch_size: int = 128, seed: int = 0):
    """``n`` patch tokens (n, D) drawn at random from the encoder's tokens of the clouds ``x``."""
    import torch

    encoder.eval()
    with torch.no_grad():
        h = torch.cat([encoder(torch.as_tensor(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])
    h = h.reshape(-1, h.shape[-1])
    return h[torch.randperm(len(h), generator=torch.Generator().manual_seed(seed))[:n]]


def described(method) -> str:
    """The configuration read from a built method."""
    enc = method.encoder()
    tok = enc.tokenizer
    s = (f"{type(method).__name__}: {tok.n_groups} patches x {tok.group_size} points, encoder "
         f"{enc.encoder.dim}x{enc.encoder.depth} ({enc.encoder.heads} heads)")
    if hasattr(method, "cls_head"):
        p = method.predictor
        s += (f", cross-attention predictor {p.mask_token.shape[-1]}x{len(p.blocks)}, {method.n_local} local crops "
              f"of {method.local_groups} patches, mask ratio {method.mask_ratio}, heads "
              f"{method.cls_head.out_dim}/{method.patch_head.out_dim} prototypes, weights cls {method.cls_weight} "
              f"mpm {method.mpm_weight}, KoLeo {method.koleo_weight}")
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--minutes", type=float, default=4.0, help="training budget of every run (wall clock, 1 thread)")
    ap.add_argument("--out", default="runs/points_asymdsd")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    import polyjepa as pj
    from polyjepa.diagnostics.rankme import rankme
    from polyjepa.eval.embed import embed_array
    from polyjepa.results import save_result
    from polyjepa.runner import build_random, load_run_method, open_run

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = pj.load_recipe("asymdsd-modelnet10", [])
    d = pj.load_points(args.data, points=int(cfg.data.points), surface=bool(cfg.data.surface))
    rows, configs = {}, {}
    t0 = time.time()

    def probes(tr, te, tokens=None):
        r = probe(tr, d.y, te, d.y_test, knn=False)
        if tokens is not None:
            r["patch_rankme"] = rankme(tokens)
        return r

    rows["voxel occupancy 16^3"] = probes(occupancy(d.x), occupancy(d.x_test))
    print("voxel occupancy 16^3", rows["voxel occupancy 16^3"], flush=True)
    for v in args.variants.split(","):
        recipe, extra, label = VARIANTS[v]
        run = out / f"{v}-m{args.minutes:g}-s{args.seed}"
        s = pretrained(recipe, run, args.data, max_minutes=args.minutes, seed=args.seed,
                       overrides=["train.threads=1", "eval.baselines=false", "train.max_epochs=100", *extra])
        _, rcfg, info = open_run(run)
        pool = s["embedding"]["pool"]
        method = load_run_method(run)[0]
        configs[label] = described(method)
        print(configs[label], flush=True)
        if "random-init encoder (same shape)" not in rows:  # AsymDSD's student/teacher at initialisation
            enc = build_random(rcfg, info)
            rows["random-init encoder (same shape)"] = probes(embed_array(enc, d.x, pool=pool),
                                                              embed_array(enc, d.x_test, pool=pool),
                                                              patch_tokens(enc, d.x_test))
            print("random init", rows["random-init encoder (same shape)"], flush=True)
        enc = method.encoder()
        rows[label] = {**probes(embed_array(enc, d.x, pool=pool), embed_array(enc, d.x_test, pool=pool),
                                patch_tokens(enc, d.x_test)),
                       "minutes": s["train_seconds"] / 60, "steps": s["steps"]}
        print(label, rows[label], flush=True)
        (out / "results.json").write_text(json.dumps({"minutes": args.minutes, "rows": rows, "configs": configs},
                                                     indent=1))

    columns = ["representation", "logistic", "linear SVM", "RankMe (pooled)", "RankMe (patch tokens)", "steps",
               "train min"]
    table = [[k, rounded(r, "linear", 4), rounded(r, "svm", 4), rounded(r, "rankme", 1),
              rounded(r, "patch_rankme", 1), r.get("steps"), rounded(r, "minutes", 1)] for k, r in rows.items()]
    print(f"\nModelNet10 official split ({len(d.x)} / {len(d.x_test)} clouds), {args.minutes:g} min of training each, "
          f"seed {args.seed}\n")
    print("| " + " | ".join(columns) + " |")
    print("|---" + "|---:" * (len(columns) - 1) + "|")
    for row in table:
        print("| " + " | ".join("-" if c is None else str(c) for c in row) + " |")
    print()
    for label, c in configs.items():
        print(f"- {label}: {c}")
    save_result("points-asymdsd", title=f"AsymDSD on ModelNet10, official split ({len(d.x):,} / {len(d.x_test)} "
                f"clouds), {args.minutes:g} min of training each (1 thread)", columns=columns, rows=table,
                seconds=time.time() - t0, notes=[f"seed {args.seed}", *[f"{k}: {c}" for k, c in configs.items()]],
                extra={"seed": args.seed, "minutes": args.minutes})


if __name__ == "__main__":
    main()

"""SAR-JEPA (gradient targets) against the EMA-target I-JEPA on MSTAR chips at equal CPU time.

    python benchmarks/sar_mstar.py [DATA.npz] [--minutes 4] [--methods sarjepa,ijepa] [--jobs 2]
        [--threads 1] [--seed 0] [--no-save] [--set METHOD:key=value ...] [key=value ...]

Each method pretrains its bundled recipe on the 1,500 training chips (17 deg depression) of the MSTAR file
(default ../shared/data/mstar10_64px_3000.npz) for ``--minutes`` of training, without labels; then the
pretrained encoder, a random-init encoder of the same shape and the raw pixels get the same linear and kNN
probes, trained on the 17 deg chips and scored on the 1,500 test chips (15 deg). Trailing ``key=value``
overrides apply to every method (e.g. ``train.max_steps=300`` for an equal number of steps). Prints one markdown table
with the configuration read from each built model and writes results/sar_mstar.json.

Methods: sarjepa (sarjepa-mstar: ROA gradient targets), sarjepa-1scale (one radius), ijepa (ijepa-mstar: EMA
teacher + VCR, same ViT, masks and budget).
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from _args import data_file, methods_and_sets
from _runs import pretrain_for_minutes, print_table

DEFAULT_DATA = "../shared/data/mstar10_64px_3000.npz"
METHODS = {  # name -> (recipe, overrides)
    "sarjepa": ("sarjepa-mstar", []),
    "sarjepa-1scale": ("sarjepa-mstar", ["target.radii=[4]"]),
    "ijepa": ("ijepa-mstar", []),
}


def describe(method) -> str:
    """The configuration of a built method, read from its modules (not from the recipe)."""
    from polyjepa.models.predictor import OutputHead
    from polyjepa.targets import EMATarget, GradientTarget

    bb, pred, tgt, masker = method.backbone, method.predictor, method.target, method.masker
    e, tok = bb.encoder, bb.tokenizer
    n_params = sum(p.numel() for p in bb.parameters())
    enc = (f"ViT {e.dim}x{e.depth} ({e.heads} heads), patch {tok.patch_size}, grid {tok.grid[0]}x{tok.grid[1]}, "
           f"{n_params / 1e3:.0f}k params")
    inner = pred.predictor if isinstance(pred, OutputHead) else pred
    p = f"{type(inner).__name__} {inner.norm.normalized_shape[0]}x{len(inner.blocks)}"
    if isinstance(pred, OutputHead):
        p += f" + linear {pred.head.in_features}->{pred.head.out_features}"
    m = f"{masker.n_targets} targets {masker.target_scale}, context {masker.context_scale}"
    if isinstance(tgt, GradientTarget):
        t = f"ROA gradient radii {list(tgt.radii)}, {tgt.dim} values per patch, normalize {tgt.normalize}"
    elif isinstance(tgt, EMATarget):
        t = f"EMA {tgt.momentum[0]:g}->{tgt.momentum[1]:g} {tgt.schedule}, targets {tgt.normalize}"
    else:
        t = type(tgt).__name__
    reg = "VCR" if method.regularizer is not None else "no regulariser"
    return f"{enc}; {p}; {m}; {t}; {reg}; readout {method.embed_from}"


def run_method(name: str, data: str, minutes: float, threads: int, seed: int, extra: list[str]) -> dict:
    recipe, over = METHODS[name]
    s, run_dir, _, _, method = pretrain_for_minutes(name, recipe, [*over, *extra], data, minutes, threads, seed)
    return {"name": name, "summary": s, "config": describe(method), "run": str(run_dir)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA, help=f"MSTAR .npz (default {DEFAULT_DATA})")
    ap.add_argument("--minutes", type=float, default=4.0, help="training minutes per method (default 4)")
    ap.add_argument("--methods", default="sarjepa,ijepa", help=f"comma-separated, from {', '.join(METHODS)}")
    ap.add_argument("--jobs", type=int, default=1, help="methods trained at once, one process each (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per method (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-save", action="store_true", help="print the table only, do not write results/")
    ap.add_argument("--set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                    help="an extra override for one method, e.g. sarjepa:train.lr=2e-3 (repeatable)")
    ap.add_argument("overrides", nargs="*", help="recipe overrides for every method, e.g. train.max_steps=300")
    args = ap.parse_intermixed_args(argv)
    data_file(args, DEFAULT_DATA, "MSTAR file", "the path of an .npz with 'images', 'labels' and 'split', e.g. "
              "python benchmarks/sar_mstar.py ../shared/data/mstar10_64px_3000.npz")
    names, extra = methods_and_sets(args, METHODS)
    extra = {n: [*args.overrides, *extra[n]] for n in names}  # overrides for every method, then each one's own

    t0 = time.time()
    jobs = [(n, args.data, args.minutes, args.threads, args.seed, extra[n]) for n in names]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(run_method, *zip(*jobs)))
    else:
        results = [run_method(*j) for j in jobs]

    columns = ["method", "recipe", "linear", "kNN", "random-init linear", "random-init kNN", "raw linear", "raw kNN",
               "train min", "steps", "readout", "configuration"]
    rows = []
    for r in results:
        s, b = r["summary"], r["summary"]["baselines"]
        acc = lambda p, k: round(p[k]["accuracy"], 4)  # noqa: E731
        changes = METHODS[r["name"]][1] + extra[r["name"]]
        rows.append([r["name"] + (" (" + ", ".join(changes) + ")" if changes else ""), s["recipe"],
                     acc(s["probe"], "linear"), acc(s["probe"], "knn"),
                     acc(b["random_init"], "linear"), acc(b["random_init"], "knn"),
                     acc(b["raw"], "linear"), acc(b["raw"], "knn"),
                     round(s["train_seconds"] / 60, 2), s["steps"], s["embedding"]["pool"], r["config"]])
    s0 = results[0]["summary"]
    head = (f"MSTAR SOC {s0['n_train']:,} train chips (17 deg) / {s0['n_test']:,} test chips (15 deg), 10 classes, "
            f"64x64; pretraining without labels on the train chips; at most {args.minutes:g} min of training per "
            f"method" + (f" ({', '.join(args.overrides)} for every method)" if args.overrides else "") + f" at "
            f"{args.threads} thread(s), {args.jobs} method(s) at a time, seed {args.seed}; probes fitted on the "
            f"train chips, scored on the test chips; raw pixels flattened")
    print_table(head, columns, rows)
    print(f"\nwhole benchmark: {(time.time() - t0) / 60:.1f} min")
    if not args.no_save:
        from polyjepa.results import save_result

        save_result("sar_mstar", title="SAR-JEPA gradient targets vs EMA-target I-JEPA on MSTAR at equal CPU time",
                    columns=columns, rows=rows, seconds=time.time() - t0, notes=[head],
                    extra={"runs": {r["name"]: r["run"] for r in results}})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CNN-JEPA, N-JEPA and DSeq-JEPA (with their ablations and the ViT I-JEPA) on MNIST at equal CPU time.

    python benchmarks/image_variants_mnist.py [DATA.npz] [--minutes 4] [--methods cnnjepa,...] [--jobs 2]
        [--threads 1] [--seed 0] [--no-save] [--set METHOD:key=value ...]

Each method pretrains its bundled recipe on the stratified 8,000 / 2,000 split of the MNIST file (default
../shared/data/mnist_t10k.npz) for ``--minutes`` of training at ``--threads`` threads, then the pretrained
encoder, a random-init encoder of the same shape and the raw pixels get the same linear and kNN probes
(the recipe's readout, e.g. ``grid:2``: the mean + 2x2 regional means of the cell/token grid, and a second
readout ``--also-pool``, default ``grid:4``, for the pretrained and random-init encoders). ``--jobs`` runs that
many methods at once, each in its own process. Prints one markdown table with the configuration read from
each built model and writes results/image_variants_mnist.json.

Methods: cnnjepa (sparse ResNet + depthwise-conv predictor), ijepa (the ViT I-JEPA recipe ijepa-mnist),
njepa, njepa-clean (the same without noise), dseq (saliency order), dseq-random (random order).
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from _args import data_file, methods_and_sets
from _runs import pretrain_for_minutes, print_table

DEFAULT_DATA = "../shared/data/mnist_t10k.npz"
METHODS = {  # name -> (recipe, overrides)
    "cnnjepa": ("cnnjepa-mnist", []),
    "ijepa": ("ijepa-mnist", []),
    "njepa": ("njepa-mnist", []),
    "njepa-clean": ("njepa-mnist", ["predictor.noise=false"]),
    "dseq": ("dseqjepa-mnist", []),
    "dseq-random": ("dseqjepa-mnist", ["method.order=random"]),
}


def describe(method) -> str:
    """The configuration of a built method, read from its modules (not from the recipe)."""
    from polyjepa.vision import (CNNBackbone, DSeqJEPA, NoisyDepthwiseConvPredictor, NoisyMaskTokenPredictor,
                                 SequentialPredictor)

    bb, pred, tgt, masker = method.backbone, method.predictor, method.target, method.masker
    n_params = sum(p.numel() for p in bb.parameters())
    if isinstance(bb, CNNBackbone):
        net = bb.network
        enc = (f"sparse ResNet widths {list(net.widths)} x{len(net.stages[0])} block(s), cells {net.grid[0]}x"
               f"{net.grid[1]}, D={net.dim}")
    else:
        e, tok = bb.encoder, bb.tokenizer
        enc = f"ViT {e.dim}x{e.depth} ({e.heads} heads), patch {tok.patch_size}, grid {tok.grid[0]}x{tok.grid[1]}"
    enc += f", {n_params / 1e3:.0f}k params"
    kind = type(pred).__name__
    if hasattr(pred, "blocks"):
        p = f"{kind} {pred.norm.normalized_shape[0]}x{len(pred.blocks)}"
    else:
        p = f"{kind} {pred.dim}x{pred.depth} k{pred.kernel}"
    if isinstance(pred, (NoisyMaskTokenPredictor, NoisyDepthwiseConvPredictor)):
        s = pred.schedule
        p += (f", noise {'on' if pred.noise else 'off'} (beta {s.beta[0]:g}-{s.beta[1]:g}, T={s.steps}, step "
              f"{'conditioned' if pred.step_embed is not None else 'unconditioned'})")
    if isinstance(method, DSeqJEPA) and isinstance(pred, SequentialPredictor):
        p += f", order {method.order} ({method.saliency} saliency)"
    m = f"{masker.n_targets} targets {masker.target_scale}, context {masker.context_scale}"
    t = f"EMA {tgt.momentum[0]:g}->{tgt.momentum[1]:g} {tgt.schedule}, targets {tgt.normalize}"
    reg = "VCR" if method.regularizer is not None else "no regulariser"
    return f"{enc}; {p}; {m}; {t}; {reg}; readout {method.embed_from}"


def other_readout(run_dir, cfg, info, method, pool: str, seed: int) -> dict:
    """Linear/kNN accuracy of the pretrained and the random-init encoder of a run under another readout."""
    from polyjepa.config import EvalConfig, dataclass_from
    from polyjepa.eval.embed import embed_array
    from polyjepa.eval.evaluate import probe_features
    from polyjepa.runner import build_random, prepare_run_data

    data = prepare_run_data(cfg, info)
    ev = dataclass_from(cfg, "eval", EvalConfig)
    out = {}
    for who, enc in (("pretrained", method.encoder()), ("random_init", build_random(cfg, info))):
        f = [embed_array(enc, x, pool=pool, layers=ev.layers) for x in (data.x_train, data.x_test)]
        r = probe_features(*f, data, ev, seed)
        out[who] = {"linear": r["linear"]["accuracy"], "knn": r["knn"]["accuracy"]}
    return out


def run_method(name: str, data: str, minutes: float, threads: int, seed: int, extra: list[str],
               also_pool: str | None = None) -> dict:
    recipe, over = METHODS[name]
    s, run_dir, cfg, info, method = pretrain_for_minutes(name, recipe, [*over, *extra], data, minutes, threads, seed)
    also = other_readout(run_dir, cfg, info, method, also_pool, seed) if also_pool else None
    return {"name": name, "summary": s, "config": describe(method), "run": str(run_dir), "also": also}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA, help=f"MNIST .npz (default {DEFAULT_DATA})")
    ap.add_argument("--minutes", type=float, default=4.0, help="training minutes per method (default 4)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    ap.add_argument("--jobs", type=int, default=1, help="methods trained at once, one process each (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per method (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--also-pool", default="grid:4", help="a second readout probed for the pretrained and the "
                    "random-init encoder of every run (default grid:4; 'none' to skip)")
    ap.add_argument("--no-save", action="store_true", help="print the table only, do not write results/")
    ap.add_argument("--set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                    help="an extra override for one method, e.g. cnnjepa:train.lr=2e-3 (repeatable)")
    ap.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_intermixed_args(argv)
    data_file(args, DEFAULT_DATA, "MNIST file", "the path of an .npz with 'images' and 'labels', e.g. "
              "python benchmarks/image_variants_mnist.py ../shared/data/mnist_t10k.npz")
    names, extra = methods_and_sets(args, METHODS)

    t0 = time.time()
    also = None if args.also_pool == "none" else args.also_pool
    jobs = [(n, args.data, args.minutes, args.threads, args.seed, extra[n], also) for n in names]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(run_method, *zip(*jobs)))
    else:
        results = [run_method(*j) for j in jobs]

    columns = ["method", "recipe", "linear", "kNN", "random-init linear", "random-init kNN", "raw linear", "raw kNN",
               "train min", "steps", "readout"] + ([f"linear {also}", f"kNN {also}", f"random-init linear {also}",
                                                    f"random-init kNN {also}"] if also else []) + ["configuration"]
    rows = []
    for r in results:
        s, b = r["summary"], r["summary"]["baselines"]
        acc = lambda p, k: round(p[k]["accuracy"], 4)  # noqa: E731
        changes = METHODS[r["name"]][1] + extra[r["name"]]
        rows.append([r["name"] + (" (" + ", ".join(changes) + ")" if changes else ""), s["recipe"],
                     acc(s["probe"], "linear"), acc(s["probe"], "knn"),
                     acc(b["random_init"], "linear"), acc(b["random_init"], "knn"),
                     acc(b["raw"], "linear"), acc(b["raw"], "knn"),
                     round(s["train_seconds"] / 60, 2), s["steps"], s["embedding"]["pool"]]
                    + ([round(r["also"][w][k], 4) for w in ("pretrained", "random_init") for k in ("linear", "knn")]
                       if also else []) + [r["config"]])
    s0 = results[0]["summary"]
    head = (f"MNIST {s0['n_train']:,} / {s0['n_test']:,} (stratified, seed {s0['seed']}); {args.minutes:g} min of "
            f"training per method at {args.threads} thread(s), {args.jobs} method(s) at a time; each row probed with "
            f"its recipe's readout" + (f" and with {also}" if also else "") + "; raw pixels flattened")
    print_table(head, columns, rows)
    print(f"\nwhole benchmark: {(time.time() - t0) / 60:.1f} min")
    if not args.no_save:
        from polyjepa.results import save_result

        save_result("image_variants_mnist", title="Image JEPA variants on MNIST at equal CPU time",
                    columns=columns, rows=rows, seconds=time.time() - t0, notes=[head],
                    extra={"runs": {r["name"]: r["run"] for r in results}})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the quick-start job's time goes: training steps vs evaluation, with the baselines computed or cached.

    python benchmarks/eval_phases.py [--recipe cjepa-mnist6k] [--steps 8] [--threads 1]

Times in process CPU time (robust to other jobs on a shared machine), 1 thread: ``--steps`` real training
steps of the recipe (scaled to its ``train.max_steps``), the monitor's two calls (at the start and the end of
training), and ``evaluate`` of an encoder (the pretrained encoder's work: embedding train and test, linear and
kNN probes, RankMe) with the raw and random-init baselines computed (an empty cache: what every run did before
the cache) and read back from the baseline cache (every later run on the same data, seed and architecture).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="cjepa-mnist6k")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    from polyjepa.build import build_augment, build_method
    from polyjepa.config import DataConfig, EvalConfig, TrainConfig, dataclass_from, load_recipe, part_kwargs
    from polyjepa.data.prepare import prepare
    from polyjepa.eval.evaluate import Monitor, evaluate
    from polyjepa.results import save_result
    from polyjepa.runner import train_method

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    cfg = load_recipe(args.recipe)
    data = prepare(dataclass_from(cfg, "data", DataConfig), None, part_kwargs(cfg, "data"))
    tc = dataclass_from(cfg, "train", TrainConfig)
    ec = dataclass_from(cfg, "eval", EvalConfig)
    shape = tuple(data.x_train.shape[1:])
    total_steps = tc.max_steps or tc.max_epochs * (len(data.x_train) // tc.batch_size)

    def cpu(fn):
        c = time.process_time()
        out = fn()
        return time.process_time() - c, out

    method = build_method(cfg, shape, 0, data.meta)
    short = TrainConfig(batch_size=tc.batch_size, max_steps=args.steps, checkpoint_every=0, monitor_every=0,
                        threads=args.threads, precision="32-true", lr=tc.lr, start_lr=tc.start_lr)
    with tempfile.TemporaryDirectory() as run:
        train_s, _ = cpu(lambda: train_method(method, data.x_train, train=short, augment=build_augment(cfg),
                                              run_dir=run, progress=False))
    training = train_s / args.steps * total_steps
    monitor = Monitor(data.x_train, data.y_train, samples=ec.monitor_samples, pool=ec.pool, layers=ec.layers,
                      k=ec.knn_k)
    monitor_s, _ = cpu(lambda: monitor(method))
    monitor_s *= 2  # once before training, once after
    with tempfile.TemporaryDirectory() as cache:
        os.environ["POLYJEPA_CACHE"] = cache
        cold_s, cold = cpu(lambda: evaluate(method.encoder(), data, ec, random_encoder=build_method(
            cfg, shape, 0, data.meta).encoder(), seed=0))
        warm_s, warm = cpu(lambda: evaluate(method.encoder(), data, ec, random_encoder=build_method(
            cfg, shape, 0, data.meta).encoder(), seed=0))
    assert warm["baselines"] == cold["baselines"] and warm["cached"] == ["raw", "random_init"]
    parts = {k: round(v, 1) for k, v in cold["seconds"].items()}
    cols = ["phase", "CPU seconds (1 thread)"]
    rows = [[f"training ({total_steps} steps, from {args.steps} timed)", round(training, 1)],
            ["monitor (2 calls)", round(monitor_s, 1)],
            ["evaluation, baselines computed", round(cold_s, 1)],
            ["evaluation, baselines from the cache", round(warm_s, 1)]]
    load = os.getloadavg()[0]
    notes = [f"evaluation parts with the baselines computed, in wall seconds (load average {load:.0f} on "
             f"{os.cpu_count()} cores at the end): {parts}",
             f"evaluation + monitor / training: {(cold_s + monitor_s) / training:.2f} computed, "
             f"{(warm_s + monitor_s) / training:.2f} from the cache",
             f"{args.recipe}: {len(data.x_train)} train / {len(data.x_test)} test, read-out {ec.pool}"]
    print("| " + " | ".join(cols) + " |\n|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} |")
    print("\n" + "\n".join(notes))
    path = save_result("eval_phases", title=f"Quick-start job phases ({args.recipe}), CPU time", columns=cols,
                       rows=rows, notes=notes, seconds=time.perf_counter() - started,
                       extra={"recipe": args.recipe, "evaluation_parts": parts})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

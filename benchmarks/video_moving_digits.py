"""Moving digits: V-JEPA (tubes) vs VJ-VCR vs per-frame masking vs random init, frozen-embedding probes.

    .venv/bin/python benchmarks/video_moving_digits.py ../shared/data/mnist_t10k.npz [--steps 1200] [--seeds 0,1,2]

Clips of one MNIST digit bouncing in a 32x32 frame (8 frames, 1-3 px/frame); train and test clips
come from disjoint digit images. Every method trains the same encoder (ViT 64 wide, 4 deep, on
2 x 8 x 8 tubelets: a 4 x 4 x 4 grid) for the same number of steps at the same batch size; the
encoders are then frozen and probed on held-out clips: logistic regression for the digit's class
(accuracy) and ridge regression for its initial velocity (dy, dx) (R^2, averaged over the two).
Two readouts by default (``--pools``): ``time+grid:2`` (token mean + per-time-slot means + 2x2 regions, the
recipe's ``eval.pool``) and ``mean`` (the token mean alone). The first keeps each slot's coarse position,
so a ridge regression reads motion from positions even on a random-init encoder; the second hands no
per-slot layout over, so velocity is only there if the features themselves carry it.
With several ``--seeds`` each seed draws its own clips and initialisations; the table shows the mean and
the spread (min-max) over seeds.
Runs on one thread (OMP_NUM_THREADS=1 is set below); times on a shared machine are inflated.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

MODEL = ["tokenizer.patch_size=8", "encoder.size=micro", "encoder.depth=4", "predictor.dim=64", "predictor.depth=2"]
VARIANTS = {
    "V-JEPA (tube masks)": ("vjepa-moving-digits", []),
    "V-JEPA (per-frame masks)": ("vjepa-moving-digits", ["masker.per_frame=true"]),
    "VJ-VCR (past -> future)": ("vjvcr-moving-digits", []),
}


def velocity_r2(train_f, train_v, test_f, test_v) -> float:
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    model.fit(train_f, train_v)
    return float(r2_score(test_v, model.predict(test_f), multioutput="uniform_average"))


def probe(encoder, data, pool: str, seed: int) -> dict:
    from polyjepa.eval.embed import embed_array
    from polyjepa.eval.probes import linear_probe

    tr, te = embed_array(encoder, data["x_train"], pool=pool), embed_array(encoder, data["x_test"], pool=pool)
    return {"digit_acc": linear_probe(tr, data["y_train"], te, data["y_test"], seed=seed)["accuracy"],
            "velocity_r2": velocity_r2(tr, data["v_train"], te, data["v_test"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mnist", help="MNIST-style .npz (e.g. ../shared/data/mnist_t10k.npz)")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--speed", default="1,3", help="digit speed range lo,hi in pixels per frame (default 1,3)")
    ap.add_argument("--pools", default="time+grid:2,mean", help="comma-separated readouts (eval.pool values)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (clips and initialisation), e.g. 0,1,2")
    ap.add_argument("--only", default=None, help="comma-separated variant names to run")
    ap.add_argument("--set", action="append", default=[], help="extra recipe override for every method")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    pools = args.pools.split(",")
    per_seed = [run_seed(args, seed, pools) for seed in seeds]
    results = {name: {p: {k: [r[name][p][k] for r in per_seed] for k in ("digit_acc", "velocity_r2")}
                      for p in per_seed[0][name] if p not in ("train_s", "steps")}
               | {"train_s": float(np.mean([r[name]["train_s"] for r in per_seed]))} for name in per_seed[0]}

    def cell(values, digits):
        m = float(np.mean(values))
        return f"{m:.{digits}f}" if len(values) == 1 else f"{m:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    print(f"\nseeds {seeds}: mean (min-max)")
    print("\n| representation | " + " | ".join(f"digit acc ({p}) | velocity R^2 ({p})" for p in pools)
          + " | train time |")
    print("|---|" + "---:|---:|" * len(pools) + "---:|")
    for name, r in results.items():
        cells = []
        for p in pools:
            q = r.get(p, r.get("raw"))
            cells += [cell(q["digit_acc"], 4), cell(q["velocity_r2"], 3)]
        print(f"| {name} | " + " | ".join(cells) + f" | {r['train_s'] / 60:.1f} min |")
    from polyjepa.results import save_result

    table = []
    for name, r in results.items():
        row = [name]
        for p in pools:
            q = r.get(p, r.get("raw"))
            row += [round(float(np.mean(q["digit_acc"])), 4), round(float(np.mean(q["velocity_r2"])), 3)]
        table.append(row + [round(r["train_s"] / 60, 1)])
    save_result("video-moving-digits", title=f"Moving digits, {args.steps} steps, seeds {seeds} (means)",
                columns=["representation"] + [c for p in pools for c in (f"digit acc ({p})", f"velocity R^2 ({p})")]
                + ["train min"], rows=table, extra={"seeds": seeds, "steps": args.steps})
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "per_seed": per_seed, "results": results}, f, indent=1)


def run_seed(args, seed: int, pools: list[str]) -> dict:
    """Every representation's probes for one seed (its own clips and initialisations)."""
    from polyjepa.build import build_method
    from polyjepa.config import TrainConfig, load_recipe
    from polyjepa.data.prepare import normalise
    from polyjepa.runner import train_method
    from polyjepa.video.sources import moving_digit_split

    speed = tuple(float(v) for v in args.speed.split(","))
    gen = dict(frames=8, frame_size=32, digit_size=14, digits=1, speed=speed, n_train=args.n_train,
               n_test=args.n_test, seed=seed)
    train, test, _ = moving_digit_split(args.mnist, **gen)
    mean, std = float(train.clips.mean()), float(train.clips.std())
    data = {"x_train": normalise(train.clips, [mean], [std]), "x_test": normalise(test.clips, [mean], [std]),
            "y_train": train.labels[:, 0], "y_test": test.labels[:, 0],
            "v_train": train.velocity[:, 0, 0], "v_test": test.velocity[:, 0, 0]}
    shape = data["x_train"].shape[1:]
    print(f"seed {seed}: moving digits from {args.mnist}: {len(train.clips)} train / {len(test.clips)} test clips "
          f"{shape}, speed {speed} px/frame; {args.steps} steps x batch {args.batch_size}")

    results = {}
    raw_tr, raw_te = data["x_train"].reshape(len(train.clips), -1), data["x_test"].reshape(len(test.clips), -1)
    from polyjepa.eval.probes import linear_probe

    results["raw pixels"] = {"raw": {"digit_acc": linear_probe(raw_tr, data["y_train"], raw_te, data["y_test"])["accuracy"],
                                     "velocity_r2": velocity_r2(raw_tr, data["v_train"], raw_te, data["v_test"])},
                             "train_s": 0.0}
    print("raw pixels", results["raw pixels"]["raw"], flush=True)
    random_cfg = load_recipe("vjepa-moving-digits", MODEL + args.set)
    rand = build_method(random_cfg, shape, seed=seed).encoder()
    results["random-init encoder"] = {p: probe(rand, data, p, seed) for p in pools} | {"train_s": 0.0}
    print("random-init encoder", results["random-init encoder"], flush=True)

    only = set(args.only.split(",")) if args.only else None
    for name, (recipe, over) in VARIANTS.items():
        if only and name not in only:
            continue
        cfg = load_recipe(recipe, MODEL + over + args.set)
        method = build_method(cfg, shape, seed=seed)
        tc = TrainConfig(batch_size=args.batch_size, max_steps=args.steps, lr=args.lr, start_lr=2e-4, warmup=0.1,
                         threads=1, log_every=50, monitor_every=0, checkpoint_every=10**9)
        t0 = time.perf_counter()
        record = train_method(method, data["x_train"], train=tc, seed=seed, progress=False)
        train_s = time.perf_counter() - t0
        method.eval()
        results[name] = {p: probe(method.encoder(), data, p, seed) for p in pools}
        results[name].update(train_s=train_s, steps=record["steps"])
        print(name, results[name], flush=True)
    return results

if __name__ == "__main__":
    main()

"""Conditioned prediction on two-clip FSDD mixtures: does the condition token pick the right clip?

    python benchmarks/audio_fsdd_stem.py [FSDD.npz] [--epochs 10] [--out DIR] [--seed 0] [key=value ...]

Trains the bundled ``ajepa-stem`` recipe twice at the same budget: with the condition token
(``predictor.n_conditions=2``: predict the first or the delayed clip) and without it
(``n_conditions=1``: the predictor is not told which clip). Test mixtures are built
deterministically from the official test split (clip i with clip i+1 delayed by 24 frames). Reports,
for each condition: retrieval R@1 of the true clip's target features (flattened LN token features
of the EMA encoder) among the same-placement clips of all test mixtures, by cosine to the
predicted features; and the digit accuracy of a linear probe, fitted on target features of clean
training clips, applied to the predicted features (chance 0.1; the probe on the true targets is the ceiling).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_DATA = "../shared/data/fsdd.npz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--offset", type=int, default=24, help="delay of the second clip in the test mixtures (frames)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args(argv)
    if not Path(args.data).is_file():
        sys.exit(f"error: {args.data} not found: pass the FSDD .npz, e.g. {DEFAULT_DATA}")

    import torch

    torch.set_num_threads(1)
    from polyjepa.audio.data import load_audio
    from polyjepa.audio.mixtures import mix_log_mel, shift_frames
    from polyjepa.config import part_kwargs
    from polyjepa.eval.probes import linear_probe
    from polyjepa.runner import load_run_method, open_run, pretrain

    out = Path(args.out or tempfile.mkdtemp(prefix="audio-stem-"))
    extra = list(args.overrides) + ["train.threads=1"]
    if args.epochs is not None:
        extra += [f"train.max_epochs={args.epochs}", "train.max_steps=null"]
    arms = {"with condition": ["predictor.n_conditions=2"], "without condition": ["predictor.n_conditions=1"]}
    times = {}
    for name, ov in arms.items():
        run_dir = out / name.replace(" ", "_")
        if not (run_dir / "summary.json").exists():
            pretrain("ajepa-stem", data=args.data, out=str(run_dir), seed=args.seed, overrides=ov + extra,
                     progress=False, echo=lambda *a, **k: None)
        s = json.loads((run_dir / "summary.json").read_text())
        times[name] = (s["steps"], s["train_seconds"] / 60, s["probe"]["linear"]["accuracy"])

    _, cfg, info = open_run(out / "with_condition")
    d = load_audio(args.data, **part_kwargs(cfg, "data"), fitted=info["meta"])
    mean, std = info["meta"]["mean"], info["meta"]["std"]
    xt = torch.from_numpy(d.x_test)
    n = len(xt)
    first = xt
    second = shift_frames(xt.roll(-1, dims=0), torch.full((n,), args.offset))
    mix = mix_log_mel(first, second, mean=mean, std=std)
    labels = {0: d.y_test, 1: np.roll(d.y_test, -1)}
    xtr = torch.from_numpy(d.x)

    def pooled(tokens, grid):  # token mean + 4x4 regional means, as the recipe's grid:4 readout
        B, N, D = tokens.shape
        g = tokens.transpose(1, 2).reshape(B, D, *grid)
        regions = torch.nn.functional.adaptive_avg_pool2d(g, 4).flatten(2).transpose(1, 2)
        return torch.cat([tokens.mean(1), regions.flatten(1)], 1).numpy()

    rows = []
    for name in arms:
        method, _, _ = load_run_method(out / name.replace(" ", "_"))
        grid = method.backbone.tokenizer.grid
        with torch.no_grad():
            train_t = torch.cat([method.target(xtr[i:i + 256]) for i in range(0, len(xtr), 256)])
            ceiling_probe = {}
            for c, placed in ((0, first), (1, second)):
                pred = method.predict(mix, torch.full((n,), c))            # (n, N, D)
                true = method.target(placed)
                pf, tf = pred.flatten(1), true.flatten(1)
                sim = torch.nn.functional.normalize(pf, dim=1) @ torch.nn.functional.normalize(tf, dim=1).T
                r1 = float((sim.argmax(1) == torch.arange(n)).float().mean())
                # The digit of the conditioned clip, from a probe fitted on clean training clips' targets.
                train_clean = train_t if c == 0 else torch.cat(
                    [method.target(shift_frames(xtr[i:i + 256], torch.full((len(xtr[i:i + 256]),), args.offset)))
                     for i in range(0, len(xtr), 256)])
                tr_f = pooled(train_clean, grid)
                acc = linear_probe(tr_f, d.y, pooled(pred, grid), labels[c], seed=args.seed)["accuracy"]
                ceiling_probe[c] = linear_probe(tr_f, d.y, pooled(true, grid), labels[c], seed=args.seed)["accuracy"]
                rows.append((name, c, r1, acc, ceiling_probe[c]))
    print(f"\nFSDD two-clip mixtures: {n} test mixtures (clip i + clip i+1 delayed {args.offset} frames), "
          f"seed {args.seed}; runs in {out}\n")
    print("| predictor | predict clip | R@1 among 300 | digit acc. from prediction | digit acc. from true target (ceiling) |")
    print("|---|---|---:|---:|---:|")
    for name, c, r1, acc, ceil in rows:
        print(f"| {name} | {'first' if c == 0 else 'delayed'} | {r1:.3f} | {acc:.3f} | {ceil:.3f} |")
    print()
    for name, (steps, minutes, lin) in times.items():
        print(f"{name}: {steps} steps, {minutes:.1f} min training; clean-clip digit probe of its encoder {lin:.4f}")
    from polyjepa.results import save_result

    save_result("audio-fsdd-stem", title=f"Conditioned prediction on FSDD two-clip mixtures ({n} test mixtures)",
                columns=["predictor", "predict clip", "R@1", "digit acc. from prediction",
                         "digit acc. from true target (ceiling)"],
                rows=[[name, "first" if c == 0 else "delayed", round(r1, 3), round(acc, 3), round(ceil, 3)]
                      for name, c, r1, acc, ceil in rows],
                notes=[f"{name}: {steps} steps, {minutes:.1f} min of training" for name, (steps, minutes, _) in times.items()],
                extra={"seed": args.seed, "offset": args.offset})
    return 0


if __name__ == "__main__":
    sys.exit(main())

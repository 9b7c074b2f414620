"""A-JEPA on spoken digits (FSDD, official split): linear probes for digit and speaker against baselines.

    python benchmarks/audio_fsdd.py [FSDD.npz] [--epochs 20] [--arms curriculum,multiblock,timefreq]
                                    [--out DIR] [--seed 0] [key=value ...]

Pretrains the bundled ``ajepa`` recipe once per masking arm at the same budget (epochs):
``curriculum`` (I-JEPA multi-block -> time-frequency, the recipe), ``multiblock`` (I-JEPA masks only),
``timefreq`` (time-frequency masks only); every run writes its run directory under --out (a run
whose summary.json exists is reused). Then prints one markdown table: linear-probe accuracy for
the digit (the run's own probe) and for the speaker (same probe on the same embeddings), kNN for
the digit, for each encoder and for the baselines probed the same way on the same split: a
random-init encoder of the same architecture, the raw log-mel input, and MFCC summary statistics
(mean/std of 13 MFCCs and of their deltas over the real frames; MFCC = orthonormal DCT-II of the
same log-mels) with the same logistic regression.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _args import data_file
from _fsdd import COLUMNS, print_rows, result_rows


DEFAULT_DATA = "../shared/data/fsdd.npz"
ARMS = {"curriculum": ["masker.p_start=0.0", "masker.p_end=1.0"],
        "multiblock": ["masker.p_start=0.0", "masker.p_end=0.0"],
        "timefreq": ["masker.p_start=1.0", "masker.p_end=1.0"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs per arm (default: the recipe's)")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    ap.add_argument("--out", default=None, help="folder for the run directories (default: a new temporary folder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--readouts", default="", help="extra readouts (pools) to probe, comma-separated, e.g. tokens,mean")
    ap.add_argument("overrides", nargs="*", help="recipe overrides for every arm, section.key=value")
    args = ap.parse_intermixed_args(argv)
    data_file(args, DEFAULT_DATA, "FSDD file", f"the FSDD .npz, e.g. python benchmarks/audio_fsdd.py {DEFAULT_DATA}")
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        sys.exit(f"error: unknown arm(s) {unknown}: choose from {', '.join(ARMS)}")

    import torch

    torch.set_num_threads(1)
    from polyjepa.audio.data import load_audio
    from polyjepa.audio.mfcc import mfcc_summary
    from polyjepa.config import EvalConfig, dataclass_from, part_kwargs
    from polyjepa.eval.embed import embed_array
    from polyjepa.eval.probes import knn_probe, linear_probe
    from polyjepa.runner import build_random, load_run_method, open_run, pretrain

    out = Path(args.out or tempfile.mkdtemp(prefix="audio-fsdd-"))
    extra = list(args.overrides) + ["train.threads=1"]
    if args.epochs is not None:
        extra += [f"train.max_epochs={args.epochs}", "train.max_steps=null"]
    summaries = {}
    for arm in arms:
        run_dir = out / arm
        if (run_dir / "summary.json").exists():
            summaries[arm] = json.loads((run_dir / "summary.json").read_text())
            continue
        t0 = time.time()
        summaries[arm] = pretrain("ajepa", data=args.data, out=str(run_dir), seed=args.seed, overrides=ARMS[arm] + extra,
                                  progress=False, echo=lambda *a, **k: None)
        print(f"{arm}: {summaries[arm]['steps']} steps, {(time.time() - t0) / 60:.1f} min", flush=True)

    # Speaker labels for the same clips and split, prepared with the first run's statistics.
    _, cfg, info = open_run(out / arms[0])
    opts = part_kwargs(cfg, "data")
    meta = info["meta"]
    dig = load_audio(args.data, **{**opts, "label": "digit"}, fitted=meta)
    spk = load_audio(args.data, **{**opts, "label": "speaker"}, fitted=meta)
    ev = dataclass_from(cfg, "eval", EvalConfig)

    def probes(train_f, test_f):
        return {"digit": linear_probe(train_f, dig.y, test_f, dig.y_test, seed=args.seed)["accuracy"],
                "digit_knn": knn_probe(train_f, dig.y, test_f, dig.y_test, k=ev.knn_k)["accuracy"],
                "speaker": linear_probe(train_f, spk.y, test_f, spk.y_test, seed=args.seed)["accuracy"]}

    def enc_feats(enc, pool=ev.pool):
        return embed_array(enc, dig.x, pool=pool, layers=ev.layers), embed_array(enc, dig.x_test, pool=pool, layers=ev.layers)

    extra_pools = [p for p in args.readouts.split(",") if p and p != ev.pool]
    rows = []
    for arm in arms:
        method, _, _ = load_run_method(out / arm)
        s = summaries[arm]
        rows.append((f"A-JEPA ({arm})", probes(*enc_feats(method.encoder())), s["rankme"],
                     f"{s['steps']} steps, {s['train_seconds'] / 60:.1f} min"))
        for pool in extra_pools:
            rows.append((f"A-JEPA ({arm}), readout {pool}", probes(*enc_feats(method.encoder(), pool)), None, ""))
    rows.append(("random-init encoder", probes(*enc_feats(build_random(cfg, info))), None, ""))
    for pool in extra_pools:
        rows.append((f"random-init encoder, readout {pool}", probes(*enc_feats(build_random(cfg, info), pool)), None, ""))
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    rows.append(("raw log-mel", probes(flat(dig.x), flat(dig.x_test)), None, ""))
    rows.append(("MFCC summary stats (52-d)", probes(mfcc_summary(dig.x), mfcc_summary(dig.x_test)), None, ""))

    print(f"\nFSDD {args.data}: {len(dig.x)} train / {len(dig.x_test)} test (official split, takes 0-4 test); "
          f"readout {ev.pool} of the {cfg.method.get('embed_from', 'target')} encoder; seed {args.seed}; runs in {out}\n")
    print_rows(rows)
    from polyjepa.results import save_result

    save_result("audio-fsdd", title=f"A-JEPA on FSDD ({len(dig.x):,} / {len(dig.x_test)}, readout {ev.pool})",
                columns=COLUMNS, rows=result_rows(rows),
                notes=[f"official split (takes 0-4 test); seed {args.seed}"], extra={"seed": args.seed})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""MuQ-style Mel-RVQ token targets against A-JEPA's latent targets on spoken digits (FSDD, official split).

    python benchmarks/audio_muq.py [FSDD.npz] [--epochs 10] [--arms muq,ajepa] [--out DIR] [--seed 0] [key=value ...]

Pretrains the bundled ``muq-fsdd`` recipe (predict the residual-quantiser ids of masked 4 x 4 log-mel
patches, cross-entropy per codebook) and the ``ajepa`` recipe (regress the EMA teacher's features of
the same masked patches) with the same tokens, encoder, masks, optimiser and number of epochs. Then
probes every encoder and the baselines the same way on the same split: linear probe and kNN for the
digit, linear probe for the speaker; baselines are a random-init encoder of the same architecture,
the raw log-mel input and MFCC summary statistics. Also prints the quantiser itself: the error left
after each codebook and each codebook's perplexity on the test clips' patches.
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
ARMS = {"muq": ("muq-fsdd", "Mel-RVQ token targets (muq-fsdd)"), "ajepa": ("ajepa", "latent EMA targets (ajepa)")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=10, help="training epochs of every arm")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    ap.add_argument("--out", default=None, help="folder for the run directories (default: a new temporary folder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("overrides", nargs="*", help="recipe overrides for every arm, section.key=value")
    args = ap.parse_intermixed_args(argv)
    data_file(args, DEFAULT_DATA, "FSDD file", f"the FSDD .npz, e.g. python benchmarks/audio_muq.py {DEFAULT_DATA}")
    arms = [a for a in args.arms.split(",") if a]
    if not arms or any(a not in ARMS for a in arms):
        sys.exit(f"error: --arms must name some of {', '.join(ARMS)}")

    import torch

    torch.set_num_threads(1)
    from polyjepa.audio.data import load_audio
    from polyjepa.audio.mfcc import mfcc_summary
    from polyjepa.config import EvalConfig, dataclass_from, part_kwargs
    from polyjepa.eval.embed import embed_array
    from polyjepa.eval.probes import knn_probe, linear_probe
    from polyjepa.results import save_result
    from polyjepa.runner import build_random, load_run_method, open_run, pretrain
    from polyjepa.targets.rvq import patchify

    t_all = time.time()
    out = Path(args.out or tempfile.mkdtemp(prefix="audio-muq-"))
    extra = list(args.overrides) + ["train.threads=1", f"train.max_epochs={args.epochs}", "train.max_steps=null",
                                    "eval.baselines=false"]
    summaries = {}
    for arm in arms:
        run_dir = out / arm
        if (run_dir / "summary.json").exists():
            summaries[arm] = json.loads((run_dir / "summary.json").read_text())
            continue
        t0 = time.time()
        summaries[arm] = pretrain(ARMS[arm][0], data=args.data, out=str(run_dir), seed=args.seed, overrides=extra,
                                  progress=False, echo=lambda *a, **k: None)
        print(f"{arm}: {summaries[arm]['steps']} steps, {(time.time() - t0) / 60:.1f} min", flush=True)

    _, cfg, info = open_run(out / arms[0])
    opts = part_kwargs(cfg, "data")
    dig = load_audio(args.data, **{**opts, "label": "digit"}, fitted=info["meta"])
    spk = load_audio(args.data, **{**opts, "label": "speaker"}, fitted=info["meta"])
    ev = dataclass_from(cfg, "eval", EvalConfig)

    def probes(train_f, test_f):
        return {"digit": linear_probe(train_f, dig.y, test_f, dig.y_test, seed=args.seed)["accuracy"],
                "digit_knn": knn_probe(train_f, dig.y, test_f, dig.y_test, k=ev.knn_k)["accuracy"],
                "speaker": linear_probe(train_f, spk.y, test_f, spk.y_test, seed=args.seed)["accuracy"]}

    def enc_feats(enc):
        return embed_array(enc, dig.x, pool=ev.pool, layers=ev.layers), embed_array(enc, dig.x_test, pool=ev.pool,
                                                                                  layers=ev.layers)

    rows, built = [], {}
    for arm in arms:
        method, _, _ = load_run_method(out / arm)
        built[arm] = method
        enc = method.encoder()
        s = summaries[arm]
        rows.append((ARMS[arm][1], probes(*enc_feats(enc)), s["rankme"],
                     f"{s['steps']} steps, {s['train_seconds'] / 60:.1f} min"))
    rows.append(("random-init encoder", probes(*enc_feats(build_random(cfg, info))), None, ""))
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    rows.append(("raw log-mel", probes(flat(dig.x), flat(dig.x_test)), None, ""))
    rows.append(("MFCC summary stats (52-d)", probes(mfcc_summary(dig.x), mfcc_summary(dig.x_test)), None, ""))

    notes = [f"official split (takes 0-4 test); seed {args.seed}; {args.epochs} epochs per arm; readout {ev.pool}"]
    enc0 = (built.get("muq") or built[arms[0]]).encoder()
    tok, vit = enc0.tokenizer, enc0.encoder
    notes.append(f"encoder built: {type(tok).__name__} patch {tok.patch_size} grid {tok.grid}, width {enc0.dim}, "
                 f"{len(vit.blocks)} blocks; input {tuple(dig.x.shape[1:])}")
    if "muq" in built:
        target = built["muq"].target
        test_patches = patchify(torch.from_numpy(dig.x_test), target.patch).reshape(-1, target.rvq.dim)
        errs = target.rvq.residual_errors(test_patches)
        perp = target.rvq.perplexity(target.rvq.quantize(test_patches)).tolist()
        notes.append(f"quantiser (fitted on training patches) on test patches: {target.n_codebooks} codebooks x "
                     f"{target.n_codes} codes of {target.rvq.dim} values; mean squared error after 0..C codebooks "
                     + ", ".join(f"{e:.3f}" for e in errs) + "; perplexity per codebook "
                     + ", ".join(f"{p:.1f}" for p in perp))

    print(f"\nFSDD {args.data}: {len(dig.x)} train / {len(dig.x_test)} test; runs in {out}\n")
    for n in notes:
        print(f"- {n}")
    print()
    print_rows(rows)
    save_result("audio-muq", title=f"Mel-RVQ token targets vs latent targets on FSDD ({len(dig.x):,} / {len(dig.x_test)})",
                columns=COLUMNS, rows=result_rows(rows),
                seconds=time.time() - t_all, notes=notes, extra={"seed": args.seed, "epochs": args.epochs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""MuQ-style Mel-RVQ token targets against A-JEPA's latent targets on real music clips (librosa's example tracks).

    python benchmarks/audio_music.py [MUSIC.npz] [--steps 200] [--seeds 0,1,2] [--arms muq,ajepa] [--out DIR]
                                     [key=value ...]

The data are 124 clips of 4 s cut from 8 recordings, with a style label per recording. Clips of one
recording are not independent, so nothing here trains a probe and tests it on clips of the same recording:

- pretraining (``muq-fsdd`` and ``ajepa`` recipes, same tokens, encoder, masks, optimiser and steps) sees all
  124 clips without any label;
- *same-recording AP*: over all pairs of clips, the average precision of "same recording" ranked by cosine
  distance between embeddings (no training on labels; the word-discrimination measure of ``audio_words``);
- *style, leave one recording out*: a linear probe trained on the clips of the other 7 recordings predicts
  the style of the held-out recording's clips; only recordings whose style has another recording can be
  right (classical: brahms, nutcracker; jazz: vibeace, trumpet), and the score is the mean over those
  four recordings of the fraction of their clips given the right style.

Baselines: the same encoder at random init (one per seed), the raw log-mel input and MFCC summary statistics.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _args import data_file
from _runs import print_table

DEFAULT_DATA = "../shared/data/music_librosa_data_4s_16k.npz"
ARMS = {"muq": ("muq-fsdd", "Mel-RVQ token targets (muq-fsdd)"), "ajepa": ("ajepa", "latent EMA targets (ajepa)")}
COLUMNS = ["representation", "same-recording AP", "style, leave one recording out", "per seed (AP / style)",
           "training"]


def same_recording_ap(feats: np.ndarray, track: np.ndarray) -> float:
    from polyjepa.audio.wordembed import average_precision, cosine_distances

    return average_precision(cosine_distances(feats), track)


def style_leave_one_out(feats: np.ndarray, style: np.ndarray, track: np.ndarray, seed: int) -> float:
    """Mean over the recordings whose style another recording shares of the fraction of their clips whose
    style a linear probe trained on the other recordings' clips gets right."""
    from polyjepa.eval.probes import linear_probe

    scores = []
    for t in np.unique(track):
        held = track == t
        if not (style[~held] == style[held][0]).any():
            continue                  # a style no other recording has cannot be learned from the others
        scores.append(linear_probe(feats[~held], style[~held], feats[held], style[held], seed=seed)["accuracy"])
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--steps", type=int, default=200, help="training steps of every arm")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated pretraining seeds")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    ap.add_argument("--out", default=None, help="folder for the run directories (default: a new temporary folder)")
    ap.add_argument("overrides", nargs="*", help="recipe overrides for every arm, section.key=value")
    args = ap.parse_intermixed_args(argv)
    data_file(args, DEFAULT_DATA, "music file", f"the music .npz, e.g. python benchmarks/audio_music.py {DEFAULT_DATA}")
    arms = [a for a in args.arms.split(",") if a]
    if not arms or any(a not in ARMS for a in arms):
        sys.exit(f"error: --arms must name some of {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]

    import torch

    torch.set_num_threads(1)
    from polyjepa.audio.data import load_audio
    from polyjepa.audio.mfcc import mfcc_summary
    from polyjepa.config import EvalConfig, dataclass_from, part_kwargs
    from polyjepa.eval.embed import embed_array
    from polyjepa.results import save_result
    from polyjepa.build import build_method
    from polyjepa.runner import load_run_method, open_run, pretrain

    t_all = time.time()
    out = Path(args.out or tempfile.mkdtemp(prefix="audio-music-"))
    out.mkdir(parents=True, exist_ok=True)
    with np.load(args.data, allow_pickle=False) as z:
        rate, audio = int(z["sample_rate"]), z["audio"]
        track, names = z["track"].astype(np.int64), z["track_names"]
        style = np.unique(z["style"], return_inverse=True)[1]
    unlabelled = out / "clips_unlabelled.npz"        # what pretraining sees: the clips, no label arrays
    np.savez(unlabelled, audio=audio, sample_rate=np.int32(rate))
    extra = list(args.overrides) + ["train.threads=1", f"train.max_steps={args.steps}", "train.max_epochs=100000",
                                    "eval.baselines=false"]

    summaries = {}
    for arm in arms:
        for seed in seeds:
            run_dir = out / f"{arm}-{seed}"
            if (run_dir / "summary.json").exists():      # a finished run in --out is reused
                summaries[arm, seed] = json.loads((run_dir / "summary.json").read_text())
                continue
            t0 = time.time()
            summaries[arm, seed] = pretrain(ARMS[arm][0], data=str(unlabelled), out=str(out / f"{arm}-{seed}"),
                                            seed=seed, overrides=extra, progress=False, echo=lambda *a, **k: None)
            print(f"{arm} seed {seed}: {summaries[arm, seed]['steps']} steps, {(time.time() - t0) / 60:.1f} min",
                  flush=True)

    first = out / f"{arms[0]}-{seeds[0]}"
    _, cfg, info = open_run(first)
    clips = load_audio(str(unlabelled), **part_kwargs(cfg, "data"), fitted=info["meta"])
    x = clips.x
    ev = dataclass_from(cfg, "eval", EvalConfig)

    def scores(feats, seed=0):
        return same_recording_ap(feats, track), style_leave_one_out(feats, style, track, seed)

    def seeded_row(label, per_seed, training):
        ap_, st = np.array(per_seed).T
        spread = lambda v: f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v[0]:.3f}"  # noqa: E731
        return [label, spread(ap_), spread(st), "; ".join(f"{a:.3f} / {s:.3f}" for a, s in per_seed), training]

    rows, built = [], None
    for arm in arms:
        per_seed = []
        for seed in seeds:
            method, _, _ = load_run_method(out / f"{arm}-{seed}")
            built = built or method
            per_seed.append(scores(embed_array(method.encoder(), x, pool=ev.pool, layers=ev.layers), seed))
        s = summaries[arm, seeds[0]]
        minutes = np.mean([summaries[arm, sd]["train_seconds"] for sd in seeds]) / 60
        rows.append(seeded_row(ARMS[arm][1], per_seed, f"{s['steps']} steps, {minutes:.1f} min per seed"))
    rand = []
    for seed in seeds:
        enc0 = build_method(cfg, tuple(info["input_shape"]), seed, info.get("meta")).encoder()
        rand.append(scores(embed_array(enc0, x, pool=ev.pool, layers=ev.layers), seed))
    rows.append(seeded_row("random-init encoder", rand, ""))
    flat = x.reshape(len(x), -1)
    rows.append(seeded_row("raw log-mel", [scores(flat)], ""))
    rows.append(seeded_row("MFCC summary stats (52-d)", [scores(mfcc_summary(x))], ""))

    counts = {str(names[t]): int((track == t).sum()) for t in np.unique(track)}
    enc = built.encoder()
    tok = enc.tokenizer
    notes = [f"{len(x)} clips of {audio.shape[1] / rate:.0f} s from {len(counts)} recordings (clips per recording: "
             + ", ".join(f"{k} {v}" for k, v in counts.items()) + "); pretraining sees every clip and no label",
             f"encoder built: {type(tok).__name__} patch {tok.patch_size} grid {tok.grid}, width {enc.dim}, "
             f"{len(enc.encoder.blocks)} blocks; input {tuple(x.shape[1:])}; readout {ev.pool}",
             f"seeds {', '.join(map(str, seeds))}; same-recording AP over {len(x) * (len(x) - 1) // 2} clip pairs; "
             f"style scored on the 4 recordings whose style another recording shares (mean of per-recording "
             f"accuracy)"]
    print(f"\nmusic {args.data}; runs in {out}\n")
    for n in notes:
        print(f"- {n}")
    print_table("Same-recording AP and leave-one-recording-out style", COLUMNS, rows)
    save_result("audio-music", title=f"Mel-RVQ token targets vs latent targets on {len(x)} music clips "
                                     f"from {len(counts)} recordings",
                columns=COLUMNS, rows=rows, seconds=time.time() - t_all, notes=notes,
                extra={"seeds": seeds, "steps": args.steps})
    return 0


if __name__ == "__main__":
    sys.exit(main())

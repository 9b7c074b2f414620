"""The JEPA audio codec's bitrate / quality curve on FSDD: JEPA-trained encoder vs a random-init encoder.

    python benchmarks/audio_codec.py [FSDD.npz] [--levels 5x4,5x8,5x16] [--random-levels 5x8] [--jepa-epochs 8]
                                     [--decoder-epochs 6] [--seed 0] [key=value ...]

Builds the ``codec-fsdd`` recipe's codec, trains its encoder once by JEPA (stage 1), then for every FSQ
setting in --levels (``5x8`` = eight channels of 5 levels) trains the bottleneck and decoder on the frozen
encoder (stage 2), and for the settings in --random-levels does the same on a frozen random-init encoder of
the same architecture (no stage 1), same data, epochs and seed. For each: bits per second, mel distance of
the decoded log-mels and of the decoded waveforms (Griffin-Lim, re-analysed) to the originals in dB, and the accuracy of an FSDD digit
classifier (logistic regression on MFCC statistics, fitted on the original training clips) on the decoded
test clips against the original ones.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time

from _args import data_file

DEFAULT_DATA = "../shared/data/fsdd.npz"


def parse_levels(text: str) -> list[tuple[int, ...]]:
    out = []
    for item in text.split(","):
        if "x" in item:
            v, n = item.split("x")
            out.append((int(v),) * int(n))
        else:
            out.append(tuple(int(v) for v in item.split("-")))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--levels", default="5x4,5x8,5x16", help="FSQ settings: 5x8 = 8 channels of 5 levels; 8-5-5-5 = listed")
    ap.add_argument("--random-levels", default="5x8", help="the FSQ settings that also get a random-init encoder row "
                    "(default 5x8; 'all' for every one)")
    ap.add_argument("--jepa-epochs", type=int, default=8)
    ap.add_argument("--decoder-epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("overrides", nargs="*", help="recipe overrides, section.key=value")
    args = ap.parse_intermixed_args(argv)
    data_file(args, DEFAULT_DATA, "FSDD file", f"the FSDD .npz, e.g. python benchmarks/audio_codec.py {DEFAULT_DATA}")

    import torch

    torch.set_num_threads(1)
    from polyjepa.audio.codec_run import MEL_KEYS, clips_from, evaluate_codec, train_codec
    from polyjepa.audio.data import load_audio
    from polyjepa.config import TrainConfig, dataclass_from, load_recipe, part_kwargs
    from polyjepa.registry import build_part
    from polyjepa.results import save_result

    t_all = time.time()
    cfg = load_recipe("codec-fsdd", list(args.overrides) + [f"data.source={args.data}"])
    data_opts = part_kwargs(cfg, "data")
    opts = {k: v for k, v in data_opts.items() if k in ("label", "sample_rate", "frames", "crop", *MEL_KEYS)}
    tc = dataclass_from(cfg, "train", TrainConfig)
    loaded = load_audio(args.data, **opts)
    xtr, vtr = clips_from(loaded.x)
    xte, vte = clips_from(loaded.x_test)
    meta = {"sample_rate": loaded.meta["sample_rate"], "mean": loaded.meta["mean"], "std": loaded.meta["std"],
            "mel": {k: opts.get(k, d) for k, d in (("n_mels", 40), ("win_ms", 25.0), ("hop_ms", 10.0), ("n_fft", None),
                                                   ("f_min", 20.0), ("f_max", None), ("window", "povey"))}}
    frame_rate = 1000.0 / float(meta["mel"]["hop_ms"])
    method_kw = part_kwargs(cfg, "method")

    def make(levels):
        torch.manual_seed(args.seed)
        return build_part("method", cfg, {**method_kw, "levels": list(levels)}, n_mels=xtr.shape[1])

    # stage 1 once: the JEPA encoder (its weights are copied into every FSQ setting's codec)
    t0 = time.time()
    jepa = make(parse_levels(args.levels)[0])
    train_codec(jepa, xtr, vtr, jepa_epochs=args.jepa_epochs, decoder_epochs=1, batch_size=tc.batch_size, lr=tc.lr,
                seed=args.seed)
    jepa_s = time.time() - t0
    print(f"stage 1 (JEPA, {args.jepa_epochs} epochs): {jepa_s / 60:.1f} min", flush=True)
    rows, built = [], None
    with_random = parse_levels(args.levels if args.random_levels == "all" else args.random_levels)
    for levels in parse_levels(args.levels):
        for enc_name in ("JEPA", "random init") if levels in with_random else ("JEPA",):
            codec = make(levels)
            if enc_name == "JEPA":
                codec.encoder.load_state_dict(jepa.encoder.state_dict())
            t0 = time.time()
            train_codec(codec, xtr, vtr, jepa_epochs=0, decoder_epochs=args.decoder_epochs, batch_size=tc.batch_size,
                        seed=args.seed)
            q = evaluate_codec(codec, meta, (xtr, vtr, loaded.y), (xte, vte, loaded.y_test), seed=args.seed)
            built = built or copy.deepcopy(codec)
            rows.append([enc_name, "x".join(map(str, levels)) if len(set(levels)) > 1 else f"{levels[0]}^{len(levels)}",
                         round(codec.bits_per_second(frame_rate)), round(q["mel_db"], 2), round(q["mel_db_waveform"], 2),
                         round(q["accuracy_decoded_mel"], 4), round(q["accuracy_decoded_waveform"], 4)])
            print(f"{enc_name} {levels}: {time.time() - t0:.0f} s; {rows[-1]}", flush=True)
    ref = q
    rows.append(["original clips (no codec)", "-", round(16 * meta["sample_rate"]), 0.0, round(ref["mel_db_griffin_lim_only"], 2),
                 round(ref["accuracy_original"], 4), round(ref["accuracy_griffin_lim_only"], 4)])
    enc = built.encoder
    notes = [f"FSDD official split: {len(xtr)} train / {len(xte)} test clips, first {xtr.shape[-1]} frames of "
             f"{xtr.shape[1]} log-mels ({meta['sample_rate']} Hz, hop {meta['mel']['hop_ms']} ms); seed {args.seed}",
             f"codec built: width {built.dim}, stride {built.stride} ({frame_rate / built.stride:g} tokens/s), "
             f"{sum(p.numel() for p in enc.parameters()):,} encoder and "
             f"{sum(p.numel() for p in built.decoder.parameters()):,} decoder parameters; JEPA stage {args.jepa_epochs} "
             f"epochs ({jepa_s / 60:.1f} min), decoder stage {args.decoder_epochs} epochs per row",
             "mel distance: mean |difference| of log-mel energies over real frames, dB; 'waveform' = Griffin-Lim "
             "(32 iterations) of the decoded log-mels, analysed again; the last row's waveform column is Griffin-Lim "
             "of the original log-mels (what the vocoder alone loses) and its bits/s are 16-bit PCM",
             "digit accuracy: logistic regression on MFCC summary statistics fitted on the original training clips, "
             f"tested on the decoded test clips (original test clips: {ref['accuracy_original']:.4f})"]
    columns = ["encoder", "FSQ levels", "bits/s", "mel dB (decoded mel)", "mel dB (decoded waveform)",
               "digit acc. (decoded mel)", "digit acc. (decoded waveform)"]
    print()
    for n in notes:
        print(f"- {n}")
    print("\n| " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * (len(columns) - 2))
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    save_result("audio-codec", title="JEPA audio codec on FSDD: bitrate vs quality, JEPA vs random-init encoder",
                columns=columns, rows=rows, seconds=time.time() - t_all, notes=notes,
                extra={"seed": args.seed, "jepa_epochs": args.jepa_epochs, "decoder_epochs": args.decoder_epochs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

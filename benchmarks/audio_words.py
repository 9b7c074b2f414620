"""Joint acoustic-phonetic word embeddings: word discrimination AP and cross-view retrieval against MFCC + DTW.

    python benchmarks/audio_words.py [--fsdd FSDD.npz] [--arabic ARABIC.npz] [--epochs 20] [--seed 0]

Trains the audio tower and the symbol tower jointly (pair loss with margin, audio-symbols and audio-audio
pairs) on FSDD's official training split with CMUdict phonemes of the digit words, and on the Arabic speech
commands' speaker-disjoint training split with the letters of each keyword's English gloss as the symbol
side (CMUdict is English and the set carries no Arabic spelling: that symbol side names the word, it does
not spell its sound). On each test split: average precision of same-word vs different-word pairs ranked by
embedding distance, and cross-view retrieval (is the nearest symbol sequence the spoken word's), against
the same towers untrained, MFCC + DTW (cosine frame cost, c1-c12), and MFCC summary statistics.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

FSDD = "../shared/data/fsdd.npz"
ARABIC = "../shared/data/arabic_speech_commands_8k_640.npz"


def arabic_clips(path: str, n_mels: int):
    """(x (n, n_mels, T) normalised log-mels, valid (n, T), labels, split, class names) of the Arabic set."""
    import torch

    from polyjepa.audio.melspec import log_mel

    z = np.load(path, allow_pickle=False)
    audio = torch.from_numpy(z["audio"].astype(np.float32) / 32768.0)
    spec = log_mel(audio, int(z["sample_rate"]), n_mels=n_mels)              # (n, n_mels, T)
    split = z["split"]
    tr = split == "train"
    mean, std = float(spec[tr].mean()), float(spec[tr].std())
    x = (spec - mean) / std
    return x, torch.ones(x.shape[0], x.shape[2], dtype=torch.bool), z["labels"].astype(np.int64), split, list(z["class_names"])


def evaluate(name, model, x, valid, y, symbol_ids, seed):
    """Rows for one data set: the trained towers, the untrained ones, MFCC + DTW, MFCC statistics."""
    import torch

    from polyjepa.audio.mfcc import mfcc, mfcc_summary
    from polyjepa.audio.wordembed import JointWordEmbedder, average_precision, cosine_distances, dtw_distances

    def towers(m):
        with torch.no_grad():
            ea = m.audio(x, valid).numpy()
            es = m.symbols(symbol_ids).numpy()
        ap = average_precision(cosine_distances(ea), y)
        retrieval = float(((ea @ es.T).argmax(1) == y).mean())
        return ap, retrieval

    rows = []
    ap, r = towers(model)
    rows.append([name, "joint acoustic-symbol towers (trained)", round(ap, 4), round(r, 4)])
    torch.manual_seed(seed)
    fresh = JointWordEmbedder(n_mels=x.shape[1], n_symbols=model.symbols.embed.num_embeddings - 1,
                              dim=model.audio.proj.out_features).eval()
    ap, r = towers(fresh)
    rows.append([name, "same towers, random init", round(ap, 4), round(r, 4)])
    c = mfcc(x.numpy(), 13)                                                   # (n, 13, T)
    seqs = [c[i, 1:][:, valid[i].numpy()].T for i in range(len(c))]          # (T_i, 12): c1-c12 of the real frames
    t0 = time.time()
    rows.append([name, "MFCC + DTW", round(average_precision(dtw_distances(seqs, chunk=1500), y), 4), None])
    dtw_s = time.time() - t0
    stats = mfcc_summary(x.numpy(), valid=valid.numpy())
    stats = (stats - stats.mean(0)) / (stats.std(0) + 1e-8)
    rows.append([name, "MFCC summary statistics (52-d), cosine", round(average_precision(cosine_distances(stats), y), 4),
                 None])
    return rows, dtw_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fsdd", default=FSDD)
    ap.add_argument("--arabic", default=ARABIC)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n-mels", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for p in (args.fsdd, args.arabic):
        if not Path(p).is_file():
            sys.exit(f"error: {p} not found: pass --fsdd / --arabic")

    import torch

    torch.set_num_threads(1)
    from polyjepa.audio.augment import padding_frames
    from polyjepa.audio.data import load_audio
    from polyjepa.audio.phonetic import DIGIT_WORDS, symbol_table
    from polyjepa.audio.wordembed import JointWordEmbedder, encode_symbols, train_word_embedder
    from polyjepa.results import save_result

    t_all = time.time()
    rows, notes = [], []
    # FSDD: the spoken digit, CMUdict phonemes
    d = load_audio(args.fsdd, label="digit", n_mels=args.n_mels, frames=96, crop="start")
    xtr, xte = torch.from_numpy(d.x[:, 0]), torch.from_numpy(d.x_test[:, 0])
    vtr, vte = ~padding_frames(xtr), ~padding_frames(xte)
    seqs, vocab = symbol_table(list(DIGIT_WORDS), "phonemes")
    ids = encode_symbols(seqs, vocab)
    torch.manual_seed(args.seed)
    model = JointWordEmbedder(n_mels=args.n_mels, n_symbols=len(vocab))
    t0 = time.time()
    hist = train_word_embedder(model, xtr, vtr, torch.from_numpy(d.y), ids, epochs=args.epochs, seed=args.seed)
    train_s = time.time() - t0
    r, dtw_s = evaluate("FSDD (CMUdict phonemes)", model, xte, vte, d.y_test, ids, args.seed)
    rows += r
    notes.append(f"FSDD official split {len(xtr)} / {len(xte)} (the same 10 words in both; speakers shared), first 96 "
                 f"frames of {args.n_mels} log-mels; {args.epochs} epochs in {train_s / 60:.1f} min (loss "
                 f"{hist[0]:.3f} -> {hist[-1]:.3f}); DTW over {len(xte) * (len(xte) - 1) // 2:,} pairs in {dtw_s:.0f} s; "
                 f"phonemes e.g. seven = {' '.join(seqs[7])}")
    # Arabic speech commands: speaker-disjoint split, letters of the English gloss
    x, valid, y, split, names = arabic_clips(args.arabic, args.n_mels)
    seqs, vocab = symbol_table(names, "letters")
    ids = encode_symbols(seqs, vocab)
    tr, te = split == "train", split == "test"
    torch.manual_seed(args.seed)
    model = JointWordEmbedder(n_mels=args.n_mels, n_symbols=len(vocab))
    t0 = time.time()
    hist = train_word_embedder(model, x[tr], valid[tr], torch.from_numpy(y[tr]), ids, epochs=args.epochs * 3,
                               batch_size=40, seed=args.seed)
    train_s = time.time() - t0
    r, dtw_s = evaluate("Arabic commands (letters of the English gloss)", model, x[te], valid[te], y[te], ids, args.seed)
    rows += r
    notes.append(f"Arabic speech commands: speaker-disjoint train {int(tr.sum())} / test {int(te.sum())} (val unused), "
                 f"40 keywords, 1 s clips; {args.epochs * 3} epochs in {train_s / 60:.1f} min (loss {hist[0]:.3f} -> "
                 f"{hist[-1]:.3f}); the symbol side is the English gloss's letters (CMUdict is English; the set has no "
                 f"Arabic spelling), so retrieval there is naming, not spelling")
    enc = model.audio
    notes.append(f"towers built: audio {sum(p.numel() for p in enc.parameters()):,} parameters (3 dilated convs of "
                 f"width {enc.net[0].out_channels}, mean+max pooling), symbols "
                 f"{sum(p.numel() for p in model.symbols.parameters()):,} (embedding + BiGRU), "
                 f"{enc.proj.out_features}-d unit embeddings, margin {model.margin}; seed {args.seed}")
    notes.append("AP: average precision of same-word pairs among all test pairs ranked by distance; retrieval: share "
                 "of test clips whose nearest symbol-sequence embedding is their word's (chance 0.1 / 0.025)")
    columns = ["data", "representation", "word discrimination AP", "audio -> symbols R@1"]
    for n in notes:
        print(f"- {n}")
    print("\n| " + " | ".join(columns) + " |\n|---|---|---:|---:|")
    for row in rows:
        print("| " + " | ".join("-" if v is None else str(v) for v in row) + " |")
    save_result("audio-words", title="Joint acoustic-phonetic word embeddings vs MFCC + DTW", columns=columns,
                rows=rows, seconds=time.time() - t_all, notes=notes, extra={"seed": args.seed, "epochs": args.epochs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Compare probe readouts (layer, pooling, target vs online encoder) of a finished run, against a random init.

    python benchmarks/readouts.py RUN_DIR [--max-train 8000]

Prints linear-probe accuracy for each readout; the same readouts of a random-init encoder of the
same architecture are shown beside them (same split, same probe).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from polyjepa.config import DataConfig, dataclass_from
from polyjepa.data.prepare import prepare
from polyjepa.eval.probes import knn_probe, linear_probe
from polyjepa.runner import build_random, load_run_method


@torch.no_grad()
def layer_tokens(backbone, x, batch=512):
    """(n, depth, N, D): every block's normalised token output."""
    outs = []
    for i in range(0, len(x), batch):
        t = backbone.tokenizer(torch.from_numpy(x[i:i + batch]))
        per = []
        for blk in backbone.encoder.blocks:
            t = blk(t)
            per.append(backbone.encoder.norm(t))
        outs.append(torch.stack(per, 1))
    return torch.cat(outs).numpy()


def readouts(tokens, grid):
    n, L, N, D = tokens.shape
    gh, gw = grid
    out = {}
    for name, sel in {"last": [L - 1], "last2": [L - 2, L - 1], "last4": list(range(max(0, L - 4), L)),
                      "mid": [L // 2]}.items():
        t = tokens[:, sel].mean(1)  # (n, N, D)
        out[f"{name}/mean"] = t.mean(1)
        g = t.reshape(n, gh, gw, D)
        h2, w2 = gh // 2, gw // 2
        quads = [g[:, :h2 + gh % 2, :w2 + gw % 2], g[:, :h2 + gh % 2, w2:], g[:, h2:, :w2 + gw % 2], g[:, h2:, w2:]]
        out[f"{name}/grid2"] = np.concatenate([q.mean((1, 2)) for q in quads], 1)
        out[f"{name}/tokens"] = t.reshape(n, -1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--knn", action="store_true")
    args = ap.parse_args()
    method, cfg, info = load_run_method(args.run_dir)
    data = prepare(dataclass_from(cfg, "data", DataConfig), {"mean": info["mean"], "std": info["std"]})
    grid = method.backbone.tokenizer.grid
    encs = {"target": method.target.model, "online": method.backbone, "random": build_random(cfg, info)}
    print(f"{'readout':<16}" + "".join(f"{k:>9}" for k in encs))
    feats = {}
    for k, enc in encs.items():
        tr, te = layer_tokens(enc, data.x_train), layer_tokens(enc, data.x_test)
        feats[k] = (readouts(tr, grid), readouts(te, grid))
    for r in feats["target"][0]:
        row = f"{r:<16}"
        for k in encs:
            a = linear_probe(feats[k][0][r], data.y_train, feats[k][1][r], data.y_test, C=0.1 if "tokens" in r else "auto")
            row += f"{a['accuracy']:9.4f}"
            if args.knn:
                row += f"/{knn_probe(feats[k][0][r], data.y_train, feats[k][1][r], data.y_test)['accuracy']:.3f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()

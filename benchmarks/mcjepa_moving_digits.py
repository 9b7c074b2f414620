"""MC-JEPA on moving digits: optical flow against the generator's ground truth, and content probes.

    .venv/bin/python benchmarks/mcjepa_moving_digits.py ../shared/data/mnist_t10k.npz [--steps 600] [key=value ...]

Clips of one MNIST digit (14 x 14) bouncing in a 32 x 32 frame (8 frames, 1-3 px/frame); train and test
clips come from disjoint digit images. The recipe ``mcjepa-moving-digits`` is trained three ways for the
same steps: joint (flow + content, MC-JEPA), content only (VICReg, no flow terms) and motion only (flow
terms and VCR, no VICReg). Then, on held-out clips:

* flow: end-point error (EPE, pixels) of the full-resolution flow between frames t and t + 1 against the
  generator's exact flow, on the digit's pixels (where motion is observable) and on all pixels, next to
  zero flow and OpenCV's Farneback (``pip install 'polyjepa[flow]'``; skipped if absent).
* content: linear (logistic regression) and kNN probes of the digit's class from the encoder's pooled
  features (mean of the coarsest level, averaged over frames), against a random-init encoder of the
  same shape and the raw clip pixels, same split, same probes.
* segmentation: a linear probe of each cell of the 8 x 8 coarsest grid of frame 0 (the digit's class
  where the digit covers >= 25 % of the cell, else background: 11 classes), reading the cell's
  features (coarsest level + the finer level averaged to that grid); raw pixels read the cell's 4 x 4
  pixels. Scored by balanced accuracy (mean recall over the 11 classes), since most cells are background.

Runs on one thread (OMP_NUM_THREADS=1 is set below); times on a shared machine are inflated.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import data_file  # noqa: E402

DATA = dict(frames=8, frame_size=32, digit_size=14, digits=1, speed=(1.0, 3.0), n_train=4000, n_test=1000,
            test_digits=0.2)
VARIANTS = {"MC-JEPA (flow + content)": [], "content only (VICReg)": ["method.motion_weight=0"],
            "motion only (flow + VCR)": ["method.content_weight=0"]}


def flow_pairs(split, n: int):
    """(frames t (m, 1, S, S) raw, frames t + 1, ground-truth flow (m, 2, S, S), valid (m, S, S)) of the
    first ``n`` clips, frame t = clip index mod (T - 1) so that every time step is covered."""
    idx = np.arange(min(n, len(split.clips)))
    t = idx % (split.clips.shape[2] - 1)
    flow, valid = split.flow(idx, t)
    return split.clips[idx, :, t], split.clips[idx, :, t + 1], flow, valid


@torch.no_grad()
def model_flow(method, a: np.ndarray, b: np.ndarray, mean: float, std: float) -> np.ndarray:
    method.eval()
    out = [method.estimate_flow(torch.from_numpy((a[i:i + 256] - mean) / std),
                                torch.from_numpy((b[i:i + 256] - mean) / std)).numpy() for i in range(0, len(a), 256)]
    return np.concatenate(out)


def epe_pair(flow, truth, valid) -> tuple[float, float]:
    from polyjepa.worldmodel.flow import endpoint_error

    return endpoint_error(flow, truth, valid), endpoint_error(flow, truth)


def seg_labels(split, n: int, cells: int) -> np.ndarray:
    """(n * cells^2,) label of each cell of frame 0: the digit's class where its ink covers >= 25 % of the
    cell, else 10 (background)."""
    S = split.clips.shape[-1]
    ink = split.clips[:n, 0, 0] > 0.3                                         # (n, S, S)
    c = S // cells
    cover = ink.reshape(n, cells, c, cells, c).mean((2, 4))                   # (n, cells, cells)
    lab = np.where(cover >= 0.25, split.labels[:n, 0, None, None], 10)
    return lab.reshape(-1)


@torch.no_grad()
def cell_features(encoder, x: np.ndarray) -> np.ndarray:
    """(n * g^2, F) per-cell features of frames x (n, 1, S, S) on the coarsest grid g: the coarsest level
    and the finer levels average-pooled to it."""
    encoder.eval()
    pyr = encoder(torch.from_numpy(x))
    g = pyr[-1].shape[-1]
    f = torch.cat([torch.nn.functional.adaptive_avg_pool2d(p, g) for p in pyr], 1)  # (n, F, g, g)
    return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).numpy()


def seg_probe(train_x, train_y, test_x, test_y) -> float:
    """Balanced accuracy (mean recall over the 11 classes, so the many background cells count as one class)
    of logistic regression on standardised cell features."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300, tol=1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_x, train_y)
    return float(balanced_accuracy_score(test_y, model.predict(test_x)))


def raw_cells(x: np.ndarray, cells: int) -> np.ndarray:
    n, S = len(x), x.shape[-1]
    c = S // cells
    return x[:, 0].reshape(n, cells, c, cells, c).transpose(0, 1, 3, 2, 4).reshape(n * cells * cells, c * c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", default="../shared/data/mnist_t10k.npz",
                    help="MNIST-style .npz (default ../shared/data/mnist_t10k.npz)")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, e.g. method.smooth_weight=0.5")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flow-pairs", type=int, default=1000, help="test pairs scored for EPE")
    ap.add_argument("--seg-clips", type=int, nargs=2, default=(800, 400), help="train/test clips of the segmentation probe")
    ap.add_argument("--variants", default=",".join(str(i) for i in range(len(VARIANTS))),
                    help="which variants to train, by index (0 joint, 1 content only, 2 motion only)")
    ap.add_argument("--no-save", action="store_true", help="print only (no results/mcjepa_moving_digits.json)")
    args = ap.parse_args()
    data_file(args, "../shared/data/mnist_t10k.npz", "MNIST file", "an MNIST-style .npz such as ../shared/data/mnist_t10k.npz")
    torch.set_num_threads(1)
    t_start = time.time()

    from polyjepa.build import build_method
    from polyjepa.config import TrainConfig, load_recipe
    from polyjepa.eval.embed import embed_array
    from polyjepa.eval.probes import knn_probe, linear_probe
    from polyjepa.runner import train_method
    from polyjepa.video.sources import moving_digit_split
    from polyjepa.worldmodel.flow import farneback_flow

    train, test, _ = moving_digit_split(args.data, seed=args.seed, **DATA)
    mean, std = float(train.clips.mean()), float(train.clips.std())
    xtr, xte = (train.clips - mean) / std, (test.clips - mean) / std
    ytr, yte = train.labels[:, 0], test.labels[:, 0]
    shape = tuple(xtr.shape[1:])
    a, b, truth, valid = flow_pairs(test, args.flow_pairs)
    n_tr, n_te = args.seg_clips
    seg_ytr, seg_yte = seg_labels(train, n_tr, 8), seg_labels(test, n_te, 8)
    seg_xtr, seg_xte = xtr[:n_tr, :, 0], xte[:n_te, :, 0]
    tc = TrainConfig(batch_size=args.batch_size, max_steps=args.steps, lr=2e-3, start_lr=2e-4, warmup=0.1,
                     weight_decay=(0.0, 0.0), monitor_every=0, checkpoint_every=10 ** 9, threads=1)

    rows, extra = [], {"variants": {}}

    def probe_row(name, enc, feats_tr=None, feats_te=None, cells=None, flow=None, minutes=None):
        if feats_tr is None:
            feats_tr, feats_te = embed_array(enc, xtr), embed_array(enc, xte)
        lin = linear_probe(feats_tr, ytr, feats_te, yte, seed=args.seed)["accuracy"]
        knn = knn_probe(feats_tr, ytr, feats_te, yte, k=20)["accuracy"]
        ctr, cte = cells if cells is not None else (cell_features(enc, seg_xtr), cell_features(enc, seg_xte))
        seg = seg_probe(ctr, seg_ytr, cte, seg_yte)
        epe = epe_pair(flow, truth, valid) if flow is not None else (None, None)
        row = [name, epe[0], epe[1], lin, knn, seg, minutes]
        rows.append(row)
        extra["variants"][name] = dict(zip(["epe_digit", "epe_all", "class_linear", "class_knn", "seg_balanced_accuracy",
                                            "train_minutes"], row[1:]))
        print(" | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row), flush=True)

    config = None
    for i, (name, extra_over) in enumerate(VARIANTS.items()):
        if str(i) not in args.variants.split(","):
            continue
        cfg = load_recipe("mcjepa-moving-digits", list(args.overrides) + extra_over)
        method = build_method(cfg, shape, seed=args.seed)
        if config is None:
            enc = method.encoder()
            config = (f"encoder: stem {enc.stem[0].out_channels} ch at {shape[-1]}x{shape[-1]}, levels "
                      f"{list(enc.widths)} ch at {[shape[-1] // 2 ** (k + 1) for k in range(len(enc.widths))]} px; "
                      f"flow: correlation radii {list(method.flow.radii)} (fine to coarse), estimator width "
                      f"{method.flow.estimators[0][0][0].out_channels}; {sum(p.numel() for p in enc.parameters())} "
                      f"encoder parameters, {sum(p.numel() for p in method.parameters())} in all")
            print(config, flush=True)
            weights = {k: getattr(method, k) for k in ("feature_weight", "photo_weight", "smooth_weight",
                                                       "cycle_weight", "vc_weight")}
            print(f"motion terms: {weights}", flush=True)
        t0 = time.time()
        train_method(method, xtr, train=tc, seed=args.seed, progress=False)
        minutes = (time.time() - t0) / 60
        flow = model_flow(method, a, b, mean, std) if method.motion_weight > 0 else None
        probe_row(name, method.encoder(), flow=flow, minutes=round(minutes, 2))

    random = build_method(load_recipe("mcjepa-moving-digits", list(args.overrides)), shape, seed=args.seed)
    probe_row("random-init encoder (zero flow)", random.encoder(), flow=np.zeros_like(truth))
    probe_row("raw pixels", None, feats_tr=xtr.reshape(len(xtr), -1), feats_te=xte.reshape(len(xte), -1),
              cells=(raw_cells(seg_xtr, 8), raw_cells(seg_xte, 8)))
    try:
        t0 = time.time()
        fb = farneback_flow(a, b)
        extra["farneback_seconds"] = time.time() - t0
        row = ["Farneback (OpenCV)", *epe_pair(fb, truth, valid), None, None, None, None]
        rows.append(row)
        print(" | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row), flush=True)
    except Exception as e:  # noqa: BLE001 - an absent optional package is reported, not fatal
        print(f"Farneback skipped: {e}")

    columns = ["representation", "EPE digit px", "EPE all px", "class linear", "class kNN", "seg bal. acc",
               "train min"]
    print(f"\n{config}\ntrained {args.steps} steps at batch {args.batch_size}; {len(a)} test pairs; "
          f"{len(xtr)} / {len(xte)} clips; segmentation {n_tr} / {n_te} clips x 64 cells\n")
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join("-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in r) + " |")
    seconds = time.time() - t_start
    print(f"\n{seconds / 60:.1f} min in all")
    if not args.no_save:
        from polyjepa.results import save_result

        path = save_result("mcjepa_moving_digits", columns=columns, rows=rows, seconds=seconds,
                           title="MC-JEPA on moving MNIST digits: flow EPE vs ground truth, content probes",
                           notes=[config, f"{args.steps} steps, batch {args.batch_size}, seed {args.seed}",
                                  "EPE: mean end-point error in pixels of the flow from frame t to t + 1; 'digit' "
                                  "over the digit's pixels, 'all' over every pixel (the background is static)",
                                  "seg bal. acc: balanced accuracy of an 11-class (digit class or background) linear "
                                  "probe of the 8x8 cells of frame 0"], extra=extra)
        print(f"saved {path}")


if __name__ == "__main__":
    main()

"""Implicit bias of deep linear JEPA vs MAE: measured learning order against the ODE theory.

    python benchmarks/theory_jepa_vs_mae.py [DATA.npz] [--depths 1,2,3] [--eps 1e-3] [--n 3000] [--out DIR]

Part 1, synthetic (the paper's setting): five features whose cross-view covariance lambda falls
(1.1 -> 1.0) while their regression coefficient rho rises (0.25 -> 0.9), drawn as samples whose
covariances are exactly diag(lambda / rho) and diag(lambda). Deep linear JEPA and MAE (encoder depth L,
linear predictor / decoder) are trained by full-batch gradient descent on the full matrices from a
balanced start of gain eps, diagonal or random orthogonal; each feature's learning time is when its
encoder gain (column norm of E) reaches half its final value. polyjepa.theory.deep_linear predicts the
same times in closed form. Printed: measured vs predicted order (Spearman with rho and with lambda).

Part 2, real data (depth 1 and the deepest): 16 principal components of MNIST (two RandomAffine views) plus 4 noise features
with a high cross-view covariance but a low regression coefficient (a shared component of variance
1.5 plus independent per-view noise of variance 6). The same models are trained; we report when the
noise and the digit features are learned, the share of the final embedding variance that comes from
the noise features, and a kNN probe (k = 10, digit labels) of the embeddings. Writes
results/theory-jepa-vs-mae.json and a PNG under --out (default docs/img/).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = "../shared/data/mnist_t10k.npz"
ROOT = Path(__file__).resolve().parents[1]
LR = {"mae": 0.02}


def lr_for(method: str, depth: int) -> float:
    """Step sizes that are stable and still short: JEPA's times grow as eps^-(2L-1)/L, its curvature does not."""
    return LR["mae"] if method == "mae" else {1: 0.2, 2: 0.5}.get(depth, 1.0)


def spearman(a, b):
    """Rank correlation, or "-" when a feature never reached half its final gain (no order measured)."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return "-"
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return round(float(np.corrcoef(ra, rb)[0, 1]), 2)


def exact_pairs(lam, rho, n, seed):
    """x, y (n, F) whose sample covariances are exactly diag(lam / rho) and E[y x^T] = diag(lam)."""
    rng = np.random.default_rng(seed)
    F = len(lam)

    def white(z):
        z = z - z.mean(0)
        c = z.T @ z / n
        return z @ np.linalg.inv(np.linalg.cholesky(c)).T

    z = white(rng.standard_normal((n, F)))
    e = rng.standard_normal((n, F))
    e = e - z @ (z.T @ e / n)                    # uncorrelated with z
    e = white(e)
    sigma = np.sqrt(lam / rho)
    x = z * sigma
    y = rho * x + e                              # E[y x^T] = rho sigma^2 = lambda
    return x, y


def covariances(x, y):
    n = len(x)
    return x.T @ x / n, y.T @ x / n


def synthetic(depths, eps, seed):
    """Five features, lambda falling and rho rising, diagonal (aligned) start; then the two-feature
    near tie (A: lambda 1.05, rho 0.3; B: lambda 1.0, rho 0.9) from a random orthogonal start."""
    from polyjepa.theory import final_gain, gain_crossing_times, learning_time, train_deep_linear

    rows, curves = [], {}
    settings = [("5 features", np.linspace(1.1, 1.0, 5), np.linspace(0.25, 0.9, 5), "diagonal", depths),
                ("near tie A/B", np.array([1.05, 1.0]), np.array([0.3, 0.9]), "orthogonal", sorted({1, max(depths)}))]
    for label, lam, rho, init, ds in settings:
        x, y = exact_pairs(lam, rho, 20000, seed)
        sxx, syx = covariances(x, y)
        for L in ds:
            for method in ("jepa", "mae"):
                pred = learning_time(method, lam, rho, L, eps)
                lr = lr_for(method, L)
                steps = int(1.6 * pred.max() / lr)
                run = train_deep_linear(method, sxx, syx, depth=L, eps=eps, lr=lr, steps=steps, init=init,
                                        seed=seed + 1, record_every=max(1, steps // 400))
                final = final_gain(method, rho, L)
                meas = gain_crossing_times(run.times, run.gains, final)
                if label == "5 features":
                    curves[(method, L)] = (pred, meas)
                err = np.abs(meas - pred) / pred
                rows.append([label, method.upper(), L, init, " ".join(f"{t:.4g}" for t in pred),
                             " ".join(f"{t:.4g}" for t in meas),
                             round(float(np.nanmax(err)), 4) if np.isfinite(err).any() else "-",
                             spearman(meas, -rho), spearman(meas, -lam), spearman(pred, -rho)])
    return settings[0][1], settings[0][2], rows, curves


def mnist_with_noise(path, n, seed):
    import torch

    from polyjepa.data.augment import RandomAffine

    p = Path(path)
    if p.exists():
        z = np.load(p)
        images, labels, src = z["images"][:n].astype(np.float32) / 255.0, z["labels"][:n], f"MNIST ({p.name})"
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        images, labels, src = d.images[:n].astype(np.float32) / 16.0, d.target[:n], "scikit-learn digits"
    aug = RandomAffine(rotate=15.0, scale=0.15, translate=0.2)
    gen = torch.Generator().manual_seed(seed)
    t = torch.from_numpy(images[:, None])
    a, b = aug(t, gen).flatten(1).double().numpy(), aug(t, gen).flatten(1).double().numpy()
    mu = (a.mean(0) + b.mean(0)) / 2
    a, b = a - mu, b - mu
    # PCA basis of the pooled views, scaled so the top component has unit variance
    cov = (a.T @ a + b.T @ b) / (2 * len(a))
    w, v = np.linalg.eigh(cov)
    v = v[:, ::-1][:, :16] / np.sqrt(w[-1])
    da, db = a @ v, b @ v
    rng = np.random.default_rng(seed + 1)
    shared = rng.standard_normal((len(a), 4)) * np.sqrt(1.5)
    na = shared + rng.standard_normal((len(a), 4)) * np.sqrt(6.0)
    nb = shared + rng.standard_normal((len(a), 4)) * np.sqrt(6.0)
    xa, xb = np.concatenate([da, na], 1), np.concatenate([db, nb], 1)
    return xa, xb, labels, src


def knn_accuracy(z, labels, k=10):
    from sklearn.neighbors import KNeighborsClassifier

    half = len(z) // 2
    clf = KNeighborsClassifier(n_neighbors=k).fit(z[:half], labels[:half])
    return float(clf.score(z[half:], labels[half:]))


def real(path, n, depths, eps, seed):
    from polyjepa.theory import gain_crossing_times, learning_time, train_deep_linear

    xa, xb, labels, src = mnist_with_noise(path, n, seed)
    sxx, syx = covariances(xa, xb)
    noise = np.arange(16, 20)
    digit = np.arange(16)
    lam = np.clip(np.diag(syx), 1e-6, None)
    rho = np.clip(lam / np.diag(sxx), 1e-6, None)
    rows, curves = [], {}
    rows.append(["raw features", "-", "-", "-", "-", "-", round(float(np.trace(sxx[16:, 16:]) / np.trace(sxx)), 3),
                 round(knn_accuracy(xa, labels), 4)])
    for L in sorted({min(depths), max(depths)}):
        for method in ("jepa", "mae"):
            ok = lam > 1e-3
            pred = np.full(len(lam), np.nan)
            # features whose start is already past their end point are not predicted (nan)
            w0 = eps ** (1 / L)
            end = rho if method == "jepa" else rho ** (1 / (L + 1))
            good = ok & (0.5 ** (1 / L) * end > w0)
            pred[good] = learning_time(method, lam[good], rho[good], L, eps)
            # the noise features' variance (7.5) is above the synthetic ones' (<= 4.4): half the JEPA step
            lr = lr_for(method, L) * (0.5 if method == "jepa" else 1.0)
            watched = np.concatenate([digit[:4], noise])
            steps = int(1.5 * np.nanmax(pred[watched]) / lr)
            run = train_deep_linear(method, sxx, syx, depth=L, eps=eps, lr=lr, steps=steps, init="diagonal",
                                    seed=seed, record_every=max(1, steps // 400))
            g = run.gains
            # each feature's half-way time to its own end-of-run gain (the digit block is not exactly
            # diagonal, so the theory's end gains are only approximate there), averaged per group
            t_half = gain_crossing_times(run.times, g, g[-1])
            t_noise, t_digit = float(np.nanmean(t_half[noise])), float(np.nanmean(t_half[digit[:4]]))
            E = run.E
            za = xa @ E.T
            var_noise = float(np.trace(E[:, noise] @ sxx[np.ix_(noise, noise)] @ E[:, noise].T))
            share = var_noise / float(np.trace(E @ sxx @ E.T))
            curves[(method, L)] = (run.times, g[:, digit].mean(1), g[:, noise].mean(1))
            rows.append([method.upper(), L, f"{np.nanmean(pred[noise]):.4g}", f"{t_noise:.4g}",
                         f"{np.nanmean(pred[digit[:4]]):.4g}", f"{t_digit:.4g}", round(share, 3),
                         round(knn_accuracy(za, labels), 4)])
    return src, lam, rho, rows, curves


def first_time(times, values, level):
    hit = np.nonzero(values >= level)[0]
    return float(times[hit[0]]) if len(hit) else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="?", default=DEFAULT_DATA)
    p.add_argument("--depths", default="1,2,3")
    p.add_argument("--eps", type=float, default=1e-3, help="initial encoder gain")
    p.add_argument("--n", type=int, default=2000, help="MNIST images in part 2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder for the PNG plot")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from polyjepa.results import save_result

    depths = [int(d) for d in args.depths.split(",")]
    t0 = time.time()
    lam, rho, srows, scurves = synthetic(depths, args.eps, args.seed)
    scols = ["features", "method", "depth L", "init", "predicted t (features 1-5)", "measured t", "max rel. error",
             "Spearman(order, rho)", "Spearman(order, lambda)", "predicted Spearman(order, rho)"]
    print(f"Part 1: synthetic features, lambda = {np.round(lam, 3).tolist()}, rho = {np.round(rho, 3).tolist()}, "
          f"eps = {args.eps:g}; lr JEPA {[lr_for('jepa', L) for L in depths]}, MAE {LR['mae']}\n")
    print_table(scols, srows)

    src, rlam, rrho, rrows, rcurves = real(args.data, args.n, depths, args.eps, args.seed)
    rcols = ["model", "depth L", "noise: predicted t", "noise: measured t", "top-4 digit PCs: predicted t",
             "top-4 digit PCs: measured t", "noise share of embedding variance", "kNN accuracy"]
    print(f"\nPart 2: {src}, first {args.n}: 16 PCs of two RandomAffine views + 4 noise features; "
          f"digit PCs lambda {np.round(rlam[:16].min(), 3)}-{np.round(rlam[:16].max(), 3)}, rho "
          f"{np.round(rrho[:16].min(), 2)}-{np.round(rrho[:16].max(), 2)}; noise lambda ~{rlam[16:].mean():.2f}, "
          f"rho ~{rrho[16:].mean():.2f}\n")
    print_table(rcols, rrows)
    seconds = time.time() - t0
    print(f"\n({seconds:.0f} s)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot = out / "theory_jepa_vs_mae.png"
    make_plot(plot, lam, rho, scurves, rcurves, depths, args.eps)
    rows = srows
    by = {(r[0], r[1], r[2]): r for r in srows}
    tie = [r for r in srows if r[0] == "near tie A/B"]
    notes = ["Synthetic, 5 features: JEPA's measured Spearman(order, rho) is "
             + ", ".join(f"{by[('5 features', 'JEPA', L)][7]} (L={L})" for L in depths)
             + "; MAE's " + ", ".join(f"{by[('5 features', 'MAE', L)][7]} (L={L})" for L in depths)
             + " (-1: learned in the order of lambda, +1: in the order of rho).",
             f"Measured learning times match the closed form to within "
             f"{max(r[6] for r in srows if r[0] == '5 features'):.1%} (aligned diagonal start).",
             "Near tie from a random orthogonal start (order A, B; A has the higher lambda, B the higher rho): "
             + "; ".join(f"{r[1]} L={r[2]} measured {r[5]} vs predicted {r[4]}" for r in tie)
             + ". nan: the gain never reached half its predicted end value. The theory assumes an aligned start; "
               "from a random one MAE keeps the lambda order (later), while stop-gradient JEPA grows only the "
               "directions where the predictor-encoder product starts positive."]
    real_by = {(r[0], r[1]): r for r in rrows}
    notes.append("MNIST + noise features: share of the embedding variance from the noise features at the end: "
                 + ", ".join(f"{k[0]} L={k[1]} {r[6]}" for k, r in real_by.items() if k[0] != "raw features")
                 + f" (raw features {rrows[0][6]}); kNN accuracy "
                 + ", ".join(f"{k[0]} L={k[1]} {r[7]}" for k, r in real_by.items() if k[0] != "raw features")
                 + f" (raw {rrows[0][7]}).")
    save_result("theory-jepa-vs-mae", columns=scols, rows=rows, seconds=seconds, notes=notes,
                title="Deep linear JEPA vs MAE: learning order, measured vs the ODE theory",
                extra={"synthetic": {"lambda": lam.tolist(), "rho": rho.tolist(), "eps": args.eps,
                                     "lr": {m: [lr_for(m, L) for L in depths] for m in ("jepa", "mae")}},
                       "real": {"source": src, "n": args.n, "columns": rcols, "rows": rrows,
                                "lambda": rlam.tolist(), "rho": rrho.tolist()},
                       "plot": str(plot.relative_to(ROOT)) if plot.is_relative_to(ROOT) else str(plot)})
    return 0


def print_table(cols, rows):
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


def make_plot(path, lam, rho, scurves, rcurves, depths, eps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), dpi=100)
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.85, len(depths)))
    for ax, method in zip(axes[:2], ("jepa", "mae")):
        for c, L in zip(colors, depths):
            pred, meas = scurves[(method, L)]
            ax.plot(rho, pred / np.nanmin(pred), color=c, lw=1.2, label=f"L={L}: theory")
            ax.plot(rho, meas / np.nanmin(meas), "o", color=c, mec="k", ms=6, label=f"L={L}: gradient descent")
        ax.set_xlabel("feature's rho (its lambda falls 1.1 -> 1.0 left to right)")
        ax.set_ylabel("learning time / earliest feature's")
        ax.set_title(f"{method.upper()}: {'earliest on the right (high rho) when deep' if method == 'jepa' else 'earliest on the left (high lambda) at every depth'}",
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[2]
    for (m, L), (t, gd, gn) in rcurves.items():
        c = "tab:blue" if m == "jepa" else "tab:orange"
        ls = "-" if L == max(depths) else "--"
        ax.plot(t, gn, color=c, ls=ls, lw=2.0, label=f"{m.upper()} L={L}: noise features")
        ax.plot(t, gd, color=c, ls=ls, lw=0.8, alpha=0.7, label=f"{m.upper()} L={L}: digit PCs")
    ax.set_xscale("log")
    ax.set_xlabel("t = lr x step")
    ax.set_ylabel("mean encoder gain")
    ax.set_title("MNIST PCs + noise features (thick: noise)", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

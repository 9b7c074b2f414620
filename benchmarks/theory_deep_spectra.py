"""Stepwise theory vs deep networks on MNIST: embedding spectra over training with the linear theory's
step times overlaid.

    python benchmarks/theory_deep_spectra.py [DATA.npz] [--mlp-steps 900] [--recipes barlow-mnist]
        [--recipe-steps 150] [--out DIR]

Part 1, small initialisation (the theory's regime): a two-layer ReLU network 784 -> 512 -> 16 whose
initial weights are scaled by 0.3, trained by plain SGD on fresh RandomAffine views (batch 256) with
three losses: Barlow Twins in the theory's form ||C - I||_F^2 (C the symmetrised cross-correlation of
the centred embeddings, no batch standardisation), the library's vicreg_loss and nt_xent_loss
(SimCLR). Every 10 steps the covariance eigenvalues of 512 fixed, unaugmented images' embeddings are
recorded; a mode's step time is when its eigenvalue is half-way (in log units) from its first to its
final value (modes that end below 5% of the top eigenvalue count as not learned). The theory's prediction is t_j = c / gamma_j with gamma_j the eigenvalues of the
contrastive operator of the same views on pixels and one fitted constant c per loss.

Part 2, a library recipe as configured (micro ViT, standard initialisation, the spectrum monitor of
the encoder every few steps), then the same overlay as `polyjepa theory RUN_DIR`.
Writes results/theory-deep-spectra.json and docs/img/theory_deep_spectra.png.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = "../shared/data/mnist_t10k.npz"
ROOT = Path(__file__).resolve().parents[1]


LOSSES = {  # name -> (lr, steps multiplier)
    "barlow (theory form)": (0.1, 1.0),
    "vicreg": (0.03, 1.5),
    "simclr": (0.2, 0.7),
}


def barlow_theory_loss(z_a, z_b):
    """||C - I||_F^2 with C the symmetrised cross-correlation of the centred embeddings (no standardisation)."""
    import torch

    a, b = z_a - z_a.mean(0), z_b - z_b.mean(0)
    c = (a.T @ b + b.T @ a) / (2 * len(a))
    return {"loss": (c - torch.eye(len(c), dtype=c.dtype)).pow(2).sum()}


def mlp_runs(images, steps, seed, every=10, width=512, dim=16, scale=0.3, batch=256):
    import torch

    from polyjepa.data.augment import RandomAffine
    from polyjepa.objectives.infonce import nt_xent_loss
    from polyjepa.objectives.vicreg import vicreg_loss
    from polyjepa.theory import pair_correlation, stepwise_modes

    X = torch.from_numpy(images[:, None])
    mu = X.mean(0)
    aug = RandomAffine(rotate=15.0, scale=0.15, translate=0.2)
    g = torch.Generator().manual_seed(seed)
    a, b = aug(X[:2000], g), aug(X[:2000], g)
    gamma = stepwise_modes(pair_correlation(a.flatten(1).double().numpy(), b.flatten(1).double().numpy(),
                                            center=True), 8)[0]
    monitor = (X[:512] - mu).flatten(1)
    fns = {"barlow (theory form)": barlow_theory_loss, "vicreg": vicreg_loss, "simclr": nt_xent_loss}
    out = {}
    for name, (lr, mult) in LOSSES.items():
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(784, width), torch.nn.ReLU(), torch.nn.Linear(width, dim))
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(scale)
        opt = torch.optim.SGD(net.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed + 1)
        n_steps = int(steps * mult)
        times, eigs, t0 = [], [], time.time()
        for step in range(n_steps + 1):
            if step % every == 0 or step == n_steps:
                with torch.no_grad():
                    e = net(monitor)
                    e = e - e.mean(0)
                    eigs.append(torch.linalg.eigvalsh(e.T @ e / (len(e) - 1)).flip(0)[:8].double().numpy())
                times.append(step * lr)
            if step == n_steps:
                break
            xb = X[torch.randint(0, len(X), (batch,), generator=gen)]
            va, vb = (aug(xb, gen) - mu).flatten(1), (aug(xb, gen) - mu).flatten(1)
            loss = fns[name](net(va), net(vb))["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        out[name] = {"times": np.array(times), "eigs": np.array(eigs), "lr": lr, "steps": n_steps,
                     "seconds": time.time() - t0,
                     "arch": "MLP " + "-".join([str(net[0].in_features)] + [str(m.out_features) for m in net
                                                if isinstance(m, torch.nn.Linear)]) + f" (ReLU), init x{scale}, SGD"}
        print(f"{name}: {n_steps} steps in {time.time() - t0:.0f} s", flush=True)
    return gamma, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="?", default=DEFAULT_DATA)
    p.add_argument("--mlp-steps", type=int, default=900)
    p.add_argument("--recipes", default="barlow-mnist", help="library recipes for part 2 ('' to skip)")
    p.add_argument("--recipe-steps", type=int, default=150)
    p.add_argument("--every", type=int, default=10, help="monitor interval of the recipe runs")
    p.add_argument("--samples", type=int, default=4000, help="training subset of the MNIST file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=None, help="where the recipe run directories go (default: a temporary folder)")
    p.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder for the PNG plot")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from polyjepa.report import read_spectrum
    from polyjepa.results import save_result
    from polyjepa.runner import pretrain
    from polyjepa.theory.overlay import effective_time, fit_step_times, measured_step_times, spearman, theory_overlay

    if not Path(args.data).exists():
        print(f"{args.data} not found: this benchmark needs the MNIST file", file=sys.stderr)
        return 2
    t0 = time.time()
    images = np.load(args.data)["images"][:args.samples].astype(np.float32) / 255.0
    gamma, mlp = mlp_runs(images, args.mlp_steps, args.seed)
    rows, panels = [], []
    for name, r in mlp.items():
        meas = measured_step_times(r["times"], r["eigs"], top=8, log=True)
        pred, c = fit_step_times(gamma, meas)
        ok = np.isfinite(meas)
        err = float(np.sqrt(np.mean(np.square(np.log(meas[ok] / pred[ok]))))) if ok.any() else float("nan")
        rec = {"objective": name, "gamma": gamma.tolist(), "fitted_c": c, "predicted_t": pred.tolist(),
               "measured_t": [None if not np.isfinite(m) else float(m) for m in meas],
               "spearman": spearman(pred, meas), "rms_log_error": err}
        panels.append((f"{name} (MLP, small init)", r["times"], r["eigs"], rec))
        rows.append(row(name, r["arch"], r["steps"], None, meas, pred, rec, r["seconds"]))
    runs = Path(args.runs or tempfile.mkdtemp(prefix="theory-deep-"))
    for recipe in [x for x in args.recipes.split(",") if x]:
        over = ["encoder.size=micro", f"train.max_steps={args.recipe_steps}", "train.batch_size=128", "train.threads=1",
                f"train.monitor_every={args.every}", "train.max_minutes=null",
                f"train.checkpoint_every={args.recipe_steps}", "eval.monitor_samples=512", "eval.baselines=false",
                f"data.max_samples={args.samples}", "data.test_size=0.2"]
        run = runs / recipe
        r0 = time.time()
        summary = pretrain(recipe, data=args.data, out=str(run), overrides=over, seed=args.seed, progress=False,
                           echo=lambda *a, **k: None)
        rec = theory_overlay(run, top=8, pairs=2000)
        rows_s = read_spectrum(run)
        steps = np.array([s for s, _ in rows_s])
        panels.append((f"{recipe} (micro ViT, standard init)", effective_time(run, steps),
                       np.array([ev[:8] for _, ev in rows_s]), rec))
        meas = np.array([np.nan if m is None else m for m in rec["measured_t"]])
        rows.append(row(recipe, "micro ViT encoder (recipe)", summary["steps"],
                        summary["probe"]["linear"]["accuracy"], meas, np.array(rec["predicted_t"]), rec,
                        time.time() - r0))
        print(f"{recipe}: done in {time.time() - r0:.0f} s", flush=True)
    seconds = time.time() - t0
    cols = ["objective", "network", "steps", "linear probe acc.", "measured t_j (top 8)",
            "theory c/gamma_j (c fitted)", "Spearman", "rms log error", "seconds"]
    print("\n| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot = out / "theory_deep_spectra.png"
    make_plot(plot, panels)
    notes = [f"{r[0]} ({r[1]}): Spearman(theory, measured) {r[6]}, rms log error {r[7]} over the top 8 eigenvalues."
             for r in rows]
    notes.append("Measured t_j: small-init MLP, the time (lr x step) a mode's eigenvalue is half-way in log units "
                 "from its first to its final value; recipe runs, the time it reaches half its final value. "
                 "'-': no step seen (it started there, grew less than 4x, or ended below 5% of the top "
                 "eigenvalue, i.e. not learned within the run).")
    save_result("theory-deep-spectra", columns=cols, rows=rows, seconds=seconds, notes=notes,
                title="Deep nets on MNIST: embedding-spectrum steps vs the linear theory's 1/gamma_j",
                extra={"gamma": gamma.tolist(), "mlp_steps": args.mlp_steps, "recipe_steps": args.recipe_steps,
                       "records": [p[3] for p in panels],
                       "plot": str(plot.relative_to(ROOT)) if plot.is_relative_to(ROOT) else str(plot)})
    return 0


def row(name, arch, steps, probe, meas, pred, rec, seconds):
    fmt = lambda v: " ".join("-" if not np.isfinite(m) else f"{m:.3g}" for m in v)
    return [name, arch, steps, "-" if probe is None else round(float(probe), 4), fmt(np.asarray(meas, float)),
            fmt(np.asarray(pred, float)), "-" if rec["spearman"] != rec["spearman"] else round(rec["spearman"], 3),
            "-" if rec["rms_log_error"] != rec["rms_log_error"] else round(rec["rms_log_error"], 3), round(seconds)]


def make_plot(path, panels):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), dpi=100, squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, (recipe, t, ev, rec) in zip(axes[0], panels):
        for j in range(ev.shape[1]):
            ax.plot(t, np.maximum(ev[:, j], 1e-12), color=colors(j), lw=1.2)
            p, m = rec["predicted_t"][j], rec["measured_t"][j]
            if np.isfinite(p):
                ax.axvline(p, color=colors(j), ls="--", lw=0.8)
            if m is not None:
                ax.plot([m], [np.interp(m, t, ev[:, j])], "o", color=colors(j), mec="k", ms=5)
        ax.set_yscale("log")
        ax.set_xlabel("t = lr x step")
        ax.set_title(f"{recipe}\nSpearman {rec['spearman']:.2f}", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("top 8 embedding eigenvalues")
    fig.suptitle("solid: measured; dashed: c / gamma_j (one fitted c); dots: measured half-way times", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

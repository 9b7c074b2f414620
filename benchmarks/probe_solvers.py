"""Which solver should the linear probe use? Accuracy and CPU time of logistic-regression solvers on real embeddings.

    python benchmarks/probe_solvers.py [--sets pixels,tiny192,small384,trained,quickstart,large] [--run DIR]
                                       [--solvers ...] [--first-only sag,saga,liblinear] [--reuse]
                                       [--cache DIR] [--threads 1]

Every solver runs the linear probe's protocol (``polyjepa.eval.probes.linear_probe``): features standardised,
C chosen from {0.01, 0.1, 1, 10} on a stratified 20% validation split of the train set (split seed 0), refit on
the whole train set, test accuracy once. Timed in process CPU time on one thread, the whole protocol (5 fits).

Feature matrices (MNIST digits; what was built is read back from the arrays and printed):

- ``pixels``: the bundled 6,000-image sample (5,000 train / 1,000 test), raw pixels, 784 wide;
- ``quickstart``: the quick start's random-init encoder (``cjepa-mnist6k``, 128 wide, ``grid:4`` read-out), the
  matrix its random-init baseline probes, 2,176 wide;
- ``tiny192``: a random-init ViT-Tiny (192 wide, 12 deep), mean of the tokens, 192 wide;
- ``small384``: a random-init ViT-Small width (384 wide, 4 deep), mean of the tokens, 384 wide;
- ``trained``: with ``--run DIR``, the trained encoder of that run (its own read-out) on the same 6,000 images;
- ``large``: 60,000 x 192: the 10,000 MNIST test images (``../shared/data/mnist_t10k.npz``), each in 6 copies shifted
  by up to 2 pixels, through a random-init ViT-Tiny 2 deep (train: copies of the first 8,000 images, 48,000
  rows; test: copies of the last 2,000, 12,000 rows, so no image is on both sides).

Solvers: ``lbfgs`` at a loose stop (max_iter 200, tol 1e-3), a tightly converged ``reference`` (lbfgs,
tol 1e-8, max_iter 5000), ``lbfgs-500``, ``lbfgs-1000`` and ``lbfgs-5000`` (tol 1e-4, max_iter 500, 1000 or 5000;
the last is what ``linear_probe`` runs), ``lbfgs-warm`` (max_iter 200, tol 1e-3, each C warm-started from the previous one and
the refit from the chosen one), ``newton-cholesky`` (multinomial from scikit-learn 1.6; skipped where the Hessian,
(width x classes)^2, would pass ``--newton-max`` parameters), ``sag`` and ``saga`` (max_iter 200, tol 1e-3),
``liblinear`` (one-vs-rest: a different objective), ``torch-lbfgs`` (the same multinomial objective, full batch,
float32, strong Wolfe line search, 200 iterations) and ``ridge`` (RidgeClassifier, closed form, alpha from
{1, 10, 100, 1000} by the same split: a reference of another loss). A solver is *correct* when its test accuracy
is within ``--tolerance`` (0.002) of the reference on every matrix. Features are cached in ``--cache`` so that a
rerun does not embed again (and with ``--reuse``, each solver's result on each matrix, so that an interrupted run
continues where it stopped).
Writes ``results/probe_solvers.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

GRID = (0.01, 0.1, 1.0, 10.0)
RIDGE_GRID = (1.0, 10.0, 100.0, 1000.0)
CAPS = {"lbfgs": 200, "lbfgs-500": 500, "lbfgs-1000": 1000, "lbfgs-5000": 5000}  # L-BFGS stops: iteration caps
SETS = ("pixels", "quickstart", "tiny192", "small384", "trained", "large")
SOLVERS = ("lbfgs", "reference", "lbfgs-500", "lbfgs-1000", "lbfgs-5000", "lbfgs-warm", "newton-cholesky", "sag",
           "saga", "liblinear", "torch-lbfgs", "ridge")


# ----------------------------------------------------------------------------------------------------- features
def _mnist6k():
    from polyjepa.config import DataConfig, dataclass_from, load_recipe, part_kwargs
    from polyjepa.data.prepare import prepare

    cfg = load_recipe("cjepa-mnist6k", ["data.test_size=1000"])
    return cfg, prepare(dataclass_from(cfg, "data", DataConfig), None, part_kwargs(cfg, "data"))


def _random_encoder_features(recipe: str, overrides: list[str], data, pool: str | None = None):
    from polyjepa.build import build_method
    from polyjepa.config import EvalConfig, dataclass_from, load_recipe
    from polyjepa.eval.embed import embed_array

    cfg = load_recipe(recipe, overrides)
    ec = dataclass_from(cfg, "eval", EvalConfig)
    method = build_method(cfg, tuple(data.x_train.shape[1:]), 0, data.meta)
    enc = method.encoder().eval()
    pool = pool or ec.pool
    e = method.backbone.encoder
    built = f"random-init {cfg.encoder.name} {e.dim} wide x {len(e.blocks)} deep, read-out {pool}"
    return (embed_array(enc, data.x_train, pool=pool, layers=ec.layers),
            embed_array(enc, data.x_test, pool=pool, layers=ec.layers), built)


def _large(seed: int = 0):
    """60,000 x 192: shifted copies of the 10,000 MNIST test images through a random-init ViT-Tiny 2 deep."""
    import torch

    from polyjepa.build import build_method
    from polyjepa.config import load_recipe
    from polyjepa.eval.embed import embed_array

    path = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist_t10k.npz"
    if not path.exists():
        raise SystemExit(f"{path} not found: the large matrix needs the shared MNIST test set")
    m = np.load(path)
    images, labels = m["images"].astype(np.float32) / 255.0, m["labels"].astype(np.int64)
    images = (images - images.mean()) / images.std()
    rng = np.random.default_rng(seed)
    copies, ys = [], []
    for _ in range(6):
        shifts = rng.integers(-2, 3, (len(images), 2))
        copies.append(np.stack([np.roll(im, tuple(s), axis=(0, 1)) for im, s in zip(images, shifts)]))
        ys.append(labels)
    x = np.stack(copies, 1)[:, :, None]            # (10000, 6, 1, 28, 28): copies of one image stay together
    y = np.stack(ys, 1)
    cfg = load_recipe("ijepa-digits", ["encoder.size=tiny", "encoder.depth=2", "tokenizer.patch_size=4",
                                       "predictor.dim=96", "predictor.depth=2", "predictor.heads=3"])
    torch.manual_seed(0)
    method = build_method(cfg, (1, 28, 28), 0, {})
    enc = method.encoder().eval()
    e = method.backbone.encoder

    def feats(xs):
        return embed_array(enc, xs.reshape(-1, 1, 28, 28), pool="mean", layers=1)

    built = f"random-init vit {e.dim} wide x {len(e.blocks)} deep, read-out mean, on 6 shifted copies of each image"
    return feats(x[:8000]), y[:8000].reshape(-1), feats(x[8000:]), y[8000:].reshape(-1), built


def load_features(names: list[str], cache: Path, run: str | None) -> dict[str, tuple]:
    """{name: (train_x, train_y, test_x, test_y, description)}, from ``cache`` when there."""
    from polyjepa.eval.evaluate import raw_features

    cache.mkdir(parents=True, exist_ok=True)
    out, data = {}, None
    for name in names:
        if name == "trained" and not run:
            continue
        file = cache / (f"{name}-{Path(run).name}.npz" if name == "trained" else f"{name}.npz")
        if file.exists():
            z = np.load(file)
            out[name] = (z["a"], z["ay"], z["b"], z["by"], str(z["built"]))
            continue
        t = time.process_time()
        if name == "large":
            a, ay, b, by, built = _large()
        else:
            if data is None:
                _, data = _mnist6k()
            ay, by = data.y_train, data.y_test
            if name == "pixels":
                a, b, built = raw_features(data.x_train), raw_features(data.x_test), "raw pixels"
            elif name == "quickstart":
                a, b, built = _random_encoder_features("cjepa-mnist6k", [], data)
            elif name == "tiny192":
                a, b, built = _random_encoder_features("ijepa-digits", ["encoder.size=tiny", "tokenizer.patch_size=4",
                                                                        "predictor.dim=96"], data, "mean")
            elif name == "small384":
                a, b, built = _random_encoder_features("ijepa-digits", ["encoder.size=small", "encoder.depth=4",
                                                                        "tokenizer.patch_size=4", "predictor.dim=96"],
                                                       data, "mean")
            elif name == "trained":
                a, b, built = _trained_features(run, data)
            else:
                raise SystemExit(f"unknown feature set {name!r}: choose from {', '.join(SETS)}")
        print(f"{name}: embedded in {time.process_time() - t:.0f} CPU s", flush=True)
        np.savez(file, a=a, ay=ay, b=b, by=by, built=built)
        out[name] = (a, ay, b, by, built)
    return out


def _trained_features(run: str, data):
    from polyjepa.config import EvalConfig, dataclass_from
    from polyjepa.eval.embed import embed_array
    from polyjepa.runner import load_run_method

    method, cfg, _ = load_run_method(Path(run))
    ec = dataclass_from(cfg, "eval", EvalConfig)
    enc = method.encoder().eval()
    e = method.backbone.encoder
    # the run's own normalisation statistics are those of mnist6k's train split, which ``data`` was prepared with
    return (embed_array(enc, data.x_train, pool=ec.pool, layers=ec.layers),
            embed_array(enc, data.x_test, pool=ec.pool, layers=ec.layers),
            f"trained {cfg.encoder.name} {e.dim} wide x {len(e.blocks)} deep ({Path(run).name}), read-out {ec.pool}")


# ------------------------------------------------------------------------------------------------------ solvers
class TorchLogistic:
    """Multinomial logistic regression, scikit-learn's objective (C * sum of losses + |W|^2 / 2, intercept free,
    here divided by C * n), minimised by torch's full-batch L-BFGS with a strong Wolfe line search, in float32."""

    def __init__(self, C: float, max_iter: int = 200, tol: float = 1e-4):
        self.C, self.max_iter, self.tol = C, max_iter, tol
        self.init = None

    def fit(self, x, y):
        import torch

        x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        self.classes_ = np.unique(y)
        t = torch.as_tensor(np.searchsorted(self.classes_, y))
        d, k = x.shape[1], len(self.classes_)
        w = torch.zeros(d + 1, k) if self.init is None else self.init.clone()
        w.requires_grad_(True)
        reg = 1.0 / (self.C * len(x))
        opt = torch.optim.LBFGS([w], lr=1, max_iter=self.max_iter, history_size=10, tolerance_grad=self.tol,
                                tolerance_change=1e-12, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = x @ w[:-1] + w[-1]
            loss = torch.nn.functional.cross_entropy(logits, t) + 0.5 * reg * (w[:-1] ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.w = w.detach()
        self.n_iter_ = [opt.state[opt._params[0]]["n_iter"]]
        return self

    def decision_function(self, x):
        import torch

        x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        return (x @ self.w[:-1] + self.w[-1]).numpy()

    def score(self, x, y):
        return float((self.classes_[self.decision_function(x).argmax(1)] == y).mean())


def make(solver: str, c: float):
    from sklearn.linear_model import LogisticRegression, RidgeClassifier

    if solver == "lbfgs":
        return LogisticRegression(C=c, max_iter=200, tol=1e-3)
    if solver == "reference":
        return LogisticRegression(C=c, max_iter=5000, tol=1e-8)
    if solver in ("lbfgs-500", "lbfgs-1000", "lbfgs-5000"):
        return LogisticRegression(C=c, max_iter=int(solver.split("-")[1]), tol=1e-4)
    if solver == "lbfgs-warm":
        return LogisticRegression(C=c, max_iter=200, tol=1e-3, warm_start=True)
    if solver in ("newton-cholesky", "sag", "saga"):
        return LogisticRegression(C=c, max_iter=200, tol=1e-3, solver=solver)
    if solver == "liblinear":     # binary only in scikit-learn >= 1.8: one-vs-rest made explicit
        from sklearn.multiclass import OneVsRestClassifier

        return OneVsRestClassifier(LogisticRegression(C=c, max_iter=200, tol=1e-3, solver="liblinear"))
    if solver == "torch-lbfgs":
        return TorchLogistic(c)
    if solver == "ridge":
        return RidgeClassifier(alpha=c)
    raise SystemExit(f"unknown solver {solver!r}: choose from {', '.join(SOLVERS)}")


def n_iter(model) -> int:
    """The most iterations any part of a fitted model took (0 for a closed form)."""
    if hasattr(model, "estimators_"):
        return max(n_iter(e) for e in model.estimators_)
    it = getattr(model, "n_iter_", None)
    return 0 if it is None else int(np.max(it))


def protocol(solver: str, a, ay, b, by, seed: int = 0) -> dict:
    """linear_probe's protocol with one solver: C on a stratified 20% split, refit, test accuracy; CPU seconds."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    grid = RIDGE_GRID if solver == "ridge" else GRID
    warm = solver == "lbfgs-warm"
    t = time.process_time()
    iters = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a_x, v_x, a_y, v_y = train_test_split(a, ay, test_size=0.2, random_state=seed, stratify=ay)
        sc = StandardScaler().fit(a_x)
        a_s, v_s = sc.transform(a_x), sc.transform(v_x)
        scores, coefs, prev = {}, {}, None
        # lbfgs-warm walks the grid from the strongest penalty up, each fit starting where the last one ended
        for c in (sorted(grid) if warm else grid):
            m = make(solver, c)
            if warm and prev is not None:
                m.coef_, m.intercept_ = prev.coef_.copy(), prev.intercept_.copy()
            m.fit(a_s, a_y)
            iters.append(n_iter(m))
            scores[c] = m.score(v_s, v_y)
            coefs[c] = m
            prev = m
        chosen = max((c for c in grid), key=lambda c: (scores[c], -grid.index(c)))   # first best, as linear_probe
        sc = StandardScaler().fit(a)
        m = make(solver, chosen)
        if warm:
            m.coef_, m.intercept_ = coefs[chosen].coef_.copy(), coefs[chosen].intercept_.copy()
        m.fit(sc.transform(a), ay)
        iters.append(n_iter(m))
        acc = m.score(sc.transform(b), by)
    return {"accuracy": float(acc), "C": chosen, "cpu_s": time.process_time() - t, "max_iter_used": max(iters),
            "val": {str(k): float(v) for k, v in scores.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="pixels,tiny192,small384,trained,quickstart,large")
    ap.add_argument("--solvers", default=",".join(SOLVERS))
    ap.add_argument("--run", default=None, help="a trained run directory whose encoder gives the 'trained' matrix")
    ap.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "polyjepa-probe-solvers"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=0.002, help="accuracy gap to the reference still correct")
    ap.add_argument("--newton-max", type=int, default=4000,
                    help="skip newton-cholesky where width x classes passes this (its Hessian is that squared)")
    ap.add_argument("--name", default="probe_solvers")
    ap.add_argument("--first-only", default="",
                    help="solvers to run on the first matrix only (e.g. sag,saga: far slower there already)")
    ap.add_argument("--reuse", action="store_true",
                    help="read a solver's result on a matrix from --cache when an earlier run measured it")
    args = ap.parse_args(argv)
    import sklearn
    import torch

    from polyjepa.results import save_result

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    feats = load_features(args.sets.split(","), Path(args.cache), args.run)
    solvers = args.solvers.split(",")
    if "reference" not in solvers:
        solvers.insert(0, "reference")
    first_only = [x for x in args.first_only.split(",") if x]
    names = list(feats)
    res: dict[tuple[str, str], dict] = {}
    for name, (a, ay, b, by, built) in feats.items():
        print(f"{name}: {built}; train {a.shape[0]} x {a.shape[1]}, test {b.shape[0]}, {len(np.unique(ay))} classes",
              flush=True)
        for solver in solvers:
            if solver == "newton-cholesky" and a.shape[1] * len(np.unique(ay)) > args.newton_max:
                continue
            if solver in first_only and name != names[0]:
                continue
            saved = Path(args.cache) / f"result-{name}{'-' + Path(args.run).name if name == 'trained' else ''}" \
                f"-{solver}.json"
            if args.reuse and saved.exists():
                r = json.loads(saved.read_text())
            else:
                r = protocol(solver, a, ay, b, by)
                saved.write_text(json.dumps(r))
            res[name, solver] = r
            print(f"  {solver:16s} acc {r['accuracy']:.4f} C {r['C']:<5g} {r['cpu_s']:7.1f} CPU s "
                  f"(most iterations of one fit {r['max_iter_used']})", flush=True)

    cols = ["solver"] + [f"{n} acc" for n in names] + [f"{n} CPU s" for n in names] + ["max gap", "correct",
                                                                                       "total CPU s"]
    rows, verdict = [], {}
    for solver in solvers:
        got = [res.get((n, solver)) for n in names]
        gaps = [abs(g["accuracy"] - res[n, "reference"]["accuracy"]) for n, g in zip(names, got) if g]
        complete = all(g is not None for g in got)
        ok = complete and max(gaps) <= args.tolerance + 1e-9
        verdict[solver] = ok
        rows.append([solver] + [round(g["accuracy"], 4) if g else None for g in got]
                    + [round(g["cpu_s"], 1) if g else None for g in got]
                    + [round(max(gaps), 4), "yes" if ok else ("no" if complete else "n/a (skipped)"),
                       round(sum(g["cpu_s"] for g in got if g), 1)])
    correct = [s for s in solvers if verdict[s] and s != "reference"]
    fastest = min(correct, key=lambda s: sum(res[n, s]["cpu_s"] for n in names)) if correct else None
    shapes = {n: f"{feats[n][0].shape[0]}+{feats[n][2].shape[0]} x {feats[n][0].shape[1]}" for n in names}
    notes = [f"{n}: {feats[n][4]}; {shapes[n]}" for n in names]
    notes += [
        f"correct: test accuracy within {args.tolerance} of the reference (lbfgs tol 1e-8, max_iter 5000) on every "
        f"matrix; fastest correct (total CPU s over the matrices): {fastest}",
        *[f"{s} hit its iteration cap on: "
          + (", ".join(n for n in names if res[n, s]["max_iter_used"] >= cap) or "no matrix")
          + "; accuracy gap to the reference per matrix: "
          + ", ".join(f"{n} {res[n, s]['accuracy'] - res[n, 'reference']['accuracy']:+.4f}" for n in names)
          + "; C chosen (this / reference): "
          + ", ".join(f"{n} {res[n, s]['C']:g}/{res[n, 'reference']['C']:g}" for n in names)
          for s, cap in CAPS.items() if s in solvers and all((n, s) in res for n in names)],
        f"run on the first matrix only: {', '.join(first_only) or 'none'}; "
        f"newton-cholesky skipped where width x classes > {args.newton_max}; liblinear is one-vs-rest and ridge a "
        f"squared loss (alpha grid {RIDGE_GRID}): other objectives, judged by the same accuracy rule",
        f"scikit-learn {sklearn.__version__}, torch {torch.__version__}; {args.threads} thread(s); process CPU time "
        f"of the whole protocol (4 validation fits and the refit)",
    ]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("" if v is None else str(v) for v in r) + " |")
    print("\n" + "\n".join(notes))
    path = save_result(args.name, title="Linear-probe solvers: accuracy and CPU time on MNIST embeddings",
                       columns=cols, rows=rows, seconds=time.perf_counter() - started, notes=notes,
                       extra={"results": {f"{n}/{s}": r for (n, s), r in res.items()}, "shapes": shapes,
                              "fastest_correct": fastest, "tolerance": args.tolerance,
                              "sklearn": sklearn.__version__})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

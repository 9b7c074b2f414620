"""Top vs QCD jet tagging: J-JEPA's frozen embedding against its baselines.

Pretrains the jjepa-jets recipe for ``--minutes`` on the training jets (labels unused), then reports the test
ROC AUC of a logistic-regression probe on the frozen embedding (the EMA target encoder, mean over particles)
next to: the same encoder at random initialisation (same probe), the classical tagger (jet mass, tau21, tau32
with scikit-learn's gradient boosting), and the same network (tokenizer + set encoder + a linear head on the
mean token) trained on the labels for the same ``--minutes``. ``--fractions`` repeats the label-using rows
with a random share of the training labels (the probe, the boosting and the supervised net see only those).

Data: a jet .npz from ``python -m polyjepa.jets.generate`` (Pythia 8 + FastJet), split 80/20 by the seed.

    OMP_NUM_THREADS=1 .venv/bin/python -m polyjepa.jets.generate --n 10000 --seed 0 --out jets.npz
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/jets_toptag.py --data jets.npz --minutes 6
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def probe_auc(tr, ytr, te, yte, seed=0) -> float:
    """Logistic regression on standardised features, C from {0.01, 0.1, 1, 10} on a 20% validation split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(x, y, c):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x, y)

    a, v, ya, yv = train_test_split(tr, ytr, test_size=0.2, random_state=seed, stratify=ytr)
    best = max((0.01, 0.1, 1.0, 10.0), key=lambda c: roc_auc_score(yv, fit(a, ya, c).predict_proba(v)[:, 1]))
    return float(roc_auc_score(yte, fit(tr, ytr, best).predict_proba(te)[:, 1]))


def boosting_auc(tr, ytr, te, yte, seed=0) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    clf = HistGradientBoostingClassifier(random_state=seed).fit(tr, ytr)
    return float(roc_auc_score(yte, clf.predict_proba(te)[:, 1]))


def substructure(x: np.ndarray) -> np.ndarray:
    import torch

    from polyjepa.jets.cluster import substructure_features

    t = torch.from_numpy(x)
    return np.concatenate([substructure_features(t[i:i + 512], t[i:i + 512, :, 0] > 0).numpy()
                           for i in range(0, len(t), 512)])


def embed(backbone, x: np.ndarray) -> np.ndarray:
    import torch

    backbone.eval()
    with torch.no_grad():
        return np.concatenate([backbone.embed(torch.from_numpy(x[i:i + 256]), pool="mean").numpy()
                               for i in range(0, len(x), 256)])


def supervised_auc(backbone, tr, ytr, te, yte, *, minutes: float, seed: int, lr: float = 1e-3) -> tuple[float, int]:
    """Train backbone + linear head on the mean token with BCE for ``minutes`` (AdamW, cosine to 0); test AUC."""
    import torch
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(seed)
    head = torch.nn.Linear(backbone.dim, 1)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(tr), torch.from_numpy(ytr.astype(np.float32))
    budget, t0, steps = minutes * 60, time.perf_counter(), 0
    backbone.train()
    while time.perf_counter() - t0 < budget:
        for idx in np.array_split(rng.permutation(len(tr)), max(1, len(tr) // 128)):
            frac = min((time.perf_counter() - t0) / budget, 1.0)
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * frac))
            logit = head(backbone.embed(xt[idx], pool="mean")).squeeze(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if time.perf_counter() - t0 >= budget:
                break
    backbone.eval()
    with torch.no_grad():
        score = np.concatenate([head(backbone.embed(torch.from_numpy(te[i:i + 256]), pool="mean")).squeeze(1).numpy()
                                for i in range(0, len(te), 256)])
    return float(roc_auc_score(yte, score)), steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="jet .npz (python -m polyjepa.jets.generate)")
    ap.add_argument("--minutes", type=float, default=6.0, help="pretraining time, and the supervised net's")
    ap.add_argument("--fractions", default="1.0,0.1", help="shares of the training labels for the label-using rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("overrides", nargs="*", help="recipe overrides, e.g. masker.n_targets=3")
    args = ap.parse_args()
    if not Path(args.data).is_file():
        sys.exit(f"error: jet data {args.data} not found: make it with python -m polyjepa.jets.generate --out {args.data}")
    import torch

    from _runs import pretrain_for_minutes, print_table
    from polyjepa.build import build_method
    from polyjepa.jets.data import load_jets
    from polyjepa.results import save_result

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    overrides = [f"data.source={args.data}", *args.overrides]
    summary, run_dir, cfg, info, method = pretrain_for_minutes("jets-toptag", "jjepa-jets", overrides, args.data,
                                                               args.minutes, args.threads, args.seed)
    d = load_jets(args.data, max_particles=int(cfg.data.max_particles), seed=int(cfg.data.get("seed", 0)))
    xtr, ytr, xte, yte = d.x, d.y, d.x_test, d.y_test
    bb = method.encoder()
    enc, tok, pred, masker = bb.encoder, bb.tokenizer, method.predictor, method.masker
    config = (f"jjepa: particle tokens (MLP {tok.net[0].in_features}->{tok.net[0].out_features}->{tok.net[2].out_features}), "
              f"set transformer dim {enc.dim} depth {enc.depth} heads {enc.heads}; predictor dim "
              f"{pred.proj_in.out_features} depth {len(pred.blocks)}; masker {masker.n_subjets} kT subjets, "
              f"{masker.n_targets} targets; {summary['steps']} steps in {args.minutes} min; "
              f"{len(xtr)} train / {len(xte)} test jets, {xtr.shape[1]} particles max")
    print(config)
    random_bb = build_method(cfg, tuple(xtr.shape[1:]), seed=args.seed + 1, meta=info.get("meta")).encoder()
    sub_tr, sub_te = substructure(xtr), substructure(xte)
    emb_tr, emb_te = embed(bb, xtr), embed(bb, xte)
    rnd_tr, rnd_te = embed(random_bb, xtr), embed(random_bb, xte)
    rows = []
    for frac in [float(f) for f in args.fractions.split(",")]:
        rng = np.random.default_rng(args.seed)
        pick = np.sort(rng.permutation(len(xtr))[:max(20, int(round(frac * len(xtr))))])
        sup_bb = build_method(cfg, tuple(xtr.shape[1:]), seed=args.seed + 2, meta=info.get("meta")).backbone
        sup, steps = supervised_auc(sup_bb, xtr[pick], ytr[pick], xte, yte, minutes=args.minutes, seed=args.seed)
        rows += [
            [frac, len(pick), "J-JEPA embedding, logistic probe", round(probe_auc(emb_tr[pick], ytr[pick], emb_te, yte), 4)],
            [frac, len(pick), "random-init encoder, logistic probe", round(probe_auc(rnd_tr[pick], ytr[pick], rnd_te, yte), 4)],
            [frac, len(pick), "mass + tau21 + tau32, gradient boosting", round(boosting_auc(sub_tr[pick], ytr[pick], sub_te, yte), 4)],
            [frac, len(pick), f"same network supervised ({steps} steps)", round(sup, 4)],
        ]
    seconds = time.perf_counter() - t0
    cols = ["label share", "labelled jets", "representation", "test AUC"]
    print_table(f"Top vs QCD tagging, test ROC AUC ({len(xte)} jets)", cols, rows)
    save_result("jets-toptag", columns=cols, rows=rows, title="Top vs QCD tagging (Pythia 8 + FastJet jets): J-JEPA",
                seconds=seconds, notes=[config, f"final J-JEPA loss {summary['final_loss']:.4f}"])


if __name__ == "__main__":
    main()

"""seq-JEPA on MNIST: one encoder both equivariant (per view) and invariant (aggregate), against VICReg on the same views.

    python benchmarks/seqjepa_mnist.py [DATA.npz] [--epochs 4] [--probe-train 4000] [--out DIR] [--seed 0] [key=value ...]

Pretrains the bundled ``seqjepa-mnist`` recipe (views of a digit rotated by up to 45 degrees and zoomed
by up to 20 %, the relative actions between consecutive views given to the aggregator and predictor),
and, with the same encoder architecture, views, batch size, epochs and learning-rate schedule, VICReg
on two of those views (an invariance-only method). Then, on fixed views drawn from the seed:

* equivariant probe: ridge regression of the rotation difference (degrees) and the log zoom ratio
  between two views of one image from their concatenated per-view embeddings (R^2 on the test split);
* invariant probe: logistic regression of the digit from one view's embedding, and from the
  aggregate of 3 views (seq-JEPA's AGG output; for the others the mean of the 3 view embeddings);

next to a random-init encoder of the same shape and the raw pixels. MNIST: ../shared/data/mnist_t10k.npz,
stratified 8,000 / 2,000 split (probes fit on the first ``--probe-train`` training images). One thread.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _args import data_file

import numpy as np

DEFAULT_DATA = "../shared/data/mnist_t10k.npz"


def make_vicreg(method, backbone):
    """VICReg on views 0 and 1 of the seq-JEPA batch, training ``backbone`` (the same architecture)."""
    from torch import nn

    from polyjepa.objectives.vicreg import vicreg_loss

    class PairVICReg(nn.Module):
        def __init__(self, backbone, make_batch):
            super().__init__()
            D = backbone.dim
            self.backbone, self._make = backbone, make_batch
            self.projector = nn.Sequential(nn.Linear(D, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 256))
            self.masker = None

        def make_batch(self, x, generator, progress=0.0):
            return self._make(x, generator, progress)

        def loss(self, batch):
            v = batch["views"]
            B = len(v)
            z = self.projector(self.backbone(v[:, :2].flatten(0, 1)).mean(1)).view(B, 2, -1)
            return vicreg_loss(z[:, 0], z[:, 1])

        def forward(self, batch):
            return self.loss(batch)

        def trainable_modules(self):
            return [self.backbone, self.projector]

        def update_target(self, step, total_steps):
            return 0.0

        def encoder(self):
            return self.backbone

    return PairVICReg(backbone, method.make_batch)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs of each method (default: the recipe's)")
    ap.add_argument("--probe-train", type=int, default=4000, help="training images the probes fit on (default 4000)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="seqjepa-mnist", help="result file stem under results/")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, section.key=value")
    args = ap.parse_intermixed_args(argv)
    data_file(args, DEFAULT_DATA, "MNIST file", f"the .npz with images and labels, e.g. {DEFAULT_DATA}")

    import torch

    torch.set_num_threads(1)
    from polyjepa.config import TrainConfig, dataclass_from
    from polyjepa.eval.embed import embed_array
    from polyjepa.eval.probes import linear_probe, ridge_probe
    from polyjepa.results import save_result
    from polyjepa.runner import build_random, load_run_method, prepare_run_data, pretrain, train_method

    out = Path(args.out or tempfile.mkdtemp(prefix="seqjepa-mnist-"))
    extra = list(args.overrides) + ["train.threads=1"]
    if args.epochs is not None:
        extra += [f"train.max_epochs={args.epochs}", "train.max_steps=null"]
    run_dir = out / "seqjepa"
    if not (run_dir / "summary.json").exists():
        pretrain("seqjepa-mnist", data=args.data, out=str(run_dir), seed=args.seed, overrides=extra, progress=False,
                 echo=lambda *a, **k: None)
    summary = json.loads((run_dir / "summary.json").read_text())
    seq, cfg, info = load_run_method(run_dir)
    data = prepare_run_data(cfg, info)
    train_cfg = dataclass_from(cfg, "train", TrainConfig)

    t0 = time.time()
    from polyjepa.build import build_method

    # the same initial encoder weights as seq-JEPA's (the recipe built from the run's seed)
    vic = make_vicreg(seq, build_method(cfg, tuple(info["input_shape"]), info["seed"], info.get("meta")).backbone)
    vic_dir = out / "vicreg"
    if (vic_dir / "vicreg.pt").exists():
        vic.load_state_dict(torch.load(vic_dir / "vicreg.pt"))
        vic_seconds = json.loads((vic_dir / "record.json").read_text())["train_seconds"]
    else:
        record = train_method(vic, data.x_train, train=train_cfg, run_dir=vic_dir, seed=args.seed, progress=False)
        torch.save(vic.state_dict(), vic_dir / "vicreg.pt")
        vic_seconds = record["train_seconds"]
        (vic_dir / "record.json").write_text(json.dumps({"train_seconds": vic_seconds, "steps": record["steps"]}))
    vic.eval()
    train_seconds = {"seq-JEPA": summary["train_seconds"], "VICReg": vic_seconds}

    acts, S = seq.actions, seq.seq_len
    g = torch.Generator().manual_seed(args.seed + 777)

    def views_of(x):
        """(n, S, C, H, W) views with their (n, S + 1, A) actions (the last, unused, is a target's)."""
        u = acts.draw(len(x) * (S + 1), g).view(len(x), S + 1, -1)
        v = acts.apply(torch.from_numpy(x).repeat_interleave(S, 0), u[:, :S].flatten(0, 1))
        return v.view(len(x), S, *x.shape[1:]), u

    xtr, ytr = data.x_train[:args.probe_train], data.y_train[:args.probe_train]
    sets = {"train": (xtr, ytr, *views_of(xtr)), "test": (data.x_test, data.y_test, *views_of(data.x_test))}

    def pair_targets(u):  # rotation difference (degrees) and log zoom ratio between views 0 and 1
        p0, p1 = acts.params(u[:, 0]), acts.params(u[:, 1])
        return np.stack([np.degrees((p1["angle"] - p0["angle"]).numpy()),
                         np.log((p1["zoom"] / p0["zoom"]).numpy())], 1)

    random_enc = build_random(cfg, info)
    encoders = {"seq-JEPA": seq.encoder(), "VICReg (same views)": vic.backbone, "random-init encoder": random_enc}
    rows = []
    for name, enc in list(encoders.items()) + [("raw pixels", None)]:
        feats = {}
        for split, (x, y, v, u) in sets.items():
            flat = v.flatten(0, 1).numpy()
            e = (flat.reshape(len(flat), -1) if enc is None else embed_array(enc, flat, pool="mean")).reshape(len(x), S, -1)
            if name == "seq-JEPA":
                agg = torch.cat([seq.embed_sequence(v[i:i + 250], u[i:i + 250]) for i in range(0, len(v), 250)]).numpy()
            else:
                agg = e.mean(1)
            feats[split] = (e, agg, pair_targets(u), y)
        (etr, atr, ttr, ytr_), (ete, ate, tte, yte) = feats["train"], feats["test"]
        pair_tr, pair_te = np.concatenate([etr[:, 0], etr[:, 1]], 1), np.concatenate([ete[:, 0], ete[:, 1]], 1)
        keep = pair_tr.std(0) > 1e-3  # near-constant columns (blank pixels) would blow up on standardisation
        r2 = [ridge_probe(pair_tr[:, keep], ttr[:, k], pair_te[:, keep], tte[:, k])["r2"] for k in range(2)]
        one = linear_probe(etr[:, 0], ytr_, ete[:, 0], yte, seed=args.seed)["accuracy"]
        agg_acc = linear_probe(atr, ytr_, ate, yte, seed=args.seed)["accuracy"]
        rows.append([name, one, agg_acc, r2[0], r2[1]])
        print(f"  {name}: one view {one:.4f}, aggregate {agg_acc:.4f}, R2 rotation {r2[0]:.4f}, zoom {r2[1]:.4f}",
              flush=True)
    eval_seconds = time.time() - t0 - vic_seconds

    enc = seq.backbone.encoder
    built = (f"encoder ViT {enc.dim}x{enc.depth} ({enc.heads} heads) on {seq.backbone.tokenizer.grid} patches of "
             f"{seq.backbone.tokenizer.patch_size}; seq_len {S}, aggregator {len(seq.agg_blocks)} blocks, action "
             f"width {seq.action_proj[0].out_features}, predictor hidden {seq.predictor[0].out_features}; views: "
             f"rotate +-{acts.affine.rotate:g} deg, zoom +-{acts.affine.scale:g}, shift +-{acts.affine.translate:g}; "
             f"{summary['steps']} steps of batch {train_cfg.batch_size} for each method")
    columns = ["representation", "class, one view", "class, aggregate of 3 views", "R2 rotation difference",
               "R2 log zoom ratio"]
    print(f"\nseq-JEPA MNIST benchmark: {summary['n_train']} train / {summary['n_test']} test (probes fit on "
          f"{len(xtr)}), seed {args.seed}; {built}; runs in {out}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|")
    for r in rows:
        print("| " + " | ".join([r[0]] + [f"{v:.4f}" for v in r[1:]]) + " |")
    by = {r[0]: r for r in rows}
    sj, vr = by["seq-JEPA"], by["VICReg (same views)"]
    notes = [f"Equivariant probe: seq-JEPA R2 {sj[3]:.4f} (rotation) / {sj[4]:.4f} (zoom) vs VICReg {vr[3]:.4f} / "
             f"{vr[4]:.4f}: seq-JEPA {'wins' if sj[3] > vr[3] and sj[4] > vr[4] else 'does not win'} on both.",
             f"Invariant probe (aggregate): seq-JEPA {sj[2]:.4f} vs VICReg {vr[2]:.4f}; one view: {sj[1]:.4f} vs {vr[1]:.4f}.",
             f"Built: {built}.",
             "Training: " + "; ".join(f"{k} {v / 60:.1f} min" for k, v in train_seconds.items()) + "."]
    seconds = summary["seconds"] + vic_seconds + eval_seconds
    path = save_result(args.name, columns=columns, rows=rows, seconds=seconds, notes=notes,
                       title="seq-JEPA on MNIST: equivariant (pair R2) and invariant (class) probes vs VICReg",
                       extra={"train_seconds": train_seconds, "probe_train": len(xtr), "seed": args.seed,
                              "overrides": list(args.overrides), "built": built})
    print("\n" + "\n".join(notes[:2]) + f"\nwhole benchmark {seconds / 60:.1f} min; result in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

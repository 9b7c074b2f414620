"""IWM on MNIST: is the predictor a world model (does the action matter), and is the encoder any good?

    python benchmarks/iwm_mnist.py [DATA.npz] [--epochs 5] [--candidates 16] [--mrr-samples 1000] [--out DIR]
                                   [--seed 0] [key=value ...]

Pretrains the bundled ``iwm-mnist`` recipe twice with the same budget and seed: the predictor told the
action (the parameters of the rotation, zoom, shift, brightness and contrast that turn the source view
into the target view), and the same predictor with the action withheld (zeros). Both faces:

* world model: for each of ``--mrr-samples`` test images, ``--candidates`` actions are drawn; the
  prediction for the first (from the source's context, I-JEPA masks) should be closer to the EMA
  encoder's features of its own target view than to those of the other transforms of the same
  image. Mean reciprocal rank (chance: (1 + 1/2 + ... + 1/K) / K; ties count against).
* invariant: linear and kNN probes of the class on the EMA encoder's features (the runner's evaluation),
  next to a random-init encoder of the same architecture and the raw pixels (same split, same probes).

MNIST: ../shared/data/mnist_t10k.npz, stratified 8,000 / 2,000 split. One thread.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _args import data_file

DEFAULT_DATA = "../shared/data/mnist_t10k.npz"
ARMS = {"action given": "false", "action withheld": "true"}


def action_mrr(method, x, *, candidates: int, seed: int, chunk: int = 125) -> tuple[float, float]:
    """(MRR, mean rank) of the true target view among ``candidates`` transforms, over images ``x``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ranks = torch.cat([method.action_ranks(x[i:i + chunk], g, candidates=candidates) for i in range(0, len(x), chunk)])
    return float((1.0 / ranks.double()).mean()), float(ranks.double().mean())


def invariant_note(summaries: dict, base: dict) -> str:
    """One sentence: does each arm's linear probe beat the random-init encoder and the raw pixels?"""
    rand, raw = base["random_init"]["linear"]["accuracy"], base["raw"]["linear"]["accuracy"]
    parts = []
    for arm in ARMS:
        acc = summaries[arm]["probe"]["linear"]["accuracy"]
        parts.append(f"{arm} {acc:.4f} ({'above' if acc > rand else 'not above'} the random init, "
                     f"{'above' if acc > raw else 'not above'} the raw pixels)")
    return f"Linear probe: {'; '.join(parts)}; random init {rand:.4f}, raw pixels {raw:.4f}."


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs per arm (default: the recipe's)")
    ap.add_argument("--candidates", type=int, default=16, help="transforms per image in the retrieval (default 16)")
    ap.add_argument("--mrr-samples", type=int, default=1000, help="test images in the retrieval (default 1000)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="iwm-mnist", help="result file stem under results/")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, section.key=value")
    args = ap.parse_intermixed_args(argv)
    data_file(args, DEFAULT_DATA, "MNIST file", f"the .npz with images and labels, e.g. {DEFAULT_DATA}")

    import torch

    torch.set_num_threads(1)
    from polyjepa.results import save_result
    from polyjepa.runner import load_run_method, prepare_run_data, pretrain
    from polyjepa.worldmodel.retrieval import chance_mrr

    eval_seconds = 0.0  # besides the runs' own time (their summaries), reused or not
    out = Path(args.out or tempfile.mkdtemp(prefix="iwm-mnist-"))
    extra = list(args.overrides) + ["train.threads=1"]
    if args.epochs is not None:
        extra += [f"train.max_epochs={args.epochs}", "train.max_steps=null"]
    summaries, mrr = {}, {}
    for i, (arm, withhold) in enumerate(ARMS.items()):
        run_dir = out / arm.replace(" ", "_")
        if not (run_dir / "summary.json").exists():
            ov = extra + [f"method.withhold_action={withhold}"] + ([] if i == 0 else ["eval.baselines=false"])
            pretrain("iwm-mnist", data=args.data, out=str(run_dir), seed=args.seed, overrides=ov, progress=False,
                     echo=lambda *a, **k: None)
        summaries[arm] = json.loads((run_dir / "summary.json").read_text())
        t0 = time.time()
        method, cfg, info = load_run_method(run_dir)
        data = prepare_run_data(cfg, info)
        x = torch.from_numpy(data.x_test[:args.mrr_samples])
        mrr[arm] = action_mrr(method, x, candidates=args.candidates, seed=args.seed + 12345)
        eval_seconds += time.time() - t0
        if i == 0:  # what was really built, read from the model
            enc, pred, acts = method.backbone.encoder, method.predictor, method.actions
            built = (f"encoder ViT {enc.dim}x{enc.depth} ({enc.heads} heads), patch "
                     f"{method.backbone.tokenizer.patch_size if hasattr(method.backbone.tokenizer, 'patch_size') else '?'}"
                     f", {method.backbone.tokenizer.grid} tokens; predictor {pred.embed.out_features}x{len(pred.blocks)}, "
                     f"inject={pred.inject}, condition width {pred.cond_dim}; actions: rotate {acts.affine.rotate:g} deg, "
                     f"zoom +-{acts.affine.scale:g}, shift +-{acts.affine.translate:g} half-side, brightness "
                     f"+-{acts.brightness:g}, contrast +-{acts.contrast:g}; masker {type(method.masker).__name__}")

    base = summaries["action given"]["baselines"]
    chance = chance_mrr(args.candidates)
    columns = ["representation", "linear", "kNN", "RankMe", f"MRR ({args.candidates} transforms)", "mean rank"]
    rows = []
    for arm in ARMS:
        s = summaries[arm]
        rows.append([f"IWM, {arm}", s["probe"]["linear"]["accuracy"], s["probe"]["knn"]["accuracy"], s["rankme"],
                     mrr[arm][0], mrr[arm][1]])
    rows.append(["random-init encoder", base["random_init"]["linear"]["accuracy"],
                 base["random_init"]["knn"]["accuracy"], base["random_init"]["rankme"], None, None])
    rows.append(["raw pixels", base["raw"]["linear"]["accuracy"], base["raw"]["knn"]["accuracy"],
                 base["raw"]["rankme"], None, None])
    rows.append(["chance (uninformed ranking)", None, None, None, chance, (args.candidates + 1) / 2])
    s0 = summaries["action given"]
    print(f"\nIWM MNIST benchmark: {s0['n_train']} train / {s0['n_test']} test, seed {args.seed}; {built}; "
          f"readout {s0['embedding']['encoder']} encoder pool={s0['embedding']['pool']} (dim {s0['embedding']['dim']}); "
          f"MRR on {min(args.mrr_samples, s0['n_test'])} test images; runs in {out}\n")

    def cell(v):
        return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|")
    for r in rows:
        print("| " + " | ".join(cell(v) for v in r) + " |")
    train = {arm: (summaries[arm]["steps"], summaries[arm]["train_seconds"] / 60) for arm in ARMS}
    print("\ntraining: " + "; ".join(f"{arm} {st} steps in {mn:.1f} min" for arm, (st, mn) in train.items()))
    gain = mrr["action given"][0] - mrr["action withheld"][0]
    notes = [f"Action conditioning {'beats' if gain > 0 else 'does not beat'} the action-withheld predictor on MRR: "
             f"{mrr['action given'][0]:.4f} vs {mrr['action withheld'][0]:.4f} (chance {chance:.4f}).",
             invariant_note(summaries, base),
             f"Built: {built}.",
             "Training: " + "; ".join(f"{arm} {st} steps, {mn:.1f} min" for arm, (st, mn) in train.items()) + "."]
    seconds = sum(s["seconds"] for s in summaries.values()) + eval_seconds
    path = save_result(args.name, columns=columns, rows=rows, seconds=seconds, notes=notes,
                       title="IWM on MNIST: world-model retrieval (MRR) and class probes, action given vs withheld",
                       extra={"mrr": {k: v[0] for k, v in mrr.items()}, "mean_rank": {k: v[1] for k, v in mrr.items()},
                              "candidates": args.candidates, "mrr_samples": args.mrr_samples, "seed": args.seed,
                              "overrides": list(args.overrides), "built": built})
    print(f"\n{notes[0]}\n{notes[1]}\nwhole benchmark {seconds / 60:.1f} min; result in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training-step CPU time of the point methods with cross-attention predictors, fp32 and bf16 autocast, with the
predictor's attention through PyTorch's fused kernel or through ``polyjepa.models.transformer.attention``.

    OMP_NUM_THREADS=1 python benchmarks/points_attention_step.py [--rounds 3] [--steps 3] [--batch 64]

The recipes ``jepa3d`` (3D-JEPA: context-injected predictor, queries attend to [context | own block]) and
``asymdsd-modelnet10`` (AsymDSD: cross-attention-only predictor, plus DINO/iBOT heads and local crops) at
their own sizes (512 points, 32 patches of 16, encoder 128 x 4, predictor 64 x 2 with 4 heads), on random
clouds in the unit ball (the step's cost does not depend on the shapes). The step is the training loop's:
the loader's batch (masks, crops), forward (under ``torch.autocast(bfloat16)`` for bf16), backward,
gradient clipping, AdamW, EMA. ``fused`` runs the predictor blocks' attention through
``F.scaled_dot_product_attention`` (what they called before), ``attention()`` through the library's function,
which under CPU bf16 writes the scores out as two matrix products with the softmax in fp32 (in fp32 it is
the same fused kernel). The encoder's blocks use ``attention()`` in every row. Each (recipe, precision,
attention) runs ``--rounds`` rounds of ``--steps`` steps in alternation after a warm-up step, timed in process
CPU time (one thread; robust to other jobs on a shared machine); the table gives the median seconds per step.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

import polyjepa.points.asymdsd as asymdsd_module
import polyjepa.points.predictor as predictor_module
from polyjepa.build import build_method
from polyjepa.config import TrainConfig, load_recipe
from polyjepa.data import MaskedBatches
from polyjepa.models.transformer import attention
from polyjepa.train.loop import param_groups

RECIPES = ["jepa3d", "asymdsd-modelnet10"]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def fused(q, k, v, attn_mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


KERNELS = {"fused": fused, "attention()": attention}


def built_config(method) -> str:
    """What was built, read from the model."""
    tok, enc, p = method.backbone.tokenizer, method.backbone.encoder, method.predictor
    return (f"{tok.n_groups} patches x {tok.group_size} points, encoder {enc.dim} x {len(enc.blocks)}; "
            f"{type(p).__name__} {p.embed.out_features} x {len(p.blocks)}, {p.blocks[0].heads} heads")


class Trainer:
    def __init__(self, recipe: str, batch_size: int, total: int):
        cfg = load_recipe(recipe)
        points = int(cfg.data.points)
        self.method = build_method(cfg, (points, 3), seed=0, meta={})
        self.opt = torch.optim.AdamW(param_groups(self.method.trainable_modules()), lr=1e-4)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size * 4, points, 3, generator=g)
        x = x / x.norm(dim=-1, keepdim=True).amax(1, keepdim=True)
        make_batch = getattr(self.method, "make_batch", None)
        self.batches = MaskedBatches(x, batch_size=batch_size, masker=None if make_batch else self.method.masker,
                                     make_batch=make_batch, seed=0, total_steps=total)
        self.total, self.step, self.clip = total, 0, TrainConfig().grad_clip

    def run(self, steps: int, dtype: torch.dtype) -> list[float]:
        times = []
        for _ in range(steps):
            c = time.process_time()
            batch = self.batches[self.step % self.total]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                loss = self.method(batch)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.method.parameters(), self.clip)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.method.update_target(self.step % self.total, self.total)
            self.step += 1
            times.append(time.process_time() - c)
        return times


def predictor_inputs(trainer: Trainer) -> tuple:
    """The predictor's inputs (z, context centres, target centres) in one training step of ``trainer``."""
    seen = []
    handle = trainer.method.predictor.register_forward_pre_hook(lambda m, a: seen.append(tuple(t.detach() for t in a)))
    trainer.run(1, torch.float32)
    handle.remove()
    return seen[0]


def predictor_times(predictor, inputs, dtype: torch.dtype, reps: int) -> list[float]:
    """Process CPU seconds of ``reps`` forward + backward passes of the predictor alone."""
    z = inputs[0].clone().requires_grad_()
    times = []
    for _ in range(reps):
        c = time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = predictor(z, *inputs[1:])
        out.float().square().mean().backward()
        times.append(time.process_time() - c)
    predictor.zero_grad(set_to_none=True)
    return times


def use_kernel(name: str) -> None:
    predictor_module.attention = asymdsd_module.attention = KERNELS[name]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--name", default="points-attention-step")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    rows, configs = [], []
    for recipe in args.recipes.split(","):
        trainer = Trainer(recipe, args.batch, total=1000)
        configs.append(f"{recipe}: {built_config(trainer.method)}; batch {args.batch}")
        print(configs[-1], flush=True)
        inputs = predictor_inputs(trainer)
        shapes = " ".join("x".join(map(str, t.shape)) for t in inputs)
        configs[-1] += f"; predictor inputs {shapes}"
        step, pred = {}, {}
        for name in KERNELS:                      # warm-up: one step of each kind
            use_kernel(name)
            for p, dtype in DTYPES.items():
                trainer.run(1, dtype)
                predictor_times(trainer.method.predictor, inputs, dtype, 2)
        for _ in range(args.rounds):              # the kinds alternate, so that load changes hit them alike
            for name in KERNELS:
                use_kernel(name)
                for p, dtype in DTYPES.items():
                    step.setdefault((p, name), []).extend(trainer.run(args.steps, dtype))
                    pred.setdefault((p, name), []).extend(predictor_times(trainer.method.predictor, inputs, dtype,
                                                                          4 * args.steps))
        use_kernel("attention()")
        for what, times in (("predictor fwd+bwd", pred), ("training step", step)):
            for p in DTYPES:
                before, after = statistics.median(times[(p, "fused")]), statistics.median(times[(p, "attention()")])
                rows.append([recipe, what, p, round(before, 4), round(after, 4), round(before / after, 2)])
                print(f"{recipe} {what} {p}: fused {before:.4f} s, attention() {after:.4f} s, x{before / after:.2f}",
                      flush=True)
    columns = ["recipe", "timed", "precision", "fused s", "attention() s", "speed-up"]
    print(f"\nCPU seconds, median of {args.rounds} rounds x {args.steps} training steps (x {4 * args.steps} predictor "
          f"passes), 1 thread (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')})\n")
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    if args.no_save:
        return
    from polyjepa.results import save_result

    save_result(args.name, title="Point predictors' cross-attention: training-step CPU time, fused kernel vs "
                "attention(), fp32 and bf16 autocast", columns=columns, rows=rows, seconds=time.time() - t0,
                notes=[f"median of {args.rounds} rounds x {args.steps} training steps (x {4 * args.steps} predictor "
                       f"passes), process CPU time, 1 thread, random clouds in the unit ball"] + configs,
                extra={"rounds": args.rounds, "steps": args.steps, "batch": args.batch})


if __name__ == "__main__":
    main()

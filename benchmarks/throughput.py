"""Training-step throughput of I-JEPA at the core benchmark configuration, and its share of the fp32 peak.

    python benchmarks/throughput.py [--steps 30] [--batch 64] [--threads N]

Configuration (the core image benchmark's): ViT-Tiny encoder (width 192, depth 12, 3 heads), 32x32 single-channel input,
patch 4 (8x8 = 64 tokens), batch 64, predictor width 96 depth 6, I-JEPA multi-block masks (4 targets).
The step is the real training step of polyjepa's loop (masks and augmentation built in the loader, AdamW,
gradient clipping, fused EMA update), timed after warm-up. Model FLOPs are counted analytically from
the token counts the masker actually produced, and compared with the measured peak of a large fp32
matrix multiply on the same machine and thread count.
"""
from __future__ import annotations

import argparse
import time

import torch

from polyjepa.build import build_method
from polyjepa.config import TrainConfig, load_recipe
from polyjepa.data import MaskedBatches
from polyjepa.train.loop import param_groups
from polyjepa.train.schedules import warmup_cosine

CONFIG = ["encoder.size=tiny", "predictor.dim=96", "predictor.depth=6", "predictor.heads=3",
          "tokenizer.patch_size=4", "augment=null"]


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 GFLOP/s of an n x n matrix multiply (best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def block_flops(tokens: int, dim: int, mlp_ratio: float = 4.0) -> float:
    """Forward FLOPs of one pre-norm transformer block on ``tokens`` tokens (matmuls only)."""
    linear = 2 * tokens * (4 * dim * dim + 2 * mlp_ratio * dim * dim)
    attention = 2 * 2 * tokens * tokens * dim
    return linear + attention


def step_flops(method, batch) -> float:
    """Model FLOPs of one training step: target forward, context encoder and predictor forward + backward."""
    B, Nc = batch["context_idx"].shape
    _, M, Nt = batch["target_idx"].shape
    enc = method.backbone.encoder
    tok = method.backbone.tokenizer
    N = tok.num_tokens
    patch = 2 * tok.patch_size**2 * tok.in_channels * enc.dim
    target_fwd = N * patch + enc.depth * block_flops(N, enc.dim)
    context_fwd = N * patch + enc.depth * block_flops(Nc, enc.dim)
    p = method.predictor
    pdim = p.embed.out_features
    pred_fwd = len(p.blocks) * block_flops(Nc + M * Nt, pdim) + 2 * Nc * enc.dim * pdim + 2 * M * Nt * pdim * enc.dim
    return B * (target_fwd + 3 * (context_fwd + pred_fwd))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_recipe("ijepa-digits", CONFIG + [f"train.batch_size={args.batch}"])
    method = build_method(cfg, (1, 32, 32), seed=0)
    tc = TrainConfig(batch_size=args.batch)
    opt = torch.optim.AdamW(param_groups(method.trainable_modules()), lr=1e-3)
    x = torch.randn(args.batch * 8, 1, 32, 32)
    batches = MaskedBatches(x, batch_size=args.batch, masker=method.masker, seed=0)
    total = args.warmup + args.steps
    flops, seconds = 0.0, 0.0
    for step in range(total):
        t = time.perf_counter()
        batch = batches[step]  # the loader's work (masks) counts in the step time
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(step, total, start=1e-4, peak=1e-3, final=1e-6, warmup_steps=2)
        loss = method(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(method.parameters(), tc.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        method.update_target(step, total)
        dt = time.perf_counter() - t
        if step >= args.warmup:
            seconds += dt
            flops += step_flops(method, batch)
    sps = args.steps * args.batch / seconds
    achieved = flops / seconds / 1e9
    peak = matmul_peak()
    ctx, tgt = batch["context_idx"].shape[1], batch["target_idx"].shape
    print(f"| config | ViT-Tiny 192x12, 32x32 patch 4 (64 tokens), batch {args.batch}, predictor 96x6 |")
    print("|---|---|")
    print(f"| threads | {torch.get_num_threads()} |")
    print(f"| last batch tokens | context {ctx}, targets {tgt[1]}x{tgt[2]} |")
    print(f"| samples/s | {sps:.1f} |")
    print(f"| step time | {seconds / args.steps * 1000:.0f} ms |")
    print(f"| model GFLOP/s | {achieved:.1f} |")
    print(f"| fp32 matmul peak GFLOP/s (2048^3) | {peak:.1f} |")
    print(f"| share of peak | {achieved / peak:.0%} |")
    from polyjepa.results import save_result

    save_result("throughput", title="I-JEPA training-step throughput (ViT-Tiny, 32x32, patch 4, batch "
                f"{args.batch})", columns=["samples/s", "step (ms)", "model GFLOP/s", "fp32 matmul peak GFLOP/s",
                                            "share of peak"],
                rows=[[round(sps, 1), round(seconds / args.steps * 1000), round(achieved, 1), round(peak, 1),
                       f"{achieved / peak:.0%}"]],
                notes=[f"last batch: context {ctx} tokens, targets {tgt[1]} x {tgt[2]}; {torch.get_num_threads()} threads"])


if __name__ == "__main__":
    main()

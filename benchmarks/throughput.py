"""Training-step throughput of I-JEPA at ViT-Tiny, in fp32 and under bf16 autocast, and its share of the GEMM peak.

    python benchmarks/throughput.py [--rounds 6] [--steps 4] [--batch 64] [--channels 3] [--threads 1]
                                    [--precisions 32-true,bf16-mixed] [--name throughput] [key=value ...]

Configuration: ViT-Tiny encoder (192 wide, 12 deep, 3 heads) over 32x32 inputs in patches of 4 (8x8 = 64 tokens),
batch 64, predictor 96 wide and 6 deep, I-JEPA multi-block masks (4 targets), built from the ``ijepa-digits``
recipe with ``encoder.size=tiny`` (a size override sets width, depth and heads together). What was built is
read back from the model and printed. The step is polyjepa's training step (masks made by the loader, fused AdamW,
gradient clipping, fused EMA update); bf16 runs the forward pass under ``torch.autocast(bfloat16)``, which
is what ``train.precision=bf16-mixed`` does through Fabric. The precisions alternate in ``--rounds`` rounds
of ``--steps`` steps after a warm-up, and each is timed in process CPU time (robust to other jobs on a shared
machine; wall time is reported too). Model FLOPs are counted analytically from the token counts the masker
produced, and compared with the best fp32 and bf16 GEMM (2048^3) measured in the same run (before and after the
rounds, the higher of the two). After the rounds,
``--profile-steps`` more steps of each kind run under the PyTorch profiler (not timed) and say where the distance
from that peak lies: the share of the step spent in the GEMM kernels of the linear layers, and those kernels' own
rate on the linear layers' FLOPs as a share of the peak.

``--meta-ref DIR`` adds Meta's reference I-JEPA (a clone of github.com/facebookresearch/ijepa; it is not a
package and never a dependency) to the same rounds, at each precision: its ``VisionTransformer`` encoder (built
as its ``vit_tiny`` builds it, at polyjepa's sizes), its ``vit_predictor``, ``apply_masks`` and
``repeat_interleave_batch``, and its training step as its ``train.py`` runs it (target forward under no_grad
with layer_norm, smooth-L1, AdamW with its weight-decay groups, no gradient clipping, per-parameter EMA update),
fed the very masks polyjepa's masker made for the same batch. What was built is read back from both models.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from polyjepa.build import build_method
from polyjepa.config import TrainConfig, load_recipe
from polyjepa.data import MaskedBatches
from polyjepa.train.loop import adamw, param_groups
from polyjepa.train.schedules import warmup_cosine

CONFIG = ["encoder.size=tiny", "predictor.dim=96", "predictor.depth=6", "predictor.heads=3",
          "tokenizer.patch_size=4", "augment=null"]
DTYPES = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16}


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 8) -> float:
    """Measured GFLOP/s of an n x n matrix multiply in ``dtype`` (best of ``repeats``, in process CPU time like
    the steps, so that other jobs on the machine lower neither)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        a @ b
        best = min(best, time.process_time() - t)
    return 2 * n**3 / best / 1e9


def block_flops(tokens: int, dim: int, mlp_ratio: float = 4.0) -> np.ndarray:
    """Forward FLOPs of one pre-norm transformer block on ``tokens`` tokens (matmuls only): [in the linear
    layers, in attention's two token-by-token products]."""
    linear = 2 * tokens * (4 * dim * dim + 2 * mlp_ratio * dim * dim)
    attention = 2 * 2 * tokens * tokens * dim
    return np.array([linear, attention], dtype=np.float64)


def step_flop_parts(method, batch) -> np.ndarray:
    """Model FLOPs of one training step (target forward, context encoder and predictor forward + backward):
    [in linear layers and the patch embedding, in attention's products]."""
    B, Nc = batch["context_idx"].shape
    _, M, Nt = batch["target_idx"].shape
    enc = method.backbone.encoder
    tok = method.backbone.tokenizer
    N = tok.num_tokens
    patch = np.array([2 * tok.patch_size**2 * tok.in_channels * enc.dim, 0.0])
    target_fwd = N * patch + enc.depth * block_flops(N, enc.dim)
    context_fwd = N * patch + enc.depth * block_flops(Nc, enc.dim)
    p = method.predictor
    pdim = p.embed.out_features
    pred_fwd = (len(p.blocks) * block_flops(Nc + M * Nt, pdim)
                + np.array([2 * Nc * enc.dim * pdim + 2 * M * Nt * pdim * enc.dim, 0.0]))
    return B * (target_fwd + 3 * (context_fwd + pred_fwd))


def step_flops(method, batch) -> float:
    """Model FLOPs of one training step (matmuls only)."""
    return float(step_flop_parts(method, batch).sum())


GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul")


def gemm_breakdown(trainer, steps: int, flops_of) -> dict:
    """Where ``steps`` more steps of ``trainer`` spend their time, from the PyTorch profiler: the share in the
    linear layers' GEMM kernels (self time of the matrix-multiply ops) and those kernels' own GFLOP/s on the
    linear FLOPs. It says how much of the step's distance from the GEMM peak is the GEMMs' own (their shapes)
    and how much the rest of the step (attention, element-wise ops, optimiser). Not counted in the timings."""
    from torch.profiler import ProfilerActivity, profile

    linear = 0.0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            trainer.run(1, timed=False)
            linear += flops_of(trainer)[0]
    step_us = sum(e.self_cpu_time_total for e in prof.key_averages())
    gemm_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in GEMM_OPS)
    return {"share": gemm_us / step_us, "gflops": linear / (gemm_us / 1e6) / 1e9}


def built_config(method, batch_size: int) -> str:
    """The configuration as the model holds it (not as the arguments asked for it)."""
    enc, tok, p = method.backbone.encoder, method.backbone.tokenizer, method.predictor
    return (f"encoder {enc.dim} wide x {len(enc.blocks)} deep, {enc.heads} heads; {tok.in_channels}x"
            f"{'x'.join(map(str, tok.image_size))} input, patch {tok.patch_size} ({tok.num_tokens} tokens); "
            f"predictor {p.embed.out_features} wide x {len(p.blocks)} deep; batch {batch_size}")


class Trainer:
    """One method, optimiser and batch stream at one precision; ``run(k)`` does k steps and times them."""

    def __init__(self, cfg, shape, batch_size: int, precision: str, total: int):
        self.method = build_method(cfg, shape, seed=0)
        self.opt = adamw(param_groups(self.method.trainable_modules()), lr=1e-3)
        x = torch.randn(batch_size * 8, *shape)
        self.batches = MaskedBatches(x, batch_size=batch_size, masker=self.method.masker, seed=0)
        self.dtype, self.total, self.step = DTYPES[precision], total, 0
        self.grad_clip = TrainConfig().grad_clip
        self.cpu = self.wall = self.flops = 0.0
        self.samples = 0

    def run(self, steps: int, timed: bool = True) -> None:
        for _ in range(steps):
            t, c = time.perf_counter(), time.process_time()
            batch = self.batches[self.step]  # the loader's work (masks) counts in the step time
            for g in self.opt.param_groups:
                g["lr"] = warmup_cosine(self.step, self.total, start=1e-4, peak=1e-3, final=1e-6, warmup_steps=2)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16):
                loss = self.method(batch)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.method.parameters(), self.grad_clip)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.method.update_target(self.step, self.total)
            self.step += 1
            if timed:
                self.cpu += time.process_time() - c
                self.wall += time.perf_counter() - t
                self.flops += step_flops(self.method, batch)
                self.samples += len(batch["x"])
            self.last_batch = batch


class MetaTrainer:
    """Meta's reference I-JEPA step (from a clone at ``ref``) on the same batches as ``twin`` (a Trainer)."""

    def __init__(self, ref: str, twin: Trainer, precision: str):
        import sys
        from functools import partial

        if ref not in sys.path:
            sys.path.insert(0, ref)
        try:
            from src.masks.utils import apply_masks
            from src.models.vision_transformer import VisionTransformer, vit_predictor
            from src.utils.tensors import repeat_interleave_batch
        except ImportError as e:
            raise SystemExit(f"--meta-ref {ref}: not a clone of facebookresearch/ijepa ({e})") from None
        self.apply_masks, self.repeat = apply_masks, repeat_interleave_batch
        m = twin.method
        enc, tok, pred = m.backbone.encoder, m.backbone.tokenizer, m.predictor
        torch.manual_seed(0)
        # vit_tiny is VisionTransformer at 192 x 12 x 3 heads; other sizes are built the way its factories build them
        self.encoder = VisionTransformer(patch_size=tok.patch_size, img_size=[tok.image_size[0]],
                                         in_chans=tok.in_channels, embed_dim=enc.dim, depth=len(enc.blocks),
                                         num_heads=enc.heads, mlp_ratio=4, qkv_bias=True,
                                         norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
        self.predictor = vit_predictor(num_patches=tok.num_tokens, embed_dim=self.encoder.embed_dim,
                                       predictor_embed_dim=pred.embed.out_features, depth=len(pred.blocks),
                                       num_heads=pred.blocks[0].attn.heads)
        import copy

        self.target = copy.deepcopy(self.encoder)
        for p in self.target.parameters():
            p.requires_grad = False
        groups = []
        for mod in (self.encoder, self.predictor):
            named = list(mod.named_parameters())
            groups.append({"params": [p for n, p in named if "bias" not in n and p.ndim != 1]})
            groups.append({"params": [p for n, p in named if "bias" in n or p.ndim == 1], "weight_decay": 0})
        self.opt = torch.optim.AdamW(groups, lr=1e-3)
        self.twin, self.dtype, self.total, self.step = twin, DTYPES[precision], twin.total, 0
        self.cpu = self.wall = self.flops = 0.0
        self.samples = 0

    def built(self) -> str:
        e, p = self.encoder, self.predictor
        return (f"encoder {e.embed_dim} wide x {len(e.blocks)} deep, {e.num_heads} heads; patch "
                f"{e.patch_embed.patch_size} ({e.patch_embed.num_patches} tokens); predictor "
                f"{p.predictor_embed.out_features} wide x {len(p.predictor_blocks)} deep")

    def run(self, steps: int, timed: bool = True) -> None:
        import torch.nn.functional as F

        for _ in range(steps):
            t, c = time.perf_counter(), time.process_time()
            batch = self.twin.batches[self.step]
            imgs = batch["x"]
            masks_enc = [batch["context_idx"]]
            masks_pred = list(batch["target_idx"].unbind(1))
            for g in self.opt.param_groups:
                g["lr"] = warmup_cosine(self.step, self.total, start=1e-4, peak=1e-3, final=1e-6, warmup_steps=2)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16):
                with torch.no_grad():
                    h = self.target(imgs)
                    h = F.layer_norm(h, (h.size(-1),))
                    B = len(h)
                    h = self.apply_masks(h, masks_pred)
                    h = self.repeat(h, B, repeat=len(masks_enc))
                z = self.encoder(imgs, masks_enc)
                z = self.predictor(z, masks_enc, masks_pred)
                loss = F.smooth_l1_loss(z, h)
            loss.backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            m = 0.996 + (1.0 - 0.996) * self.step / self.total
            with torch.no_grad():
                for q, k in zip(self.encoder.parameters(), self.target.parameters()):
                    k.data.mul_(m).add_((1.0 - m) * q.detach().data)
            self.step += 1
            if timed:
                self.cpu += time.process_time() - c
                self.wall += time.perf_counter() - t
                self.flops += step_flops(self.twin.method, batch)
                self.samples += len(imgs)
            self.last_batch = batch


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=4, help="steps per precision per round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precisions", default="32-true,bf16-mixed")
    ap.add_argument("--name", default="throughput", help="result file stem under results/")
    ap.add_argument("--meta-ref", default=None, metavar="DIR",
                    help="a clone of facebookresearch/ijepa: its step joins the same rounds at each precision")
    ap.add_argument("--profile-steps", type=int, default=2,
                    help="steps per step kind profiled after the rounds for the GEMM breakdown (0: none)")
    ap.add_argument("overrides", nargs="*", help="more recipe overrides, e.g. encoder.size=small")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = args.precisions.split(",")
    started = time.perf_counter()
    cfg = load_recipe("ijepa-digits", CONFIG + [f"train.batch_size={args.batch}"] + args.overrides)
    shape = (args.channels, 32, 32)
    total = args.warmup + args.rounds * args.steps + args.profile_steps
    trainers = {p: Trainer(cfg, shape, args.batch, p, total) for p in precisions}
    config = built_config(next(iter(trainers.values())).method, args.batch)
    print(config, flush=True)
    meta_config = None
    if args.meta_ref:
        for p in precisions:
            trainers[f"Meta reference, {p}"] = MetaTrainer(args.meta_ref, trainers[p], p)
        meta_config = trainers[f"Meta reference, {precisions[0]}"].built()
        print(f"Meta reference: {meta_config}", flush=True)
    for t in trainers.values():
        t.run(args.warmup, timed=False)
    # the peak is measured before and after the rounds and the higher taken: the clock moves a few percent
    peaks_before = {p: matmul_peak(DTYPES[p]) for p in precisions}
    for r in range(args.rounds):
        for p, t in trainers.items():
            t.run(args.steps)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{p} {t.samples / t.cpu:.1f} samples/s (CPU time)" for p, t in trainers.items()), flush=True)
    breakdown = {}
    if args.profile_steps:
        for p, t in trainers.items():
            method = getattr(t, "method", None) or t.twin.method
            breakdown[p] = gemm_breakdown(t, args.profile_steps, lambda tr, m=method: step_flop_parts(m, tr.last_batch))
    peaks = {p: max(peaks_before[p], matmul_peak(DTYPES[p])) for p in precisions}

    cols = ["step", "samples/s (CPU time)", "samples/s (wall)", "step (ms)", "model GFLOP/s",
            "GEMM peak GFLOP/s (same dtype)", "share of peak", "speed-up vs fp32"]
    if args.meta_ref:
        cols.append("vs Meta fp32")
    if breakdown:
        cols += ["GEMM kernels' share of the step", "GEMM kernels' share of peak"]
    rows = []
    base = trainers["32-true"].samples / trainers["32-true"].cpu if "32-true" in trainers else None
    meta = trainers.get("Meta reference, 32-true")
    meta_base = meta.samples / meta.cpu if meta is not None else None
    for p, t in trainers.items():
        sps = t.samples / t.cpu
        achieved = t.flops / t.cpu / 1e9
        peak = peaks[p.split(", ")[-1]]
        label = p if p.startswith("Meta") else f"polyjepa, {p}"
        base_p = meta_base if p.startswith("Meta") else base
        rows.append([label, round(sps, 1), round(t.samples / t.wall, 1),
                     round(t.cpu / (t.samples / args.batch) * 1000), round(achieved, 1), round(peak, 1),
                     f"{achieved / peak:.0%}", round(sps / base_p, 2) if base_p else None])
        if args.meta_ref:
            rows[-1].append(round(sps / meta_base, 2) if meta_base else None)
        if breakdown:
            rows[-1] += [f"{breakdown[p]['share']:.0%}", f"{breakdown[p]['gflops'] / peak:.0%}"]
    b = trainers[precisions[0]].last_batch
    ctx, tgt = b["context_idx"].shape[1], b["target_idx"].shape
    print(f"\nbuilt: {config}; {torch.get_num_threads()} thread(s)\n")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("" if v is None else str(v) for v in r) + " |")
    from polyjepa.results import save_result

    notes = [f"built: {config}"] + ([f"Meta reference built: {meta_config}"] if meta_config else []) + [
             f"last batch: context {ctx} tokens, targets {tgt[1]} x {tgt[2]}; "
             f"{torch.get_num_threads()} thread(s); {args.rounds} interleaved rounds of {args.steps} steps each",
             f"load average {os.getloadavg()[0]:.0f} on {os.cpu_count()} cores at the end (other jobs lower the wall "
             f"column; the precisions are compared in CPU time)"]
    enc = next(iter(trainers.values())).method.backbone.encoder
    path = save_result(args.name, title=f"I-JEPA training step at {enc.dim} wide x {len(enc.blocks)} deep, fp32 and "
                                        f"bf16 autocast",
                       columns=cols, rows=rows, seconds=time.perf_counter() - started, notes=notes,
                       extra={"config": config, "meta_config": meta_config, "overrides": args.overrides})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Diffusion-style noise for the predictor's mask tokens (N-JEPA)."""
from __future__ import annotations

import torch
from torch import nn

from ..models.predictor import MaskTokenPredictor, block_attention_mask
from ..models.transformer import gather_tokens
from ..tokenizers.posembed import sincos_1d, sincos_2d
from .conv_predictor import DepthwiseConvPredictor


class NoiseSchedule(nn.Module):
    """A discrete variance-preserving noise schedule: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.

    beta_t rises linearly from ``beta[0]`` to ``beta[1]`` over ``steps`` steps (DDPM, Ho et al., 2020) and
    abar_t = prod_{s <= t} (1 - beta_s), so step 0 is the least noisy and step T-1 the noisiest.

    Args:
        beta: (first, last) beta, both in (0, 1).
        steps: T, the number of noise levels.
    """

    def __init__(self, *, beta: tuple[float, float] = (1e-4, 0.02), steps: int = 1000):
        super().__init__()
        b0, b1 = float(beta[0]), float(beta[1])
        if not (0 < b0 < 1 and 0 < b1 < 1):
            raise ValueError(f"noise beta must be (first, last) with both in (0, 1), got {tuple(beta)}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"noise steps must be a positive integer, got {steps!r}")
        self.steps, self.beta = steps, (b0, b1)
        betas = torch.linspace(b0, b1, steps, dtype=torch.float64)
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, 0).float(), persistent=False)  # (T,)

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x0 (B, ...) at steps t (B,) -> x_t (B, ...); ``noise`` defaults to a standard normal draw."""
        ab = self.alpha_bar.to(x0.dtype)[t].view(-1, *([1] * (x0.ndim - 1)))
        eps = torch.randn_like(x0) if noise is None else noise
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def _add_noise_parts(module: nn.Module, *, dim: int, noise: bool, condition: bool,
                     beta: tuple[float, float], steps: int) -> None:
    """The noise settings shared by the noisy predictors: the flags, the schedule and the step embedding
    (zero-initialised, so a fresh predictor starts as if unconditioned; absent without noise or condition)."""
    module.noise, module.condition = bool(noise), bool(condition)
    module.schedule = NoiseSchedule(beta=beta, steps=steps)
    module.step_embed = nn.Linear(dim, dim) if module.noise and module.condition else None
    if module.step_embed is not None:
        nn.init.zeros_(module.step_embed.weight)
        nn.init.zeros_(module.step_embed.bias)


class NoisyMaskTokenPredictor(MaskTokenPredictor):
    """I-JEPA predictor whose mask-token positions are corrupted with diffusion noise (N-JEPA).

    For each sample a step t ~ U{0, ..., T-1} is drawn; the positional embedding of every target
    token becomes sqrt(abar_t) pe + sqrt(1 - abar_t) eps, and a sine-cosine embedding of t, through a
    linear layer, is added to the mask tokens so the predictor knows how noisy its queries are
    ("Improving JEPA with Diffusion Noise", 2025). ``noise=False`` is plain I-JEPA (the ablation).
    Context tokens keep their clean positions. The draws use torch's global generator (seeded by the
    trainer), like dropout.

    Args:
        noise: corrupt the target positions; beta, steps: the :class:`NoiseSchedule`; condition: add the
            step embedding. Other arguments as :class:`~polyjepa.models.predictor.MaskTokenPredictor`.
    Shapes:
        forward(z (B, Nc, D), context_idx (B, Nc), target_idx (B, M, Nt), t (B,) | None) -> (B, M, Nt, D).
    """

    def __init__(self, *, in_dim: int, dim: int, depth: int, heads: int, pos_embed: torch.Tensor,
                 mlp_ratio: float = 4.0, isolate_targets: bool = True, noise: bool = True,
                 beta: tuple[float, float] = (1e-4, 0.02), steps: int = 1000, condition: bool = True):
        super().__init__(in_dim=in_dim, dim=dim, depth=depth, heads=heads, pos_embed=pos_embed, mlp_ratio=mlp_ratio,
                         isolate_targets=isolate_targets)
        _add_noise_parts(self, dim=dim, noise=noise, condition=condition, beta=beta, steps=steps)

    def forward(self, z: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor,
                t: torch.Tensor | None = None) -> torch.Tensor:
        B, M, Nt = target_idx.shape
        Nc = context_idx.shape[1]
        pos = self.pos_embed.to(z.dtype)
        x = self.embed(z) + pos[context_idx]                                  # (B, Nc, Dp)
        q_pos = pos[target_idx.reshape(B, M * Nt)]                            # (B, M*Nt, Dp)
        q = self.mask_token.expand(B, M * Nt, -1)
        if self.noise and self.training:
            if t is None:
                t = torch.randint(0, self.schedule.steps, (B,), device=z.device)
            q_pos = self.schedule.add_noise(q_pos, t)
            if self.step_embed is not None:
                temb = sincos_1d(q.shape[-1], t.float().cpu()).to(z.device, z.dtype)   # (B, Dp)
                q = q + self.step_embed(temb)[:, None]
        x = torch.cat([x, q + q_pos], dim=1)
        mask = block_attention_mask(Nc, M, Nt, z.device) if self.isolate_targets and M > 1 else None
        for block in self.blocks:
            x = block(x, mask)
        return self.proj(self.norm(x[:, Nc:])).view(B, M, Nt, -1)


class NoisyDepthwiseConvPredictor(DepthwiseConvPredictor):
    """CNN-JEPA's depthwise-conv predictor with N-JEPA's noise: every cell carries fixed sine-cosine
    positions, and at the masked cells (those the predictor fills with the mask token) the positions are
    corrupted to sqrt(abar_t) pe + sqrt(1 - abar_t) eps with one step t ~ U{0..T-1} per sample; an embedding
    of t is added to the mask-token cells. Context cells keep clean positions; ``noise=False`` is the clean
    predictor with positions (the ablation). Draws use torch's global generator, in training only.

    Args: as :class:`~polyjepa.vision.conv_predictor.DepthwiseConvPredictor`, plus noise, beta, steps,
        condition as :class:`NoisyMaskTokenPredictor`.
    Shapes:
        forward(z (B, Nc, D), context_idx (B, Nc), target_idx (B, M, Nt), t (B,) | None) -> (B, M, Nt, D).
    """

    def __init__(self, *, in_dim: int, grid: tuple[int, int], dim: int = 128, depth: int = 3, kernel: int = 3,
                 noise: bool = True, beta: tuple[float, float] = (1e-4, 0.02), steps: int = 1000,
                 condition: bool = True):
        super().__init__(in_dim=in_dim, grid=grid, dim=dim, depth=depth, kernel=kernel,
                         pos_embed=sincos_2d(dim, (int(grid[0]), int(grid[1]))))
        _add_noise_parts(self, dim=dim, noise=noise, condition=condition, beta=beta, steps=steps)

    def forward(self, z: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor,
                t: torch.Tensor | None = None) -> torch.Tensor:
        B = z.shape[0]
        N = self.grid[0] * self.grid[1]
        masked = torch.ones(B, N, 1, dtype=z.dtype, device=z.device).scatter_(1, context_idx[..., None], 0.0)
        cells = self.mask_token.to(z.dtype).expand(B, N, self.dim).clone()      # (B, N, Dp)
        pos = self.pos_embed.to(z.dtype).expand(B, N, self.dim)
        if self.noise and self.training:
            if t is None:
                t = torch.randint(0, self.schedule.steps, (B,), device=z.device)
            pos = masked * self.schedule.add_noise(pos, t) + (1 - masked) * pos
            if self.step_embed is not None:
                temb = sincos_1d(self.dim, t.float().cpu()).to(z.device, z.dtype)  # (B, Dp)
                cells = cells + masked * self.step_embed(temb)[:, None]
        cells.scatter_(1, context_idx[..., None].expand(-1, -1, self.dim), self.embed(z))
        x = (cells + pos).transpose(1, 2).reshape(B, self.dim, *self.grid)      # (B, Dp, H, W)
        h = self.proj(self.layers(x)).flatten(2).transpose(1, 2)                # (B, N, D)
        return gather_tokens(h, target_idx)

"""D-JEPA: a JEPA encoder whose decoder also conditions a per-token flow-matching head, so it samples images.

The encoder reads the visible patches; a decoder (mask tokens + positions, plus a few learned buffer
tokens so that it has something to read when every patch is masked) gives a condition vector z_i at every
position. Two losses on the masked positions: the flow-matching loss of the head generating the patch's
pixels from z_i, and the JEPA loss of a projection of z_i regressing the EMA encoder's features of the
whole image. Generation unmasks the grid in a few rounds (cosine schedule, random order), sampling each
newly revealed patch with the head. ``head='pixel'`` replaces the flow head by a linear map to the pixels
(a masked autoencoder), whose rounds fill in the predicted mean.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..models.encoder import Backbone
from ..models.transformer import Block, gather_tokens, init_weights
from ..objectives.latent import latent_regression
from ..targets.ema import EMATarget
from ..targets.rvq import patchify as patchify_nd
from .flow_head import FlowHead, flow_matching_loss


def truncated_normal_ratio(generator: torch.Generator, mean: float = 1.0, std: float = 0.25,
                           low: float = 0.7, high: float = 1.0) -> float:
    """One mask ratio from N(mean, std^2) truncated to [low, high], by the inverse CDF."""
    a = torch.special.ndtr(torch.tensor((low - mean) / std, dtype=torch.float64))
    b = torch.special.ndtr(torch.tensor((high - mean) / std, dtype=torch.float64))
    u = a + (b - a) * torch.rand((), generator=generator, dtype=torch.float64)
    return float(mean + std * torch.special.ndtri(u))


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C*p*p) patches, row-major grid, (C, p, p) inside a patch: the targets' patch cut
    (:func:`polyjepa.targets.rvq.patchify`) with square patches."""
    return patchify_nd(x, (p, p))


def unpatchify(t: torch.Tensor, p: int, channels: int, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, N, C*p*p) -> (B, C, H, W)."""
    B = t.shape[0]
    gh, gw = grid
    return t.reshape(B, gh, gw, channels, p, p).permute(0, 3, 1, 4, 2, 5).reshape(B, channels, gh * p, gw * p)


class DJEPA(nn.Module):
    """Generative JEPA with a per-token flow-matching (or pixel) head.

    Args:
        backbone: patch tokenizer (with ``patch_size``, ``grid``, ``in_channels``) + encoder.
        decoder_dim, decoder_depth, heads: the decoder transformer; buffer: learned tokens it always reads.
        head: 'flow' (flow-matching MLP, ``head_width`` x ``head_depth``) or 'pixel' (linear, MSE: an MAE).
        head_repeats: (t, noise) draws per masked token and step (the card: 4).
        jepa_weight: weight of the JEPA loss (0 = no JEPA term and no EMA encoder work).
        momentum: EMA schedule (start, end) of the target encoder.
        mask_ratio: (mean, std, low, high) of the truncated-normal fraction of patches masked per batch.
    A batch: x (B, C, H, W), visible_idx (B, Nv), masked_idx (B, Nm), flow_t (B, R, Nm), flow_noise (B, R, Nm, P).
    From: D-JEPA (Chen et al., 2024); masked generation as MaskGIT / MAR.
    """

    def __init__(self, *, backbone: Backbone, decoder_dim: int = 128, decoder_depth: int = 2, heads: int = 4,
                 buffer: int = 4, head: str = "flow", head_width: int = 256, head_depth: int = 3,
                 head_repeats: int = 4, jepa_weight: float = 1.0, momentum: tuple[float, float] = (0.996, 1.0),
                 mask_ratio: tuple[float, float, float, float] = (1.0, 0.25, 0.7, 1.0)):
        super().__init__()
        if head not in ("flow", "pixel"):
            raise UserError(f"method.head={head!r}: use 'flow' (flow-matching head) or 'pixel' (masked autoencoder)")
        tok = backbone.tokenizer
        if not all(hasattr(tok, a) for a in ("patch_size", "grid", "in_channels")):
            raise UserError("method djepa generates patches of pixels: use tokenizer.name=patch2d")
        mean, std, low, high = (float(v) for v in mask_ratio)
        if not 0.0 < low <= high <= 1.0 or std <= 0:
            raise UserError(f"method.mask_ratio={list(mask_ratio)} must be (mean, std > 0, low, high) with "
                            f"0 < low <= high <= 1")
        self.backbone = backbone
        self.patch, self.grid, self.channels = tok.patch_size, tuple(tok.grid), tok.in_channels
        self.num_tokens = self.grid[0] * self.grid[1]
        self.token_size = self.channels * self.patch ** 2
        self.head_kind, self.head_repeats = head, int(head_repeats)
        self.jepa_weight, self.mask_ratio = float(jepa_weight), (mean, std, low, high)
        D = backbone.dim
        self.embed_dec = nn.Linear(D, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.buffer = nn.Parameter(torch.zeros(1, buffer, decoder_dim))
        self.dec_pos = nn.Parameter(torch.zeros(1, self.num_tokens, decoder_dim))
        self.blocks = nn.ModuleList([Block(decoder_dim, heads) for _ in range(decoder_depth)])
        self.norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        init_weights(self, self.blocks)
        for p in (self.mask_token, self.buffer, self.dec_pos):
            nn.init.trunc_normal_(p, std=0.02)
        self.head = (FlowHead(size=self.token_size, cond_dim=decoder_dim, width=head_width, depth=head_depth)
                     if head == "flow" else nn.Linear(decoder_dim, self.token_size))
        self.jepa_proj = nn.Sequential(nn.LayerNorm(decoder_dim), nn.Linear(decoder_dim, D)) if jepa_weight else None
        self.target = EMATarget(backbone, momentum=tuple(momentum)) if jepa_weight else None
        self.masker = None  # the data loader calls make_batch

    # --- batches -----------------------------------------------------------------------------------
    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        B, N = x.shape[0], self.num_tokens
        n_mask = min(N, max(1, math.ceil(truncated_normal_ratio(generator, *self.mask_ratio) * N)))
        order = torch.rand(B, N, generator=generator).argsort(1)
        batch = {"x": x, "visible_idx": order[:, : N - n_mask], "masked_idx": order[:, N - n_mask:]}
        if self.head_kind == "flow":
            R = self.head_repeats
            batch["flow_t"] = torch.rand(B, R, n_mask, generator=generator, dtype=x.dtype)
            batch["flow_noise"] = torch.randn(B, R, n_mask, self.token_size, generator=generator, dtype=x.dtype)
        return batch

    # --- the network -------------------------------------------------------------------------------
    def conditions(self, x: torch.Tensor, visible_idx: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images, (B, Nv) visible patches -> (B, N, Dd) decoder outputs at every position."""
        B, N = x.shape[0], self.num_tokens
        full = self.mask_token.expand(B, N, -1)
        if visible_idx.shape[1] > 0:
            z = self.embed_dec(self.backbone(x, keep_idx=visible_idx))           # (B, Nv, Dd)
            full = full.scatter(1, visible_idx[..., None].expand(-1, -1, full.shape[-1]), z)
        h = torch.cat([self.buffer.expand(B, -1, -1), full + self.dec_pos], 1)
        for block in self.blocks:
            h = block(h)
        return self.norm(h[:, self.buffer.shape[1]:])

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, visible_idx, masked_idx = batch["x"], batch["visible_idx"], batch["masked_idx"]
        c = gather_tokens(self.conditions(x, visible_idx), masked_idx)          # (B, Nm, Dd)
        tokens = gather_tokens(patchify(x, self.patch), masked_idx)              # (B, Nm, P)
        if self.head_kind == "flow":
            R = batch["flow_t"].shape[1]
            gen = flow_matching_loss(self.head, tokens[:, None].expand(-1, R, -1, -1).reshape(-1, self.token_size),
                                     c[:, None].expand(-1, R, -1, -1).reshape(-1, c.shape[-1]),
                                     batch["flow_t"].reshape(-1), batch["flow_noise"].reshape(-1, self.token_size))
        else:
            gen = F.mse_loss(self.head(c), tokens)
        out = {"loss": gen, "generation": gen.detach()}
        if self.target is not None:
            h = gather_tokens(self.target(x), masked_idx)                       # (B, Nm, D), no gradient
            j = latent_regression(self.jepa_proj(c), h, kind="smooth_l1")
            out.update(loss=gen + self.jepa_weight * j["loss"], jepa=j["loss"].detach(), target_std=j["target_std"])
        return out

    def trainable_modules(self) -> list[nn.Module]:
        parts = [self.backbone, self.embed_dec, self.blocks, self.norm, self.head]
        mods = list(parts) + ([self.jepa_proj] if self.jepa_proj is not None else [])
        return mods + [_Params(self.mask_token, self.buffer, self.dec_pos)]

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float | None:
        return self.target.update(self.backbone, step, total_steps) if self.target is not None else None

    def encoder(self) -> Backbone:
        return self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        return self.backbone.embed(x, pool=pool, layers=layers)

    # --- generation --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, *, rounds: int = 8, flow_steps: int = 20, generator: torch.Generator | None = None,
               device=None, dtype=torch.float32) -> torch.Tensor:
        """(n, C, H, W) generated images (in the data's normalised units).

        ``rounds`` unmasking rounds; after round k a fraction 1 - cos(pi/2 k/rounds) of the patches is
        known (at least one more each round), in a random order per image.
        """
        N, p = self.num_tokens, self.patch
        H, W = self.grid[0] * p, self.grid[1] * p
        canvas = torch.zeros(n, self.channels, H, W, device=device, dtype=dtype)
        order = torch.rand(n, N, generator=generator).argsort(1).to(device)
        known = 0
        for k in range(1, rounds + 1):
            upto = N if k == rounds else min(N, max(known + 1, round(N * (1 - math.cos(math.pi / 2 * k / rounds)))))
            new = order[:, known:upto]                                           # (n, Nn) revealed now
            c = gather_tokens(self.conditions(canvas, order[:, :known]), new)   # (n, Nn, Dd)
            flat = c.reshape(-1, c.shape[-1])
            vals = (self.head.sample(flat, flow_steps, generator) if self.head_kind == "flow"
                    else self.head(flat)).reshape(n, -1, self.token_size)
            tokens = patchify(canvas, p).scatter(1, new[..., None].expand(-1, -1, self.token_size), vals)
            canvas = unpatchify(tokens, p, self.channels, self.grid)
            known = upto
        return canvas


    def report_figures(self, plots, *, mean=None, std=None, seed: int = 0, n: int = 100) -> list[tuple[str, str]]:
        """Draw ``n`` samples into ``plots``/samples.png (in pixel units via the data's ``mean``/``std``);
        returns [(title, path relative to the run)] for the run's report."""
        images = to_pixels(self.sample(n, generator=torch.Generator().manual_seed(seed)), mean, std)
        save_grid(images, plots / "samples.png")
        return [(f"{n} generated samples ({self.head_kind} head)", "plots/samples.png")]


def to_pixels(x: torch.Tensor, mean=None, std=None) -> torch.Tensor:
    """Normalised images (n, C, H, W) -> pixel units clipped to [0, 1] (per-channel ``mean``/``std`` undone)."""
    if mean is not None:
        shape = (1, -1, 1, 1)
        x = x * torch.as_tensor(std, dtype=x.dtype).view(shape) + torch.as_tensor(mean, dtype=x.dtype).view(shape)
    return x.clamp(0, 1)


def save_grid(images: torch.Tensor, path, cols: int = 10) -> None:
    """(n, C, H, W) images in [0, 1] -> one PNG grid of ``cols`` columns with 2-pixel gaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, C, H, W = images.shape
    rows = math.ceil(n / cols)
    grid = torch.ones(C, rows * (H + 2), cols * (W + 2))
    for i in range(n):
        r, c = divmod(i, cols)
        grid[:, r * (H + 2) + 1: r * (H + 2) + 1 + H, c * (W + 2) + 1: c * (W + 2) + 1 + W] = images[i].float().cpu()
    arr = grid[0].numpy() if C == 1 else grid[:3].permute(1, 2, 0).numpy()
    plt.imsave(path, arr, cmap="gray" if C == 1 else None, vmin=0.0, vmax=1.0)


class _Params(nn.Module):
    """Loose parameters as a module, for the optimiser's parameter groups."""

    def __init__(self, *params: nn.Parameter):
        super().__init__()
        self.params = nn.ParameterList(list(params))

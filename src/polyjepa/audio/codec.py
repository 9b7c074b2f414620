"""A JEPA neural audio tokenizer: a convolutional encoder of log-mel frames trained by latent masked prediction,
then frozen; an FSQ bottleneck and a decoder back to log-mels trained for reconstruction (a codec).

Stage 1 (JEPA): the encoder reads the whole clip (B, n_mels, T) -> (B, D, T / stride); spans of
latent frames are replaced by a learned mask token and a dilated-convolution predictor fills them
in; the target is the EMA encoder's layer-normalised latent; the loss is L1 on the masked frames
(Ioannides et al., 2025, "JEPA as a neural tokenizer": masking applied to the latent sequence).
Stage 2 (tokens): the encoder is frozen; a 1x1 projection to ``len(levels)`` channels, finite
scalar quantisation, a 1x1 projection back and a transposed-convolution decoder are trained to
reproduce the (normalised) log-mels. One token per latent frame: an index in [0, prod(levels)).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..targets.ema import ema_update, momentum_at
from .fsq import FSQ


class ResBlock1d(nn.Module):
    """x + conv1x1(GELU(conv_k3,dilated(GELU(GroupNorm(x))))): a residual block over time, (B, D, T) -> (B, D, T)."""

    def __init__(self, dim: int, dilation: int = 1):
        super().__init__()
        self.norm = nn.GroupNorm(1, dim)
        self.conv = nn.Conv1d(dim, dim, 3, padding=dilation, dilation=dilation)
        self.out = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(F.gelu(self.conv(F.gelu(self.norm(x)))))


def _stages(stride: int) -> int:
    n = int(round(math.log2(stride)))
    if stride < 1 or 2 ** n != stride:
        raise ValueError(f"the codec's stride must be a power of 2 (1, 2, 4, 8...), got {stride}")
    return n


class MelEncoder(nn.Module):
    """(B, n_mels, T) -> (B, D, T / stride): a conv stem, then per halving a residual block and a strided conv."""

    def __init__(self, n_mels: int, dim: int, stride: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(n_mels, dim, 3, padding=1)]
        for _ in range(_stages(stride)):
            layers += [ResBlock1d(dim), nn.Conv1d(dim, dim, 4, stride=2, padding=1)]
        layers += [ResBlock1d(dim), ResBlock1d(dim, 2), nn.GroupNorm(1, dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MelDecoder(nn.Module):
    """(B, D, T / stride) -> (B, n_mels, T): residual blocks and transposed convolutions that double the length."""

    def __init__(self, n_mels: int, dim: int, stride: int):
        super().__init__()
        layers: list[nn.Module] = [ResBlock1d(dim), ResBlock1d(dim, 2)]
        for _ in range(_stages(stride)):
            layers += [nn.ConvTranspose1d(dim, dim, 4, stride=2, padding=1), ResBlock1d(dim)]
        layers += [nn.GroupNorm(1, dim), nn.GELU(), nn.Conv1d(dim, n_mels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def span_mask(batch: int, length: int, *, ratio: float, span: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """(batch, length) bool: random spans of ``span`` frames (inclusive range) covering about ``ratio`` of each row.

    The number of spans is chosen so that independent uniformly placed spans cover ``ratio`` in expectation
    (coverage 1 - exp(-n * mean_span / length)); at least one frame per row is masked and one kept.
    """
    lo, hi = int(span[0]), int(span[1])
    if not 1 <= lo <= hi or not 0 < ratio < 1:
        raise ValueError(f"need 1 <= span[0] <= span[1] and 0 < ratio < 1, got span {span}, ratio {ratio}")
    mean = (lo + hi) / 2
    n = max(1, round(-math.log(1 - ratio) * length / mean))
    starts = torch.randint(-hi + 1, length, (batch, n), generator=generator)
    lens = torch.randint(lo, hi + 1, (batch, n), generator=generator)
    t = torch.arange(length)[None, None, :]
    mask = ((t >= starts[..., None]) & (t < (starts + lens)[..., None])).any(1)
    first = torch.randint(length, (batch,), generator=generator)
    mask[torch.arange(batch), first] = True                       # never empty
    full = mask.all(1)
    mask[full, (first[full] + length // 2) % length] = False       # never everything
    return mask


class JEPACodec(nn.Module):
    """The JEPA tokenizer-codec on log-mel frames (see the module docstring).

    Args:
        n_mels: mel channels of the input.
        dim: encoder/decoder width D.
        stride: time downsampling (a power of 2): one token per ``stride`` mel frames.
        levels: FSQ levels per code channel; log2(prod(levels)) bits per token.
        mask_ratio, span: about ``mask_ratio`` of the latent frames masked, in spans of ``span`` frames.
        momentum: (start, end) of the EMA target's linear momentum schedule.
        var_weight: weight of a hinge on each latent channel's std (>= 1 over the batch); 0 = the card's L1 alone.
    Shapes:
        jepa_loss(x (B, n_mels, T), valid (B, T)); encode(x) -> (B, T / stride) int64; decode(tokens) -> (B, n_mels, T).
    """

    def __init__(self, *, n_mels: int, dim: int = 96, stride: int = 4, levels: tuple[int, ...] = (5,) * 8,
                 mask_ratio: float = 0.5, span: tuple[int, int] = (2, 5), momentum: tuple[float, float] = (0.996, 1.0),
                 var_weight: float = 0.0):
        super().__init__()
        _stages(stride)
        span_mask(1, 8, ratio=mask_ratio, span=span, generator=torch.Generator())   # validates the masking options
        self.n_mels, self.dim, self.stride = int(n_mels), int(dim), int(stride)
        self.mask_ratio, self.span, self.momentum = float(mask_ratio), (int(span[0]), int(span[1])), tuple(momentum)
        self.var_weight = float(var_weight)
        self.encoder = MelEncoder(n_mels, dim, stride)
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)
        self.mask_token = nn.Parameter(torch.zeros(dim, 1))
        nn.init.normal_(self.mask_token, std=0.02)
        self.predictor = nn.Sequential(ResBlock1d(dim, 1), ResBlock1d(dim, 2), ResBlock1d(dim, 4), nn.Conv1d(dim, dim, 1))
        self.fsq = FSQ(levels)
        self.to_code = nn.Conv1d(dim, self.fsq.dim, 1)
        self.from_code = nn.Conv1d(self.fsq.dim, dim, 1)
        self.decoder = MelDecoder(n_mels, dim, stride)

    def jepa_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.predictor.parameters(), self.mask_token]

    def decoder_parameters(self) -> list[nn.Parameter]:
        return [*self.to_code.parameters(), *self.from_code.parameters(), *self.decoder.parameters()]

    def latent_valid(self, valid: torch.Tensor) -> torch.Tensor:
        """(B, T) frame validity -> (B, T / stride): a latent frame is real if any of its frames is."""
        return valid.reshape(valid.shape[0], -1, self.stride).any(-1)

    def jepa_loss(self, x: torch.Tensor, valid: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """L1 between the predicted and the EMA target's (layer-normalised) latents on masked real frames."""
        z = self.encoder(x)                                               # (B, D, T')
        B, D, Tl = z.shape
        mask = span_mask(B, Tl, ratio=self.mask_ratio, span=self.span, generator=generator).to(z.device)
        p = self.predictor(torch.where(mask[:, None], self.mask_token.to(z.dtype), z))
        with torch.no_grad():
            h = F.layer_norm(self.target(x).transpose(1, 2), (D,)).transpose(1, 2)
        w = (mask & self.latent_valid(valid)).to(z.dtype)[:, None]        # (B, 1, T')
        l1 = ((p - h).abs() * w).sum() / (w.sum() * D).clamp_min(1.0)
        std = z.transpose(1, 2).reshape(-1, D).std(0)
        out = {"loss": l1, "l1": l1.detach(), "latent_std": std.mean().detach()}
        if self.var_weight:
            out["loss"] = l1 + self.var_weight * F.relu(1 - std).mean()
        return out

    @torch.no_grad()
    def update_target(self, step: int, total: int) -> None:
        m = momentum_at(step, total, *self.momentum)
        ema_update(list(self.target.parameters()), list(self.encoder.parameters()), m)

    def quantized(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, d, T') FSQ values of the encoder's latents (straight-through)."""
        return self.fsq(self.to_code(self.encoder(x)).transpose(1, 2)).transpose(1, 2)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, n_mels, T) through the tokens (T a multiple of ``stride``)."""
        return self.decoder(self.from_code(self.quantized(x)))

    def recon_loss(self, x: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        """L1 + MSE between the input log-mels and their reconstruction, on the real frames."""
        r = self.reconstruct(x)
        w = valid.to(x.dtype)[:, None]
        n = (w.sum() * x.shape[1]).clamp_min(1.0)
        l1 = ((r - x).abs() * w).sum() / n
        mse = ((r - x).pow(2) * w).sum() / n
        return {"loss": l1 + mse, "l1": l1.detach(), "mse": mse.detach()}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) normalised log-mels, T a multiple of ``stride`` -> (B, T / stride) int64 tokens."""
        return self.fsq.codes_to_indices(self.quantized(x).transpose(1, 2))

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T') int64 tokens -> (B, n_mels, T' * stride) normalised log-mels."""
        codes = self.fsq.indices_to_codes(tokens).to(self.from_code.weight.dtype).transpose(1, 2)
        return self.decoder(self.from_code(codes))

    def bits_per_second(self, frame_rate: float) -> float:
        """Token bits per second of audio at ``frame_rate`` mel frames per second."""
        return self.fsq.bits * frame_rate / self.stride

"""Two or more augmented views of each series for the multi-view methods (VICReg, SimCLR, ... on series)."""
from __future__ import annotations

import torch


class SeriesViews:
    """Random crops with amplitude jitter and noise of (B, C, L) series, NaN-padded at the end.

    Args:
        n_global: views per series.
        crop: (lo, hi) fraction of each series' real length kept by a crop (a contiguous window at a
            uniformly random place); the window is moved to the start and NaN-padded to L, so the
            padding-aware backbones embed exactly the window.
        scale: std of a per-view, per-channel amplitude factor 1 + scale * N(0, 1).
        noise: std of additive Gaussian noise per step (in the standardised units the embedder feeds).
        mask: about this fraction of each crop's steps is hidden (set to NaN, which the padding-aware
            backbones treat as missing) in spans of 1/16 of the crop, at uniformly random places
            (overlaps make the hidden fraction a little smaller); TS2Vec masks time steps likewise.
    Shapes:
        __call__(x, generator) -> {"global": (n_global, B, C, L)}.
    Every random number comes from ``generator``: the views are a function of (seed, step, rank).
    """

    n_local, global_size, local_size = 0, None, None

    def __init__(self, *, n_global: int = 2, crop: tuple[float, float] = (0.5, 1.0), scale: float = 0.1,
                 noise: float = 0.05, mask: float = 0.0):
        lo, hi = float(crop[0]), float(crop[1])
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop must satisfy 0 < lo <= hi <= 1, got {tuple(crop)}")
        if n_global < 2:
            raise ValueError(f"a joint-embedding objective needs at least 2 views, got n_global={n_global}")
        if scale < 0 or noise < 0:
            raise ValueError(f"scale and noise must be >= 0, got {scale}, {noise}")
        if not 0 <= mask < 1:
            raise ValueError(f"mask is a fraction in [0, 1), got {mask}")
        self.n_global, self.crop, self.scale, self.noise = int(n_global), (lo, hi), float(scale), float(noise)
        self.mask = float(mask)

    @property
    def n_views(self) -> int:
        return self.n_global

    def view(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        B, C, L = x.shape
        steps = torch.arange(L)
        real = torch.where(torch.isfinite(x).any(1), steps, -1).amax(1) + 1            # (B,) real length
        lo, hi = self.crop
        u = torch.rand(B, 4, generator=generator)
        width = (real.to(torch.float32) * (lo + (hi - lo) * u[:, 0])).round().long().clamp(min=1)
        width = torch.minimum(width, real.clamp(min=1))
        start = ((real - width + 1).to(torch.float32) * u[:, 1]).floor().long().clamp(min=0)
        idx = (start[:, None] + steps[None]).clamp(max=L - 1)                            # (B, L)
        v = x.gather(2, idx[:, None].expand(B, C, L).to(x.device))
        inside = (steps[None] < width[:, None]).to(x.device)                             # (B, L)
        amp = 1 + self.scale * torch.randn(B, C, 1, generator=generator)
        v = v * amp.to(x) + self.noise * torch.randn(B, C, L, generator=generator).to(x)
        if self.mask > 0:
            span = ((width + 8) // 16).clamp(min=1)                                      # (B,) steps per span
            n_spans = min(16, L)
            starts = ((width - span + 1)[:, None] * torch.rand(B, n_spans, generator=generator)).floor().long()
            on = torch.rand(B, n_spans, generator=generator) < self.mask               # each span used with p = mask
            offset = steps[None, None] - starts[..., None]                               # (B, S, L)
            hit = (on[..., None] & (offset >= 0) & (offset < span[:, None, None])).any(1)
            inside = inside & ~hit.to(inside.device)
            inside[:, 0] = True                                                          # never hide a whole crop
        return torch.where(inside[:, None], v, torch.full_like(v, float("nan")))

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"global": torch.stack([self.view(x, generator) for _ in range(self.n_global)])}

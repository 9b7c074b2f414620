"""Views of images in torch, batched and seeded: random resized crops (global and local), flips,
intensity / colour jitter and Gaussian blur, and the reduced view sets of the augmentation-free
studies (shared photometry, crop and resize only, plain fixed-size crops)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def resized_crop(x: torch.Tensor, generator: torch.Generator, *, size: tuple[int, int],
                 scale: tuple[float, float], ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 flip: float = 0.0) -> torch.Tensor:
    """One random crop per image (area fraction in ``scale``, aspect w/h log-uniform in ``ratio``),
    resized bilinearly to ``size``; flipped horizontally with probability ``flip``.

    Shapes: (B, C, H, W) -> (B, C, size[0], size[1]). One affine grid for the whole batch.
    """
    b = x.shape[0]
    u = torch.rand(b, 5, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    r = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1])
    w = (area * r).sqrt().clamp(max=1.0)  # fractions of the side
    h = (area / r).sqrt().clamp(max=1.0)
    cx = (1 - w) * (2 * u[:, 2] - 1)      # centre in [-1, 1]: the crop stays inside the image
    cy = (1 - h) * (2 * u[:, 3] - 1)
    sx = torch.where(u[:, 4] < flip, -w, w)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, h, cy
    grid = F.affine_grid(theta.to(x), [b, x.shape[1], size[0], size[1]], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def plain_crop(x: torch.Tensor, generator: torch.Generator, *, size: tuple[int, int]) -> torch.Tensor:
    """One fixed-size crop per image at a uniformly drawn integer offset, no resampling and no flip.

    Shapes: (B, C, H, W) -> (B, C, size[0], size[1]); each output is an exact sub-array of its input.
    """
    b, _, hgt, wid = x.shape
    h, w = size
    if h > hgt or w > wid:
        raise ValueError(f"crop size {tuple(size)} is larger than the image {(hgt, wid)}")
    top = torch.randint(0, hgt - h + 1, (b,), generator=generator)
    left = torch.randint(0, wid - w + 1, (b,), generator=generator)
    rows = (top[:, None] + torch.arange(h))[:, None, :, None].expand(b, x.shape[1], h, wid)
    x = x.gather(2, rows.to(x.device))
    cols = (left[:, None] + torch.arange(w))[:, None, None, :].expand(b, x.shape[1], h, w)
    return x.gather(3, cols.to(x.device))


MODES = ("original", "shared", "crop_resize", "crop")


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, *, radius: int) -> torch.Tensor:
    """Blur each image of (B, C, H, W) with its own Gaussian of std ``sigma`` (B,), kernel 2 radius + 1, reflect padding."""
    b, c, hgt, wid = x.shape
    radius = max(1, min(radius, hgt - 1, wid - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-offsets.pow(2) / (2 * sigma.to(x).clamp_min(1e-3)[:, None].pow(2)))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)       # (B*C, 2r+1)
    y = x.reshape(1, b * c, hgt, wid)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, hgt, wid)


class ViewMaker:
    """Multi-crop views with photometric jitter for (B, C, H, W) images (already standardised).

    Args:
        n_global, n_local: views per image (global crops first; LeJEPA: 2 + 6, DINO: 2 + 8).
        global_size, local_size: output (H, W) of the crops; None keeps the input size for global views.
            Local views are usually smaller (the encoder interpolates its positions).
        global_scale, local_scale: crop area ranges (DINOv2: 0.32-1 and 0.05-0.32).
        flip: probability of a horizontal flip (0 for digits, whose mirror images are other shapes).
        brightness: additive shift ~ U(-b, b) in standardised units; contrast: scaling of each image
            around its mean by U(1 - c, 1 + c); saturation: blend with the grey image by U(1 - s, 1 + s)
            (3 channels only); each applied with probability ``jitter``.
        blur: probability of a Gaussian blur with std ~ U(blur_sigma) pixels.
        mode: which transforms make the views (the four settings of the crop-only DINOv2 study):
            ``original`` every transform above, drawn per view; ``shared`` the same, but each image's
            photometric draw is shared by all its views, so the views differ by their crops only;
            ``crop_resize`` random resized crops alone (no flip, no photometry); ``crop`` fixed-size
            crops at the image's own resolution (``global_size`` / ``local_size`` pixels, no
            resampling, no flip, no photometry), each view an exact sub-array of the image.
    Shapes:
        __call__(x, generator) -> {"global": (Vg, B, C, Hg, Wg), "local": (Vl, B, C, Hl, Wl) (if n_local)}.
    Every random number comes from ``generator``: the views are a function of (seed, step, rank).
    """

    def __init__(self, *, n_global: int = 2, n_local: int = 0, global_size: tuple[int, int] | None = None,
                 local_size: tuple[int, int] | None = None, global_scale: tuple[float, float] = (0.3, 1.0),
                 local_scale: tuple[float, float] = (0.05, 0.3), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 flip: float = 0.0, jitter: float = 0.8, brightness: float = 0.4, contrast: float = 0.4,
                 saturation: float = 0.0, blur: float = 0.0, blur_sigma: tuple[float, float] = (0.1, 2.0),
                 mode: str = "original"):
        if mode not in MODES:
            raise ValueError(f"views.mode must be one of {', '.join(MODES)}, got {mode!r}")
        if n_global < 1 or n_local < 0:
            raise ValueError(f"need n_global >= 1 and n_local >= 0, got {n_global}, {n_local}")
        for name, (lo, hi) in (("global_scale", global_scale), ("local_scale", local_scale)):
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"{name} must satisfy 0 < lo <= hi <= 1, got {(lo, hi)}")
        if n_local and local_size is None:
            raise ValueError("local views need a local_size, e.g. views.local_size=[12,12]")
        for p, name in ((flip, "flip"), (jitter, "jitter"), (blur, "blur")):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {p}")
        self.n_global, self.n_local = n_global, n_local
        self.global_size = tuple(global_size) if global_size else None
        self.local_size = tuple(local_size) if local_size else None
        self.global_scale, self.local_scale, self.ratio = tuple(global_scale), tuple(local_scale), tuple(ratio)
        self.flip, self.jitter, self.brightness, self.contrast, self.saturation = flip, jitter, brightness, contrast, saturation
        self.blur, self.blur_sigma = blur, tuple(blur_sigma)
        self.mode = mode

    @property
    def n_views(self) -> int:
        return self.n_global + self.n_local

    def photometric(self, x: torch.Tensor, generator: torch.Generator, u: torch.Tensor | None = None) -> torch.Tensor:
        """Brightness, contrast, saturation (colour images) and blur, each image its own draw
        (``u``, (B, 6) uniforms, reuses a draw: the ``shared`` mode passes one draw to every view)."""
        b = x.shape[0]
        u = torch.rand(b, 6, generator=generator).to(x) if u is None else u.to(x)
        on = (u[:, 0] < self.jitter).to(x)[:, None, None, None]
        shift = self.brightness * (2 * u[:, 1] - 1)[:, None, None, None]
        factor = (1 + self.contrast * (2 * u[:, 2] - 1))[:, None, None, None]
        mean = x.mean((1, 2, 3), keepdim=True)
        y = (x - mean) * factor + mean + shift
        if self.saturation and x.shape[1] == 3:
            grey = y.mean(1, keepdim=True)
            y = grey + (y - grey) * (1 + self.saturation * (2 * u[:, 3] - 1))[:, None, None, None]
        x = on * y + (1 - on) * x
        if self.blur > 0:
            sigma = self.blur_sigma[0] + (self.blur_sigma[1] - self.blur_sigma[0]) * u[:, 4]
            blurred = gaussian_blur(x, sigma, radius=math.ceil(3 * self.blur_sigma[1]))
            x = torch.where((u[:, 5] < self.blur)[:, None, None, None], blurred, x)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        size = self.global_size or tuple(x.shape[-2:])
        if self.mode == "crop":
            def view(sz, scale):
                return plain_crop(x, generator, size=sz)
        else:
            flip = self.flip if self.mode in ("original", "shared") else 0.0
            shared = torch.rand(x.shape[0], 6, generator=generator) if self.mode == "shared" else None

            def view(sz, scale):
                crop = resized_crop(x, generator, size=sz, scale=scale, ratio=self.ratio, flip=flip)
                return crop if self.mode == "crop_resize" else self.photometric(crop, generator, shared)
        views = {"global": torch.stack([view(size, self.global_scale) for _ in range(self.n_global)])}
        if self.n_local:
            views["local"] = torch.stack([view(self.local_size, self.local_scale) for _ in range(self.n_local)])
        return views

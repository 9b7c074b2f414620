"""Hand-crafted regression targets: multi-scale ratio-of-averages gradients (SAR-JEPA).

SAR amplitude carries multiplicative speckle, so a difference of neighbouring pixels mostly measures
noise. The ratio-of-averages (ROA) gradient compares the means of the two half-windows on either side
of a pixel by their log-ratio: a constant multiplicative factor cancels. Its magnitude at several
window sizes, cut into the tokenizer's patches, is a fixed feature space for a JEPA to predict, with
no teacher network to train or to collapse.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError


def roa_kernels(radius: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(4, 1, 2r+1, 2r+1) box-mean kernels of the half-windows left, right, up, down of the centre pixel.

    Each half-window is (2r+1) x (r+1) pixels and includes the centre row or column.
    """
    k = 2 * radius + 1
    w = torch.zeros(4, 1, k, k, dtype=dtype, device=device)
    w[0, 0, :, : radius + 1] = 1.0   # left: columns j-r .. j
    w[1, 0, :, radius:] = 1.0        # right: columns j .. j+r
    w[2, 0, : radius + 1, :] = 1.0   # up: rows i-r .. i
    w[3, 0, radius:, :] = 1.0        # down: rows i .. i+r
    return w / (k * (radius + 1))


def roa_gradient(x: torch.Tensor, radius: int, offset: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Ratio-of-averages gradients of non-negative images.

    Args:
        x: (B, C, H, W) non-negative amplitudes; reflect-padded by ``radius`` (so H, W > radius).
        radius: half-window radius r (windows are (2r+1) x (r+1)).
        offset: added to the input so that dark pixels keep the log finite.
    Returns:
        (G_x, G_y), each (B, C, H, W): log(mean_left / mean_right), log(mean_up / mean_down).
    From: SAR-JEPA (Li et al., ISPRS 2024), after the ROA edge detector of Touzi et al. (1988).
    """
    B, C, H, W = x.shape
    xp = F.pad((x + offset).reshape(B * C, 1, H, W), (radius,) * 4, mode="reflect")
    means = F.conv2d(xp, roa_kernels(radius, x.dtype, x.device)).reshape(B, C, 4, H, W)
    gx = torch.log(means[:, :, 0] / means[:, :, 1])
    gy = torch.log(means[:, :, 2] / means[:, :, 3])
    return gx, gy


def unit_range(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> each image and channel mapped affinely onto [0, 1] (a constant image maps to 0)."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    span = x.amax(dim=(-2, -1), keepdim=True) - lo
    return (x - lo) / span.clamp_min(torch.finfo(x.dtype).tiny)


class GradientTarget(nn.Module):
    """Target builder: multi-scale ROA gradient magnitudes of the image, one feature vector per patch.

    The image is first mapped onto [0, 1] per sample and channel, so any positive affine normalisation
    of the data (the data loader standardises with train statistics) gives the same targets. For every
    radius r the magnitude sqrt(G_x^2 + G_y^2) is computed; each magnitude map is cut into the token
    grid's patches (p_h x p_w pixels, row-major inside a patch) and the scales are concatenated.

    Args:
        image_size: (H, W) of the input; in_channels: C.
        grid: (h, w) token grid of the tokenizer; H and W must be multiples of h and w.
        radii: the scales r (the card: 5, 9, 13, 17 at 224 px with 16-px patches).
        channels: the number of image channels the recipe is made for (SAR amplitude: 1), checked
            against the data; None takes any.
        offset: added after the [0, 1] mapping, before the log-ratio.
        normalize: 'none' (the card), or 'patch': standardise each patch's feature vector (as MAE's
            normalised pixel targets).
    Shapes:
        forward(x (B, C, H, W)) -> (B, N, F) with N = h*w, F = len(radii) * C * p_h * p_w (= ``dim``).
    From: SAR-JEPA (Li et al., ISPRS 2024).
    """

    handcrafted = True   # no network: nothing to update, nothing to embed with

    def __init__(self, *, image_size: tuple[int, int], in_channels: int, grid: tuple[int, int],
                 radii: tuple[int, ...] = (5, 9, 13, 17), channels: int | None = None, offset: float = 0.01,
                 normalize: str = "none"):
        super().__init__()
        if channels is not None and int(channels) != int(in_channels):
            raise UserError(f"gradient targets of this recipe read {channels}-channel images but the data have "
                            f"{in_channels} channels: convert the images (e.g. SAR amplitude to one channel) or set "
                            f"target.channels=null")
        H, W = int(image_size[0]), int(image_size[1])
        gh, gw = int(grid[0]), int(grid[1])
        if H % gh or W % gw:
            raise UserError(f"gradient targets: image size {H}x{W} does not tile into the {gh}x{gw} token grid: set "
                            f"data.size to a multiple of the patch size")
        radii = tuple(int(r) for r in radii)
        if not radii or min(radii) < 1 or max(radii) >= min(H, W):
            raise UserError(f"gradient targets: radii {list(radii)} must be at least 1 and below the image side "
                            f"{min(H, W)}: set target.radii to smaller windows")
        if normalize not in ("none", "patch"):
            raise UserError(f"gradient targets: normalize={normalize!r} is not 'none' or 'patch'")
        self.image_size, self.in_channels, self.grid = (H, W), int(in_channels), (gh, gw)
        self.patch = (H // gh, W // gw)
        self.radii, self.offset, self.normalize = radii, float(offset), normalize
        self.dim = len(radii) * self.in_channels * self.patch[0] * self.patch[1]

    def magnitudes(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, S, C, H, W) ROA gradient magnitude at each of the S radii."""
        u = unit_range(x.float())
        out = []
        for r in self.radii:
            gx, gy = roa_gradient(u, r, self.offset)
            out.append(torch.sqrt(gx.square() + gy.square()))
        return torch.stack(out, 1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.image_size:
            raise UserError(f"gradient targets expect images (B, {self.in_channels}, {self.image_size[0]}, "
                            f"{self.image_size[1]}), got {tuple(x.shape)}: pass images of the recipe's size")
        m = self.magnitudes(x)                                          # (B, S, C, H, W)
        B, S, C = m.shape[:3]
        (gh, gw), (ph, pw) = self.grid, self.patch
        t = m.reshape(B, S, C, gh, ph, gw, pw).permute(0, 3, 5, 1, 2, 4, 6)  # (B, gh, gw, S, C, ph, pw)
        t = t.reshape(B, gh * gw, self.dim)
        if self.normalize == "patch":
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True, unbiased=False) + 1e-6).sqrt()
        return t.to(x.dtype)

    def update(self, online: nn.Module, step: int, total_steps: int) -> None:
        """Nothing to update: the targets are fixed features (None: no teacher, no momentum to log)."""
        return None

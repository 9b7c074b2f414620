"""Optical flow tools: backward warping, correlation, the unsupervised flow losses, end-point error, Farneback.

Flow convention (as OpenCV's): ``flow`` (B, 2, H, W) holds (dx, dy) in pixels of its own grid, and
``flow_ab`` carries the pixel at (y, x) of image a to (y + dy, x + dx) of image b. Warping b by
``flow_ab`` samples b there, which reconstructs a where nothing is occluded:
``warp(b, flow_ab)[y, x] = b[y + dy, x + dx] ~ a[y, x]``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError


def check_pair(a: torch.Tensor, b: torch.Tensor, what: str = "frames") -> None:
    """UserError unless ``a`` and ``b`` are (B, C, H, W) tensors of one shape."""
    if a.ndim != 4 or a.shape != b.shape:
        raise UserError(f"{what} must be two (B, C, H, W) tensors of one shape, got {tuple(a.shape)} and "
                        f"{tuple(b.shape)}: pass consecutive frames of one clip, at one size")


def check_flow(x: torch.Tensor, flow: torch.Tensor) -> None:
    """UserError unless ``flow`` is (B, 2, H, W) for images ``x`` (B, C, H, W)."""
    if x.ndim != 4 or flow.shape != (x.shape[0], 2, *x.shape[2:]):
        raise UserError(f"a flow for images of shape {tuple(x.shape)} must be (B, 2, H, W) = "
                        f"{(x.shape[0], 2, *x.shape[2:]) if x.ndim == 4 else '(B, 2, H, W)'}, got {tuple(flow.shape)}: "
                        f"give one (dx, dy) vector per pixel, at the images' resolution")


def warp(x: torch.Tensor, flow: torch.Tensor, *, padding_mode: str = "border") -> torch.Tensor:
    """Sample ``x`` (B, C, H, W) at each pixel moved by ``flow`` (B, 2, H, W) (dx, dy): bilinear,
    out-of-image samples read the nearest edge (``border``) or 0 (``zeros``). Zero flow is the identity;
    an integer flow is an exact shift."""
    check_flow(x, flow)
    B, _, H, W = x.shape
    ys = torch.arange(H, device=x.device, dtype=flow.dtype).view(1, H, 1)
    xs = torch.arange(W, device=x.device, dtype=flow.dtype).view(1, 1, W)
    px, py = xs + flow[:, 0], ys + flow[:, 1]                                   # (B, H, W) sampling positions
    # align_corners=True maps -1 and 1 to the centres of the first and last pixels
    gx = 2 * px / max(W - 1, 1) - 1
    gy = 2 * py / max(H - 1, 1) - 1
    grid = torch.stack([gx, gy], -1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def upsample_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Flow (B, 2, h, w) resized to ``size`` (H, W), its vectors scaled to the new pixel size."""
    h, w = flow.shape[-2:]
    up = F.interpolate(flow, size=size, mode="bilinear", align_corners=True)
    scale = torch.tensor([(size[1] - 1) / max(w - 1, 1), (size[0] - 1) / max(h - 1, 1)], dtype=flow.dtype,
                         device=flow.device)
    return up * scale.view(1, 2, 1, 1)


def correlation(a: torch.Tensor, b: torch.Tensor, radius: int) -> torch.Tensor:
    """Cost volume: (B, (2r + 1)^2, H, W), channel (dy + r) (2r + 1) + (dx + r) holding the channel mean of
    ``a[:, :, y, x] * b[:, :, y + dy, x + dx]`` (0 outside b), for |dx|, |dy| <= ``radius``."""
    H, W = a.shape[-2:]
    bp = F.pad(b, (radius, radius, radius, radius))
    # one product per displacement: on CPU this is faster (forward and backward) than unfolding b
    out = [(a * bp[:, :, dy:dy + H, dx:dx + W]).mean(1) for dy in range(2 * radius + 1)
           for dx in range(2 * radius + 1)]
    return torch.stack(out, 1)


def charbonnier(x: torch.Tensor, eps: float = 1e-3, alpha: float = 0.45) -> torch.Tensor:
    """The robust penalty (x^2 + eps^2)^alpha, elementwise (Sun et al., 2010)."""
    return (x.pow(2) + eps ** 2).pow(alpha)


def smoothness_loss(flow: torch.Tensor, image: torch.Tensor, edge_weight: float = 10.0) -> torch.Tensor:
    """Edge-aware first-order smoothness: mean |grad flow| weighted by exp(-edge_weight * mean_c |grad image|),
    so the flow may change where the image does (flow (B, 2, H, W), image (B, C, H, W))."""
    def grads(t):
        return t[..., :, 1:] - t[..., :, :-1], t[..., 1:, :] - t[..., :-1, :]

    fx, fy = grads(flow)
    ix, iy = grads(image)
    wx = torch.exp(-edge_weight * ix.abs().mean(1, keepdim=True))
    wy = torch.exp(-edge_weight * iy.abs().mean(1, keepdim=True))
    return ((wx * fx.abs()).mean() + (wy * fy.abs()).mean()) / 2


def cycle_loss(flow_ab: torch.Tensor, flow_ba: torch.Tensor) -> torch.Tensor:
    """Forward-backward consistency: mean |flow_ab + flow_ba sampled where flow_ab lands| (0 for a
    consistent pair: going a -> b -> a returns every pixel home)."""
    return (flow_ab + warp(flow_ba, flow_ab)).abs().mean()


def endpoint_error(flow, truth, valid=None) -> float:
    """Mean end-point error ||flow - truth||_2 over pixels (over the ``valid`` ones when given).

    Args:
        flow, truth: (B, 2, H, W) flows (torch or numpy) in pixels; valid: (B, H, W) bool or None.
    """
    flow, truth = np.asarray(_np(flow), np.float64), np.asarray(_np(truth), np.float64)
    if flow.ndim != 4 or flow.shape[1] != 2 or flow.shape != truth.shape:
        raise UserError(f"end-point error needs two (B, 2, H, W) flows of one shape, got {flow.shape} and "
                        f"{truth.shape}: resize the estimate to the ground truth's grid first")
    err = np.sqrt(((flow - truth) ** 2).sum(1))                                  # (B, H, W)
    if valid is None:
        return float(err.mean())
    valid = np.asarray(_np(valid), bool)
    if valid.shape != err.shape:
        raise UserError(f"the valid mask must be (B, H, W) = {err.shape}, got {valid.shape}")
    if not valid.any():
        raise UserError("the valid mask selects no pixel: there is nothing to measure the flow on")
    return float(err[valid].mean())


def _np(a):
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a


def farneback_flow(frames_a, frames_b, *, pyr_scale: float = 0.5, levels: int = 2, winsize: int = 7,
                   iterations: int = 5, poly_n: int = 5, poly_sigma: float = 1.1) -> np.ndarray:
    """OpenCV's Farneback dense optical flow (Farneback, 2003) from each frame of ``frames_a`` to its pair.

    Args:
        frames_a, frames_b: (B, H, W) or (B, 1, H, W) grayscale frames (any scale; each pair is scaled
            to 0-255 together).
    Returns: (B, 2, H, W) float32 flows, (dx, dy). Needs ``pip install 'polyjepa[flow]'``.
    """
    from ..errors import require

    cv2 = require("cv2", "flow", "Farneback optical-flow baselines")  # opencv-python-headless
    a, b = np.asarray(_np(frames_a), np.float32), np.asarray(_np(frames_b), np.float32)
    if a.ndim == 4 and a.shape[1] == 1:
        a, b = a[:, 0], b[:, 0] if b.ndim == 4 else b
    if a.ndim != 3 or a.shape != b.shape:
        raise UserError(f"Farneback needs two stacks of grayscale frames of one shape (B, H, W), got "
                        f"{np.shape(frames_a)} and {np.shape(frames_b)}")
    out = np.zeros((len(a), 2, *a.shape[1:]), np.float32)
    for i in range(len(a)):
        lo, hi = min(a[i].min(), b[i].min()), max(a[i].max(), b[i].max())
        s = 255.0 / (hi - lo) if hi > lo else 0.0
        ua, ub = (np.clip((f - lo) * s, 0, 255).astype(np.uint8) for f in (a[i], b[i]))
        f = cv2.calcOpticalFlowFarneback(ua, ub, None, pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0)
        out[i] = f.transpose(2, 0, 1)
    return out

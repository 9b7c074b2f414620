"""MC-JEPA: one convolutional encoder learns motion (unsupervised optical flow) and content (VICReg)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import RandomResizedCrop
from ..errors import UserError
from ..models.encoder import grid_regions
from ..models.transformer import require_positive
from ..objectives.vcr import vcr_loss
from ..objectives.vicreg import vicreg_loss
from .flow import charbonnier, check_pair, correlation, cycle_loss, smoothness_loss, upsample_flow, warp


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1))


class PyramidEncoder(nn.Module):
    """A convolutional encoder that returns a feature pyramid: a full-resolution stem, then one level per
    entry of ``widths``, each halving the resolution (two 3x3 convolutions, the first with stride 2).

    Args:
        in_channels: image channels; stem: width of the full-resolution stem; widths: channels of each level.
    Shapes: forward(x (B, C, H, W)) -> [(B, widths[0], H/2, W/2), (B, widths[1], H/4, W/4), ...] (fine to coarse).
    ``embed`` reads images (B, C, H, W) or clips (B, C, T, H, W) (pooled per frame, averaged over frames).
    """

    def __init__(self, *, in_channels: int = 1, stem: int = 16, widths: tuple[int, ...] = (32, 64)):
        super().__init__()
        require_positive(in_channels=in_channels, stem=stem, levels=len(widths), **{f"widths[{i}]": w for i, w in enumerate(widths)})
        self.in_channels, self.widths = in_channels, tuple(int(w) for w in widths)
        self.stem = _conv(in_channels, stem)
        self.levels = nn.ModuleList()
        cin = stem
        for w in self.widths:
            self.levels.append(nn.Sequential(_conv(cin, w, 2), _conv(w, w)))
            cin = w
        self.dim = self.widths[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, out = self.stem(x), []
        for level in self.levels:
            h = level(h)
            out.append(h)
        return out

    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        """Pooled features (B, F) of images (B, C, H, W) or clips (B, C, T, H, W).

        Pools: ``mean`` (coarsest level averaged over space, D = widths[-1]); ``pyramid`` (every level
        averaged, sum(widths)); ``grid:K`` (mean plus K x K regions of the coarsest level, (1 + K^2) D).
        ``layers`` > 1 is the same as ``pyramid`` restricted to the last ``layers`` levels.
        """
        if x.ndim == 5:                                                   # clips: frames into the batch
            B, C, T = x.shape[:3]
            f = self.embed(x.transpose(1, 2).reshape(B * T, C, *x.shape[3:]), pool=pool, layers=layers)
            return f.view(B, T, -1).mean(1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"the pyramid encoder reads (B, {self.in_channels}, H, W) images or (B, "
                             f"{self.in_channels}, T, H, W) clips, got {tuple(x.shape)}")
        if not 1 <= layers <= len(self.widths):
            raise ValueError(f"layers={layers}: the pyramid has {len(self.widths)} levels")
        pyr = self(x)
        if pool == "pyramid":
            return torch.cat([p.mean((2, 3)) for p in pyr], 1)
        if pool == "mean":
            return torch.cat([p.mean((2, 3)) for p in pyr[-layers:]], 1)
        if pool.startswith("grid:"):
            top = pyr[-1]
            k = grid_regions(pool)
            return torch.cat([top.mean((2, 3)), F.adaptive_avg_pool2d(top, k).flatten(1)], 1)
        raise ValueError(f"unknown pool {pool!r}: use mean, pyramid or grid:K")


class FlowEstimator(nn.Module):
    """PWC-Net-style coarse-to-fine flow (Sun et al., 2018) on two feature pyramids.

    At each level, from the coarsest: upsample the flow so far, warp b's features with it, correlate
    them with a's within ``radius``, and let a small CNN read (a's features, the cost volume, the flow)
    and output a flow residual. The last level's flow is upsampled to the image size.

    Args:
        widths: the pyramid's channels, fine to coarse; radius: correlation radius per level (fine to
            coarse; one number for all);
        hidden: the estimators' width.
    Shapes: forward(pyr_a, pyr_b, size) -> flows fine to coarse, each (B, 2, h_l, w_l) in pixels of its
    level, plus the full-resolution flow (B, 2, *size) last.
    """

    def __init__(self, *, widths: tuple[int, ...], radius: int | tuple[int, ...] = (1, 2), hidden: int = 32):
        super().__init__()
        radii = (radius,) * len(widths) if isinstance(radius, int) else tuple(radius)
        if len(radii) != len(widths):
            raise ValueError(f"radius needs one value per pyramid level ({len(widths)}), got {radius!r}")
        require_positive(hidden=hidden, **{f"radius[{i}]": r for i, r in enumerate(radii)})
        self.radii = radii
        self.estimators = nn.ModuleList(
            nn.Sequential(_conv(w + (2 * r + 1) ** 2 + 2, hidden), _conv(hidden, hidden), nn.Conv2d(hidden, 2, 3, 1, 1))
            for w, r in zip(widths, radii))
        for est in self.estimators:  # start at zero flow
            nn.init.zeros_(est[-1].weight)
            nn.init.zeros_(est[-1].bias)

    def forward(self, pyr_a: list[torch.Tensor], pyr_b: list[torch.Tensor], size: tuple[int, int]) -> list[torch.Tensor]:
        flows: list[torch.Tensor] = []
        flow = None
        for level in reversed(range(len(pyr_a))):
            a, b = pyr_a[level], pyr_b[level]
            flow = torch.zeros_like(a[:, :2]) if flow is None else upsample_flow(flow, a.shape[-2:])
            cost = F.leaky_relu(correlation(a, warp(b, flow), self.radii[level]), 0.1)
            flow = flow + self.estimators[level](torch.cat([a, cost, flow], 1))
            flows.insert(0, flow)
        return flows + [upsample_flow(flow, size)]


class MCJEPA(nn.Module):
    """MC-JEPA (Bardes, Ponce & LeCun, 2023) at small scale.

    One :class:`PyramidEncoder` serves two objectives:

    * motion: for a pair of consecutive frames (a, b), a :class:`FlowEstimator` predicts flow_ab and
      flow_ba. At every level, b's features warped by flow_ab must reconstruct a's (L2, feature-space
      prediction), and both directions are trained; the full-resolution flow also warps frame b onto
      frame a (photometric, Charbonnier), is smooth except at image edges, and agrees with the
      reverse flow (forward-backward cycle). Variance-covariance regularisation on each level's
      per-location features (VCR) keeps them from collapsing to a constant, which would reconstruct
      itself under any flow.
    * content: VICReg (25/25/1) between two augmented crops of frames of one clip (at two random
      times), through the pooled coarsest features and an MLP expander.

    Args:
        encoder: the shared pyramid encoder; radius, flow_hidden: the flow estimator's.
        motion_weight, content_weight: the two objectives' weights (0 switches one off: the ablations).
        feature_weight, photo_weight, smooth_weight, cycle_weight, vc_weight: the motion terms' weights.
        vc_var, vc_cov: VCR's variance and covariance weights within ``vc_weight``.
        expander: widths of the content expander MLP; crop_scale: area range of the content crops.
    A batch (``make_batch``) from clips x (B, C, T, H, W): ``x`` itself, ``a``, ``b`` (B, C, H, W) frames t and t + 1
    (t drawn per clip), ``view1``, ``view2`` (B, C, H, W) crops of frames at two random times.
    (Sun et al., PWC-Net, CVPR 2018; Meister et al., UnFlow, AAAI 2018; Bardes et al., VICReg, 2022.)
    """

    def __init__(self, *, encoder: PyramidEncoder, radius: int | tuple[int, ...] = (1, 2), flow_hidden: int = 32,
                 motion_weight: float = 1.0, content_weight: float = 1.0, feature_weight: float = 1.0,
                 photo_weight: float = 1.0, smooth_weight: float = 0.1, cycle_weight: float = 0.1,
                 vc_weight: float = 1.0, vc_var: float = 1.0, vc_cov: float = 0.04,
                 expander: tuple[int, ...] = (256, 256), crop_scale: tuple[float, float] = (0.5, 1.0),
                 edge_weight: float = 10.0):
        super().__init__()
        require_positive(**{f"expander[{i}]": w for i, w in enumerate(expander)})
        weights = dict(motion_weight=motion_weight, content_weight=content_weight, feature_weight=feature_weight,
                       photo_weight=photo_weight, smooth_weight=smooth_weight, cycle_weight=cycle_weight,
                       vc_weight=vc_weight, vc_var=vc_var, vc_cov=vc_cov, edge_weight=edge_weight)
        bad = {k: v for k, v in weights.items() if not v >= 0}
        if bad:
            raise ValueError(f"loss weights must be >= 0, got {bad}")
        if motion_weight == 0 and content_weight == 0:
            raise ValueError("motion_weight and content_weight are both 0: nothing would be trained")
        self.__dict__.update(weights)
        self.backbone = encoder
        self.flow = FlowEstimator(widths=encoder.widths, radius=radius, hidden=flow_hidden)
        layers, cin = [], encoder.dim
        for i, w in enumerate(expander):
            last = i == len(expander) - 1
            layers += [nn.Linear(cin, w)] + ([] if last else [nn.BatchNorm1d(w), nn.ReLU()])
            cin = w
        self.expander = nn.Sequential(*layers)
        self.crop = RandomResizedCrop(scale=tuple(crop_scale))
        self.masker = None  # batches come from make_batch

    # -- data -----------------------------------------------------------------------------------
    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        if x.ndim != 5 or x.shape[2] < 2:
            raise ValueError(f"MC-JEPA trains on clips (B, C, T >= 2, H, W), got {tuple(x.shape)}")
        B, T = x.shape[0], x.shape[2]
        rows = torch.arange(B)
        t = torch.randint(0, T - 1, (B,), generator=generator)
        t1, t2 = (torch.randint(0, T, (B,), generator=generator) for _ in range(2))
        frames = x.transpose(1, 2)                                             # (B, T, C, H, W)
        return {"x": x, "a": frames[rows, t], "b": frames[rows, t + 1],
                "view1": self.crop(frames[rows, t1], generator), "view2": self.crop(frames[rows, t2], generator)}

    # -- motion ---------------------------------------------------------------------------------
    def estimate_flow(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Full-resolution flow (B, 2, H, W) (dx, dy) from frames ``a`` to ``b`` (B, C, H, W)."""
        check_pair(a, b)
        return self.flow(self.backbone(a), self.backbone(b), a.shape[-2:])[-1]

    def _direction(self, img_a, img_b, pyr_a, pyr_b) -> tuple[dict, torch.Tensor]:
        flows = self.flow(pyr_a, pyr_b, img_a.shape[-2:])
        feat = sum(F.mse_loss(warp(fb, fl), fa) for fa, fb, fl in zip(pyr_a, pyr_b, flows)) / len(pyr_a)
        full = flows[-1]
        photo = charbonnier(warp(img_b, full) - img_a).mean()
        smooth = smoothness_loss(full, img_a, self.edge_weight)
        return {"feature": feat, "photo": photo, "smooth": smooth}, full

    def _pyramids(self, *images: torch.Tensor) -> list[list[torch.Tensor]]:
        """The backbone's pyramid of each batch of ``images``, from one pass over them all when their shapes
        agree (the encoder has no batch statistics, so this equals one pass per batch)."""
        if len({tuple(i.shape[1:]) for i in images}) > 1:
            return [self.backbone(i) for i in images]
        sizes = [len(i) for i in images]
        levels = [lvl.split(sizes) for lvl in self.backbone(torch.cat(images))]
        return [[lvl[k] for lvl in levels] for k in range(len(images))]

    def motion_loss(self, a: torch.Tensor, b: torch.Tensor, pyramids=None) -> dict[str, torch.Tensor]:
        """The motion terms of frames ``a`` -> ``b``; ``pyramids`` (of a and b) when already computed."""
        pyr_a, pyr_b = pyramids if pyramids is not None else self._pyramids(a, b)
        ab, flow_ab = self._direction(a, b, pyr_a, pyr_b)
        ba, flow_ba = self._direction(b, a, pyr_b, pyr_a)
        terms = {k: (ab[k] + ba[k]) / 2 for k in ab}
        terms["cycle"] = (cycle_loss(flow_ab, flow_ba) + cycle_loss(flow_ba, flow_ab)) / 2
        vc = [vcr_loss(p.permute(0, 2, 3, 1).reshape(-1, p.shape[1]), var_weight=self.vc_var, cov_weight=self.vc_cov)
              for p in pyr_a + pyr_b]
        terms["vc"] = sum(r["loss"] for r in vc) / len(vc)
        terms["loss"] = (self.feature_weight * terms["feature"] + self.photo_weight * terms["photo"]
                         + self.smooth_weight * terms["smooth"] + self.cycle_weight * terms["cycle"]
                         + self.vc_weight * terms["vc"])
        terms["flow_mag"] = flow_ab.detach().norm(dim=1).mean()
        return terms

    # -- content --------------------------------------------------------------------------------
    def content_loss(self, view1: torch.Tensor, view2: torch.Tensor, pyramids=None) -> dict[str, torch.Tensor]:
        """VICReg between two views' pooled coarsest features; ``pyramids`` (of the views) when already computed."""
        p1, p2 = pyramids if pyramids is not None else self._pyramids(view1, view2)
        return vicreg_loss(self.expander(p1[-1].mean((2, 3))), self.expander(p2[-1].mean((2, 3))))

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        total = 0.0
        motion, content = None, None
        if self.motion_weight > 0 and self.content_weight > 0:       # one backbone pass over all four batches
            pyr = self._pyramids(batch["a"], batch["b"], batch["view1"], batch["view2"])
            motion, content = pyr[:2], pyr[2:]
        if self.motion_weight > 0:
            m = self.motion_loss(batch["a"], batch["b"], motion)
            total = total + self.motion_weight * m["loss"]
            out.update({f"motion_{k}" if k == "loss" else k: v for k, v in m.items()})
        if self.content_weight > 0:
            c = self.content_loss(batch["view1"], batch["view2"], content)
            total = total + self.content_weight * c["loss"]
            out.update({"content_loss": c["loss"], "invariance": c["invariance"], "variance": c["variance"]})
        out["loss"] = total
        return out

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def trainable_modules(self) -> list[nn.Module]:
        mods: list[nn.Module] = [self.backbone]
        if self.motion_weight > 0:
            mods.append(self.flow)
        if self.content_weight > 0:
            mods.append(self.expander)
        return mods

    def update_target(self, step: int, total_steps: int) -> None:
        return None  # no teacher: one encoder, regularised against collapse

    def encoder(self) -> PyramidEncoder:
        return self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        return self.backbone.embed(x, pool=pool, layers=layers)


def assemble_mcjepa(cfg, input_shape: tuple[int, ...], meta: dict) -> MCJEPA:
    """Pyramid encoder (the ``encoder`` section, default ``conv_pyramid``) + flow estimator -> MCJEPA."""
    from ..config import part_kwargs
    from ..registry import build_part, part_name

    if len(input_shape) != 4:
        raise UserError(f"mcjepa trains on clips (channels, frames, height, width): the data have per-sample shape "
                        f"{tuple(input_shape)}; use data.loader=moving_digits or data.loader=clips")
    C, T, H, W = input_shape
    if T < 2 or min(H, W) < 2 ** 3:
        raise UserError(f"mcjepa needs clips of at least 2 frames and 8 x 8 pixels, got {tuple(input_shape)}")
    name = part_name("encoder", cfg)
    if name != "conv_pyramid":
        raise UserError(f"mcjepa needs encoder.name=conv_pyramid (a convolutional feature pyramid), got {name!r}")
    encoder = build_part("encoder", cfg, part_kwargs(cfg, "encoder"), in_channels=C)
    if H % 2 ** len(encoder.widths) or W % 2 ** len(encoder.widths):
        raise UserError(f"frames of {H} x {W} do not halve {len(encoder.widths)} times evenly: use a frame size "
                        f"divisible by {2 ** len(encoder.widths)} or fewer encoder.widths")
    return build_part("method", cfg, part_kwargs(cfg, "method"), encoder=encoder)

"""Image transforms with known parameters: the actions of an image world model (IWM)."""
from __future__ import annotations

import torch

from ..data.augment import RandomAffine, affine_theta, warp


class ImageActions:
    """Draw, per image, a geometric and a photometric transform, and apply it; the action is its parameters.

    An action is a vector u (B, 6) in [-1, 1]: rotation, zoom, shift x, shift y (the geometric part,
    :class:`~polyjepa.data.augment.RandomAffine`'s parameters for the same draws), brightness and
    contrast, each scaled by its range. ``u = 0`` is the identity, and a range of 0 fixes its parameter.

    The photometric part acts on standardised pixels (the data's mean is 0): ``c * x + b`` with
    contrast ``c = 1 + u5 * contrast`` and brightness ``b = u4 * brightness`` (in the data's standard
    deviations), after the warp.

    Args:
        rotate: largest rotation in degrees; scale: largest relative zoom; translate: largest shift as a
            fraction of the image's half-side; brightness: largest shift; contrast: largest relative gain.
    Shapes:
        draw(B, generator) -> (B, 6); apply(x (B, C, H, W), u (B, 6)) -> (B, C, H, W).
    Garrido et al. 2024 (IWM: the predictor is given the parameters of the transform between its views).
    """

    NAMES = ("rotate", "zoom", "shift_x", "shift_y", "brightness", "contrast")
    dim = len(NAMES)

    def __init__(self, *, rotate: float = 30.0, scale: float = 0.2, translate: float = 0.25,
                 brightness: float = 0.5, contrast: float = 0.4):
        if brightness < 0 or not 0 <= contrast < 1:
            raise ValueError(f"photometric ranges must satisfy brightness >= 0 and 0 <= contrast < 1, got "
                             f"brightness={brightness}, contrast={contrast}")
        self.affine = RandomAffine(rotate=rotate, scale=scale, translate=translate)
        self.brightness, self.contrast = float(brightness), float(contrast)

    def ranges(self) -> torch.Tensor:
        """(6,) the largest value of each parameter's change (0: that parameter is fixed)."""
        a = self.affine
        return torch.tensor([a.rotate, a.scale, a.translate, a.translate, self.brightness, self.contrast])

    def draw(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(B, 6) actions, uniform in [-1, 1] for each parameter that may change and 0 for a fixed one."""
        return (torch.rand(batch, self.dim, generator=generator) * 2 - 1) * (self.ranges() > 0)

    def params(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Physical parameters of actions ``u`` (B, 6): angle (radians), zoom, tx, ty, brightness, contrast."""
        return {**self.affine.params(u[:, :4]), "brightness": u[:, 4] * self.brightness,
                "contrast": 1 + u[:, 5] * self.contrast}

    def apply(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        p = self.params(u.to(x.dtype))
        y = warp(x, affine_theta(p["angle"], p["zoom"], p["tx"], p["ty"]))
        return p["contrast"].view(-1, 1, 1, 1) * y + p["brightness"].view(-1, 1, 1, 1)

"""Random Lie-point-symmetry views of stored PDE trajectories (the recipe's ``symmetries`` section)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError
from .symmetries import GALILEAN, Field, amplitude, galilean_boost, scale, space_shift


@dataclass
class LieAugment:
    """Draw one symmetry per kind and apply them in turn: a time window of ``crop`` rows at a random start
    (time translation), a uniform space shift over the whole period, a Galilean boost ``g ~ U(-galilean,
    galilean)``, a scaling ``g ~ U(-scale, scale)`` and, for the heat equation, an amplitude factor
    ``e^g, g ~ U(-amplitude, amplitude)``. A strength of 0 leaves that symmetry out.
    (Mialon et al., NeurIPS 2023: views are solutions of the same equation with the same coefficients.)"""

    crop: int = 16
    space_shift: bool = True
    galilean: float = 0.2
    scale: float = 0.1
    amplitude: float = 0.0

    def __post_init__(self):
        if not (isinstance(self.crop, int) and self.crop >= 5):
            raise UserError(f"symmetries.crop={self.crop!r} must be a whole number of time rows >= 5")
        for key in ("galilean", "scale", "amplitude"):
            if not getattr(self, key) >= 0:
                raise UserError(f"symmetries.{key}={getattr(self, key)!r} must be >= 0 (0 leaves it out)")

    def check(self, equation: str, steps: int) -> None:
        """Refuse a symmetry the equation lacks, or a window longer than the trajectories."""
        if self.crop > steps:
            raise UserError(f"symmetries.crop={self.crop} is longer than the trajectories ({steps} steps): lower it "
                            f"or raise pde.steps")
        if self.galilean > 0 and equation not in GALILEAN:
            raise UserError(f"the {equation} equation has no periodic Galilean boost: set symmetries.galilean=0")
        if self.amplitude > 0 and equation != "heat":
            raise UserError(f"amplitude scaling is a symmetry of the heat equation only: set symmetries.amplitude=0 "
                            f"for {equation}")

    def __call__(self, field: Field, equation: str, generator: torch.Generator) -> Field:
        b, steps = field.u.shape[:2]
        self.check(equation, steps)

        def uniform(low: float, high: float) -> torch.Tensor:
            r = torch.rand(b, generator=generator, dtype=torch.float64)
            return (low + (high - low) * r).to(field.u.dtype)

        start = torch.randint(0, steps - self.crop + 1, (b,), generator=generator)
        field = field.crop(start, self.crop)
        if self.space_shift:
            field = space_shift(field, uniform(0.0, 1.0) * field.length)
        if self.galilean > 0:
            field = galilean_boost(field, uniform(-self.galilean, self.galilean), equation)
        if self.scale > 0:
            field = scale(field, uniform(-self.scale, self.scale), equation)
        if self.amplitude > 0:
            field = amplitude(field, uniform(-self.amplitude, self.amplitude), equation)
        return field

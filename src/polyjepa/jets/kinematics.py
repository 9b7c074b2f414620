"""Jet kinematics on padded particle arrays: (pT, eta, phi, E) per particle, a mask for real particles.

A batch of jets is ``particles`` (B, P, 4) with columns pT, eta, phi, E and ``mask`` (B, P) bool (True =
a real particle). Padded rows are all zero. Functions keep the input's dtype and device.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError

FIELDS = ("pt", "eta", "phi", "energy")
FEATURES = ("log_pt", "log_e", "log_pt_rel", "log_e_rel", "deta", "dphi", "dr")
EPS = 1e-8


def wrap_phi(dphi: torch.Tensor) -> torch.Tensor:
    """Angle differences wrapped into [-pi, pi)."""
    return torch.remainder(dphi + torch.pi, 2 * torch.pi) - torch.pi


def to_cartesian(p: torch.Tensor) -> torch.Tensor:
    """(..., 4) pT, eta, phi, E -> (..., 4) px, py, pz, E."""
    pt, eta, phi, e = p.unbind(-1)
    return torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), e], -1)


def from_cartesian(v: torch.Tensor) -> torch.Tensor:
    """(..., 4) px, py, pz, E -> (..., 4) pT, eta, phi, E (eta of a zero vector is 0)."""
    px, py, pz, e = v.unbind(-1)
    pt = torch.hypot(px, py)
    eta = torch.asinh(pz / pt.clamp_min(EPS))
    return torch.stack([pt, eta, torch.atan2(py, px), e], -1)


def rapidity(v: torch.Tensor) -> torch.Tensor:
    """(..., 4) px, py, pz, E -> (...) rapidity y = 1/2 log((E + pz) / (E - pz)), clamped for massless
    particles along the beam."""
    pz, e = v[..., 2], v[..., 3]
    return 0.5 * torch.log((e + pz).clamp_min(EPS) / (e - pz).clamp_min(EPS))


def jet_vector(particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, P, 4) pT, eta, phi, E + (B, P) mask -> (B, 4) px, py, pz, E of the sum of the real particles."""
    return (to_cartesian(particles) * mask.unsqueeze(-1).to(particles.dtype)).sum(1)


def invariant_mass(v: torch.Tensor) -> torch.Tensor:
    """(..., 4) px, py, pz, E -> (...) sqrt(max(E^2 - |p|^2, 0))."""
    m2 = v[..., 3] ** 2 - (v[..., :3] ** 2).sum(-1)
    return m2.clamp_min(0).sqrt()


def jet_mass(particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, P, 4), (B, P) -> (B,) invariant mass of the jet (sum of its particles)."""
    return invariant_mass(jet_vector(particles, mask))


def particle_features(particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-particle features relative to the jet axis (the ParT set, see :data:`FEATURES`).

    log pT, log E, log(pT / pT_jet), log(E / E_jet), eta - eta_jet, wrapped phi - phi_jet, Delta R.
    The jet axis is the four-vector sum of the real particles. Padded rows come out as zeros.
    Shapes: (B, P, 4), (B, P) -> (B, P, 7).
    """
    jet = from_cartesian(jet_vector(particles, mask))                       # (B, 4) pT, eta, phi, E
    pt, eta, phi, e = particles.unbind(-1)
    deta = eta - jet[:, 1:2]
    dphi = wrap_phi(phi - jet[:, 2:3])
    logpt, loge = torch.log(pt.clamp_min(EPS)), torch.log(e.clamp_min(EPS))
    feats = torch.stack([logpt, loge, logpt - torch.log(jet[:, 0:1].clamp_min(EPS)),
                         loge - torch.log(jet[:, 3:4].clamp_min(EPS)), deta, dphi, torch.hypot(deta, dphi)], -1)
    return feats * mask.unsqueeze(-1).to(feats.dtype)


def particle_mask(particles: torch.Tensor) -> torch.Tensor:
    """(B, P, 4) -> (B, P) bool: a particle is real when its pT is positive (padding rows are zero)."""
    return particles[..., 0] > 0


def check_particles(particles, mask=None, *, what: str = "jets") -> tuple[np.ndarray, np.ndarray]:
    """Validate padded jets at the boundary: (n, P, 4) numeric, finite, each jet with at least one
    particle, pT and E of real particles positive. Returns (particles float32, mask bool).

    A mask, when not given, is pT > 0. One :class:`~polyjepa.errors.UserError` line per problem.
    """
    a = np.asarray(particles)
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
        raise UserError(f"{what} have dtype {a.dtype}: particles must be a numeric array (n, particles, 4)")
    if a.ndim != 3 or a.shape[-1] != 4:
        raise UserError(f"{what} have shape {a.shape}: particles must be (n jets, particles, 4) with the 4 features "
                        f"pT, eta, phi, E (padded rows zero)")
    if len(a) == 0 or a.shape[1] == 0:
        raise UserError(f"{what} are empty (shape {a.shape}): give at least one jet with at least one particle")
    m = a[..., 0] > 0 if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != a.shape[:2]:
        raise UserError(f"{what}: mask has shape {m.shape}, particles {a.shape}: the mask must be (n jets, particles)")
    bad = ~np.isfinite(a[m]).all(-1) if m.any() else np.zeros(0, bool)
    if bad.any() or not np.isfinite(a).all():
        jets = np.unique(np.nonzero(~np.isfinite(a).all(-1))[0])
        raise UserError(f"{what}: {len(jets)} jets have NaN or inf momenta (first: jet {int(jets[0])}): "
                        f"remove or repair them first")
    empty = np.nonzero(~m.any(1))[0]
    if len(empty):
        raise UserError(f"{what}: {len(empty)} jets have no particles (first: jet {int(empty[0])}): "
                        f"drop empty jets before training")
    if (a[..., 0][m] <= 0).any() or (a[..., 3][m] <= 0).any():
        raise UserError(f"{what}: some real particles have pT <= 0 or E <= 0: columns must be pT, eta, phi, E "
                        f"(GeV) with padded rows set to zero")
    out = np.where(m[..., None], a, 0).astype(np.float32)
    return out, m

"""Exclusive kT reclustering of many jets at once, and N-subjettiness on its axes."""
from __future__ import annotations

from typing import NamedTuple

import torch

from .kinematics import from_cartesian, rapidity, to_cartesian, wrap_phi


class Subjets(NamedTuple):
    """labels (B, P) int64: each real particle's subjet in [0, S), -1 for padding; subjets ordered by
    decreasing pT. vectors (B, S, 4) px, py, pz, E of each subjet (zero where absent). valid (B, S) bool."""
    labels: torch.Tensor
    vectors: torch.Tensor
    valid: torch.Tensor


def _slot_coords(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., 4) px, py, pz, E -> pT^2, rapidity, phi."""
    return v[..., 0] ** 2 + v[..., 1] ** 2, rapidity(v), torch.atan2(v[..., 1], v[..., 0])


def _kt_distance(pt2_a, y_a, phi_a, pt2_b, y_b, phi_b) -> torch.Tensor:
    """min(pT_a^2, pT_b^2) * ((y_a - y_b)^2 + dphi^2), broadcast."""
    dphi = (phi_a - phi_b).abs()
    dphi = torch.minimum(dphi, 2 * torch.pi - dphi)                          # both phi in [-pi, pi]
    return torch.minimum(pt2_a, pt2_b) * ((y_a - y_b) ** 2 + dphi ** 2)


@torch.no_grad()
def exclusive_kt(particles: torch.Tensor, mask: torch.Tensor, n_subjets: int) -> Subjets:
    """Recluster each jet's particles with the kT algorithm until ``n_subjets`` remain (fewer when a jet
    has fewer particles).

    Pairwise distance d_ij = min(pT_i^2, pT_j^2) * ((y_i - y_j)^2 + dphi_ij^2), E-scheme recombination
    (four-vectors add), no beam distance: the same subjets as FastJet's ``exclusive_jets(n)`` of a kT
    clustering whose R exceeds every pairwise Delta R in the jet. One merge per jet and step, all jets
    in a step together (steps = the largest particle count minus ``n_subjets``).
    Shapes: particles (B, P, 4) pT, eta, phi, E; mask (B, P) -> :class:`Subjets` with S = n_subjets.
    """
    if n_subjets < 1:
        raise ValueError(f"n_subjets must be >= 1, got {n_subjets}")
    B, P, _ = particles.shape
    v = to_cartesian(particles.double()) * mask.unsqueeze(-1)                 # (B, P, 4) cluster slots
    active = mask.clone()
    owner = torch.where(mask, torch.arange(P, device=mask.device).expand(B, P), -1)  # slot holding each particle
    pt2, y, phi = _slot_coords(v)
    d = _kt_distance(pt2[:, :, None], y[:, :, None], phi[:, :, None], pt2[:, None], y[:, None], phi[:, None])
    ok = active[:, :, None] & active[:, None, :] & ~torch.eye(P, dtype=torch.bool, device=mask.device)
    d = torch.where(ok, d, torch.inf)                                        # (B, P, P), updated per merge
    rows = torch.arange(B, device=mask.device)
    while True:
        todo = active.sum(1) > n_subjets
        if not todo.any():
            break
        flat = d.flatten(1).argmin(1)
        i, j = torch.minimum(flat // P, flat % P), torch.maximum(flat // P, flat % P)  # merge j into i
        b, i, j = rows[todo], i[todo], j[todo]
        v[b, i] += v[b, j]
        v[b, j] = 0
        active[b, j] = False
        jsel = torch.full((B,), -2, device=mask.device).index_put((b,), j)   # -2 matches no particle
        isel = torch.full((B,), -1, device=mask.device).index_put((b,), i)
        owner = torch.where(owner == jsel[:, None], isel[:, None], owner)     # j's particles now belong to i
        # only the merged slot's distances change; the absorbed slot leaves the search
        pi, yi, phii = _slot_coords(v[b, i])
        pt2[b, i], y[b, i], phi[b, i] = pi, yi, phii
        row = _kt_distance(pi[:, None], yi[:, None], phii[:, None], pt2[b], y[b], phi[b])   # (b, P)
        row = torch.where(active[b], row, torch.inf)
        row[torch.arange(len(b), device=mask.device), i] = torch.inf
        d[b, i], d[b, :, i] = row, row
        d[b, j], d[b, :, j] = torch.inf, torch.inf
    # rank the remaining slots by pT (decreasing) and relabel particles by that rank
    pt = torch.where(active, torch.hypot(v[..., 0], v[..., 1]), -1.0)
    order = pt.argsort(1, descending=True)                                   # (B, P) slot of rank r
    rank = order.argsort(1)                                                  # (B, P) rank of slot
    labels = torch.where(mask, rank.gather(1, owner.clamp_min(0)), -1)
    S = n_subjets
    if P < S:  # fewer slots than subjets asked: pad the slot axis
        order = torch.cat([order, torch.arange(P, S, device=mask.device).expand(B, S - P)], 1)  # the empty slots
        pad = torch.zeros(B, S - P, dtype=torch.bool, device=mask.device)
        active, v = torch.cat([active, pad], 1), torch.cat([v, v.new_zeros(B, S - P, 4)], 1)
    valid = active.gather(1, order[:, :S])
    vectors = v.gather(1, order[:, :S, None].expand(B, S, 4)) * valid.unsqueeze(-1)
    return Subjets(labels, vectors.to(particles.dtype), valid)


def subjet_kinematics(subjets: Subjets) -> torch.Tensor:
    """(B, S, 4) pT, eta, phi, E of each subjet (zero where absent)."""
    return from_cartesian(subjets.vectors) * subjets.valid.unsqueeze(-1)


@torch.no_grad()
def nsubjettiness(particles: torch.Tensor, mask: torch.Tensor, n: int, *, r0: float = 0.8,
                  beta: float = 1.0) -> torch.Tensor:
    """tau_N = sum_k pT_k min_a dR(k, a)^beta / (sum_k pT_k r0^beta), axes = the jet's exclusive kT subjets
    (Thaler & Van Tilburg, 2011), Delta R in rapidity and azimuth. A jet with at most N particles has tau_N = 0.

    Shapes: (B, P, 4), (B, P) -> (B,).
    """
    sub = exclusive_kt(particles, mask, n)
    v = to_cartesian(particles.double())
    y, phi = rapidity(v), particles[..., 2].double()
    ay, aphi = rapidity(sub.vectors.double()), torch.atan2(sub.vectors[..., 1].double(), sub.vectors[..., 0].double())
    dr2 = (y[:, :, None] - ay[:, None, :]) ** 2 + wrap_phi(phi[:, :, None] - aphi[:, None, :]) ** 2  # (B, P, n)
    dr2 = torch.where(sub.valid[:, None, :], dr2, torch.inf)
    dmin = dr2.amin(2).sqrt() ** beta
    pt = particles[..., 0].double() * mask
    tau = (pt * torch.where(mask, dmin, 0.0)).sum(1) / (pt.sum(1) * r0 ** beta).clamp_min(1e-12)
    return tau.to(particles.dtype)


def substructure_features(particles: torch.Tensor, mask: torch.Tensor, *, r0: float = 0.8) -> torch.Tensor:
    """The classical top-tagging inputs: (B, 3) jet mass, tau21 = tau2/tau1, tau32 = tau3/tau2 (a ratio with
    a zero denominator is 0)."""
    from .kinematics import jet_mass

    t1, t2, t3 = (nsubjettiness(particles, mask, k, r0=r0) for k in (1, 2, 3))
    ratio = lambda a, b: torch.where(b > 0, a / b.clamp_min(1e-12), torch.zeros_like(a))  # noqa: E731
    return torch.stack([jet_mass(particles, mask), ratio(t2, t1), ratio(t3, t2)], -1)

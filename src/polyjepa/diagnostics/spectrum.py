"""The embedding spectrum (covariance eigenvalues), its summaries, and a collapse alarm."""
from __future__ import annotations

import torch


def covariance_spectrum(embeddings: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the (N - 1)-normalised covariance of (N, D) embeddings, descending, float64 (D,)."""
    z = torch.as_tensor(embeddings).double()
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"covariance_spectrum needs (N >= 2, D) embeddings, got {tuple(z.shape)}")
    zc = z - z.mean(0)
    if z.shape[0] < z.shape[1]:  # the non-zero eigenvalues from the smaller Gram matrix
        ev = torch.linalg.eigvalsh(zc @ zc.T / (z.shape[0] - 1))
        ev = torch.cat([ev, ev.new_zeros(z.shape[1] - z.shape[0])])
    else:
        ev = torch.linalg.eigvalsh(zc.T @ zc / (z.shape[0] - 1))
    return ev.clamp_min(0).flip(0)


def spectrum_summary(eigenvalues: torch.Tensor, *, rel_floor: float = 1e-3) -> dict[str, float]:
    """{"n_above": eigenvalues above rel_floor * the largest, "top_share": the largest's share of the total}."""
    ev = torch.as_tensor(eigenvalues).double()
    top = float(ev.max()) if len(ev) else 0.0
    total = float(ev.sum())
    return {"n_above": int((ev > rel_floor * top).sum()) if top > 0 else 0,
            "top_share": top / total if total > 0 else 1.0}


def rankme_floor(initial: float | None, min_rankme: float = 2.0) -> float:
    """The RankMe below which the collapse alarm fires: ``min_rankme``, or half the untrained encoder's own RankMe
    when that already starts below ``min_rankme`` (some encoders' pooled features have one dominant direction
    from the start; the alarm is for a fall during training, not for where training began)."""
    if initial is None or initial >= min_rankme:
        return min_rankme
    return 0.5 * initial


def collapse_alarm(rankme: float, embedding_std: float, *, min_rankme: float = 2.0,
                   min_std: float = 1e-3) -> str | None:
    """A plain sentence when embeddings have collapsed (RankMe below ``min_rankme`` or the mean per-feature
    std below ``min_std``), else None."""
    reasons = []
    if rankme < min_rankme:
        reasons.append(f"RankMe {rankme:.2f} < {min_rankme:g} (the embeddings span about {rankme:.1f} dimensions)")
    if embedding_std < min_std:
        reasons.append(f"embedding std {embedding_std:.2e} < {min_std:g} (all samples map to nearly the same point)")
    if not reasons:
        return None
    return "COLLAPSE: " + "; ".join(reasons)

"""J-JEPA parts: particle tokens, a permutation-invariant set transformer, subjet masks, the subjet predictor."""
from __future__ import annotations

import torch
from torch import nn

from ..models.transformer import Block, init_weights, require_positive
from .cluster import exclusive_kt
from .kinematics import from_cartesian, particle_features, particle_mask, wrap_phi

POOLS = ("mean", "max", "mean+max")


def key_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, L) bool -> (B, 1, 1, L) attention mask: every query may attend to the valid keys only."""
    return valid[:, None, None, :]


def masked_pool(h: torch.Tensor, valid: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, L, D) tokens with (B, L) validity -> (B, F) by ``pool``: mean, max, mean+max (F = 2D)."""
    w = valid.unsqueeze(-1).to(h.dtype)
    mean = (h * w).sum(1) / w.sum(1).clamp_min(1)
    if pool == "mean":
        return mean
    mx = h.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(1)
    mx = torch.where(valid.any(1, keepdim=True), mx, torch.zeros_like(mx))
    if pool == "max":
        return mx
    if pool == "mean+max":
        return torch.cat([mean, mx], 1)
    raise ValueError(f"unknown pool {pool!r} for jets: use one of mean, max, mean+max")


class ParticleTokenizer(nn.Module):
    """(B, P, 4) pT, eta, phi, E -> (B, P, D) tokens: an MLP on the particle's features relative to the jet
    axis (log pT, log E, their ratios to the jet's, d-eta, d-phi, dR). No position embedding: a particle's
    place in the jet is in its features, and the tokens do not depend on the order of the particles."""

    n_features = 7

    def __init__(self, *, dim: int, hidden: int = 128):
        super().__init__()
        require_positive(dim=dim, hidden=hidden)
        self.net = nn.Sequential(nn.Linear(self.n_features, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, particles: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = particle_mask(particles) if mask is None else mask
        return self.net(particle_features(particles, mask))


class SetEncoder(nn.Module):
    """Pre-norm transformer blocks over a padded set with a key mask (no positions), then LayerNorm.

    Shapes: forward(tokens (B, L, D), valid (B, L), layers) -> (B, L, D); padded rows come out as zeros.
    Permuting the valid tokens permutes the output the same way.
    """

    def __init__(self, *, dim: int = 64, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        require_positive(dim=dim, depth=depth, heads=heads)
        self.dim, self.depth, self.heads = dim, depth, heads
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        init_weights(self, self.blocks)

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor, layers: int = 1) -> torch.Tensor:
        am, x, outs = key_mask(valid), tokens, []
        for i, block in enumerate(self.blocks):
            x = block(x, am)
            if i >= self.depth - layers:
                outs.append(self.norm(x))
        out = outs[0] if layers == 1 else torch.stack(outs).mean(0)
        return out * valid.unsqueeze(-1).to(out.dtype)


def compact(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P) bool -> (idx (B, L), valid (B, L)) with L the largest count: the True positions first, in order."""
    order = (~valid).to(torch.int8).argsort(dim=1, stable=True)
    L = max(int(valid.sum(1).max()), 1)
    idx = order[:, :L]
    return idx, valid.gather(1, idx)


class JetBackbone(nn.Module):
    """Particle tokenizer + set encoder: the network J-JEPA trains and a user keeps.

    Shapes:
        forward(particles (B, P, 4), layers) -> (B, P, D) tokens of every particle (padding zero).
        context(particles, keep (B, P) bool) -> (z (B, L, D), valid (B, L)): only the kept particles are
            encoded (they see only each other), packed to the largest kept count L.
        embed(particles, pool) -> (B, F) pooled over the real particles.
    """

    def __init__(self, tokenizer: ParticleTokenizer, encoder: SetEncoder):
        super().__init__()
        self.tokenizer, self.encoder = tokenizer, encoder

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def forward(self, particles: torch.Tensor, layers: int = 1) -> torch.Tensor:
        mask = particle_mask(particles)
        return self.encoder(self.tokenizer(particles, mask), mask, layers=layers)

    def context(self, particles: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # features are relative to the whole jet's axis (what the jet is), tokens only of the kept particles
        tokens = self.tokenizer(particles, particle_mask(particles))           # (B, P, D)
        idx, valid = compact(keep)
        tokens = tokens.gather(1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        return self.encoder(tokens, valid), valid

    def embed(self, particles: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        return masked_pool(self(particles, layers=layers), particle_mask(particles), pool)


class SubjetMasker:
    """Masks whole subjets: recluster each jet into ``n_subjets`` exclusive-kT subjets and draw ``n_targets``
    of them as targets; the context is every particle of the other subjets.

    A jet with S subjets (S <= n_subjets: fewer when it has fewer particles) gets min(n_targets, S - 1)
    targets, so the context is never empty; a one-particle jet gets none.
    ``__call__(particles (B, P, 4), generator)`` -> dict: labels (B, P) subjet of each particle (-1 padding),
    targets (B, M) subjet ids, target_valid (B, M), keep (B, P) the context particles, target_axes (B, M, 3)
    each target subjet's (d-eta, d-phi, log pT share) relative to the jet.
    """

    def __init__(self, *, n_subjets: int = 8, n_targets: int = 2):
        require_positive(n_subjets=n_subjets, n_targets=n_targets)
        if n_targets >= n_subjets:
            raise ValueError(f"n_targets ({n_targets}) must be below n_subjets ({n_subjets}): the rest is the context")
        self.n_subjets, self.n_targets = n_subjets, n_targets

    def __call__(self, particles: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        mask = particle_mask(particles)
        sub = exclusive_kt(particles, mask, self.n_subjets)
        B, S, M = len(particles), self.n_subjets, self.n_targets
        count = sub.valid.sum(1)                                               # (B,)
        score = torch.rand(B, S, generator=generator, device=particles.device)
        score = torch.where(sub.valid, score, 2.0)                             # absent subjets sort last
        targets = score.argsort(1)[:, :M]                                      # (B, M)
        target_valid = torch.arange(M, device=particles.device)[None] < (count - 1).clamp_min(0)[:, None]
        is_target = (sub.labels[:, :, None] == targets[:, None, :]) & target_valid[:, None, :]
        keep = mask & ~is_target.any(2)
        jet = from_cartesian((sub.vectors * sub.valid.unsqueeze(-1)).sum(1))   # (B, 4)
        kin = from_cartesian(sub.vectors.gather(1, targets.unsqueeze(-1).expand(B, M, 4)))
        axes = torch.stack([kin[..., 1] - jet[:, 1:2], wrap_phi(kin[..., 2] - jet[:, 2:3]),
                            torch.log(kin[..., 0].clamp_min(1e-8) / jet[:, 0:1].clamp_min(1e-8))], -1)
        axes = axes * target_valid.unsqueeze(-1)
        return {"labels": sub.labels, "targets": targets, "target_valid": target_valid, "keep": keep,
                "target_axes": axes.to(particles.dtype)}


class SubjetPredictor(nn.Module):
    """Predicts the target subjets' embeddings from the context tokens (J-JEPA's predictor).

    Each target is a query: a learned mask token plus an MLP of the subjet's axis relative to the jet
    ("physical positional encoding": d-eta, d-phi, and the log pT share with ``use_pt``). Context tokens
    (projected to the predictor width) and queries go through a narrow transformer together; the queries'
    outputs are projected back to the encoder width.
    Shapes: forward(z (B, L, Din), valid (B, L), axes (B, M, 3), target_valid (B, M)) -> (B, M, Din).
    """

    def __init__(self, *, in_dim: int, dim: int = 64, depth: int = 2, heads: int = 4, use_pt: bool = False):
        super().__init__()
        require_positive(in_dim=in_dim, dim=dim, depth=depth, heads=heads)
        self.use_pt = use_pt
        self.proj_in = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Sequential(nn.Linear(3, dim), nn.GELU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj_out = nn.Linear(dim, in_dim)
        init_weights(self, self.blocks)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, z: torch.Tensor, valid: torch.Tensor, axes: torch.Tensor,
                target_valid: torch.Tensor) -> torch.Tensor:
        if not self.use_pt:
            axes = torch.cat([axes[..., :2], torch.zeros_like(axes[..., 2:])], -1)
        q = self.mask_token.expand(len(z), axes.shape[1], -1) + self.pos(axes)   # (B, M, d)
        x = torch.cat([self.proj_in(z), q], 1)
        am = key_mask(torch.cat([valid, target_valid], 1))
        for block in self.blocks:
            x = block(x, am)
        return self.proj_out(self.norm(x[:, z.shape[1]:]))

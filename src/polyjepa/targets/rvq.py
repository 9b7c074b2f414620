"""Residual vector quantisation fitted by k-means, and a target builder that turns input patches into its token ids.

A residual vector quantiser (RVQ) with C codebooks of K codes maps a vector x to ids (i_1, ..., i_C):
i_1 is the nearest code of codebook 1 to x, i_2 the nearest code of codebook 2 to the residual
x - e_1[i_1], and so on; the reconstruction is the sum of the chosen codes. Here every codebook is
fitted once by k-means on the residuals the stages before it leave (no gradient, frozen afterwards),
the Mel-RVQ targets of MuQ (Zhu et al., 2025) without their reconstruction-trained projections.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import UserError


def nearest_code(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """(n, P) vectors, (K, P) codes -> (n,) int64 index of the nearest code in squared Euclidean distance."""
    d = x.pow(2).sum(1, keepdim=True) - 2 * x @ codes.T + codes.pow(2).sum(1)[None]  # (n, K)
    return d.argmin(1)


def kmeans(x: torch.Tensor, k: int, *, iters: int = 25, generator: torch.Generator | None = None) -> torch.Tensor:
    """(k, P) centroids of (n, P) points by k-means++ seeding and Lloyd iterations, seeded by ``generator``.

    A cluster left empty takes the point farthest from its centroid, so all k codes stay in use.
    (Lloyd 1982; Arthur & Vassilvitskii 2007 for the seeding.)
    """
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means needs at least k={k} points, got {n}")
    x = x.double()
    first = int(torch.randint(n, (), generator=generator))
    centres = [x[first]]
    d2 = (x - x[first]).pow(2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than codes: repeat one (its cluster stays empty)
            nxt = int(torch.randint(n, (), generator=generator))
        else:
            nxt = int(torch.multinomial(d2 / total, 1, generator=generator))
        centres.append(x[nxt])
        d2 = torch.minimum(d2, (x - x[nxt]).pow(2).sum(1))
    c = torch.stack(centres)
    for _ in range(iters):
        assign = nearest_code(x, c)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None].double(), c)
        empty = (counts == 0).nonzero().flatten()
        if len(empty):
            far = (x - new[assign]).pow(2).sum(1).topk(len(empty)).indices
            new[empty] = x[far]
        if torch.equal(new, c):
            break
        c = new
    return c


class ResidualVQ(nn.Module):
    """A frozen residual vector quantiser: C codebooks of K codes of width P, fitted by k-means.

    Args:
        dim: P, the width of the vectors.
        n_codebooks: C.
        n_codes: K, codes per codebook.
    Shapes:
        quantize(x (..., P)) -> ids (..., C) int64; dequantize(ids (..., C), first=None) -> (..., P).
    """

    def __init__(self, *, dim: int, n_codebooks: int = 4, n_codes: int = 64):
        super().__init__()
        if n_codebooks < 1 or n_codes < 2 or dim < 1:
            raise ValueError(f"need n_codebooks >= 1, n_codes >= 2 and dim >= 1, got {n_codebooks}, {n_codes}, {dim}")
        self.dim, self.n_codebooks, self.n_codes = int(dim), int(n_codebooks), int(n_codes)
        self.register_buffer("codebooks", torch.zeros(n_codebooks, n_codes, dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, *, seed: int = 0, iters: int = 25) -> "ResidualVQ":
        """Fit every codebook in turn by k-means on the residuals of (n, P) vectors ``x``; returns self."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"fit takes (n, {self.dim}) vectors, got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise UserError("the vectors to fit the quantiser on contain NaN or inf: check the input data")
        g = torch.Generator().manual_seed(int(seed))
        r = x.detach().double().cpu()
        books = []
        for _ in range(self.n_codebooks):
            c = kmeans(r, self.n_codes, iters=iters, generator=g)
            r = r - c[nearest_code(r, c)]
            books.append(c)
        self.codebooks.copy_(torch.stack(books).to(self.codebooks))
        self.fitted.fill_(True)
        return self

    def _check(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError("the quantiser is not fitted yet: call fit(vectors) first")

    @torch.no_grad()
    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """(..., P) -> (..., C) int64 ids, stage by stage on the residual."""
        self._check()
        shape = x.shape[:-1]
        r = x.reshape(-1, self.dim).to(self.codebooks.dtype)
        ids = []
        for book in self.codebooks:
            i = nearest_code(r, book)
            r = r - book[i]
            ids.append(i)
        return torch.stack(ids, -1).reshape(*shape, self.n_codebooks)

    @torch.no_grad()
    def dequantize(self, ids: torch.Tensor, first: int | None = None) -> torch.Tensor:
        """(..., C) ids -> (..., P): the sum of the chosen codes of the ``first`` codebooks (default all)."""
        self._check()
        c = self.n_codebooks if first is None else int(first)
        out = torch.zeros(*ids.shape[:-1], self.dim, dtype=self.codebooks.dtype, device=ids.device)
        for j in range(c):
            out = out + self.codebooks[j][ids[..., j]]
        return out

    @torch.no_grad()
    def residual_errors(self, x: torch.Tensor) -> list[float]:
        """Mean squared error of (n, P) vectors reconstructed from 0, 1, ..., C codebooks (C + 1 values)."""
        ids = self.quantize(x)
        x = x.to(self.codebooks.dtype)
        return [float(x.pow(2).sum(-1).mean())] + [float((x - self.dequantize(ids, k)).pow(2).sum(-1).mean())
                                                   for k in range(1, self.n_codebooks + 1)]

    @torch.no_grad()
    def perplexity(self, ids: torch.Tensor) -> torch.Tensor:
        """(C,) exp(entropy) of each codebook's code usage over ids (..., C); K when every code is equally used."""
        flat = ids.reshape(-1, self.n_codebooks)
        p = torch.stack([torch.bincount(flat[:, j], minlength=self.n_codes) for j in range(self.n_codebooks)]).double()
        p = p / p.sum(1, keepdim=True)
        return torch.exp(-(p * p.clamp_min(1e-30).log()).sum(1))


def patch_kernel(tokenizer: nn.Module) -> tuple[int, tuple[int, ...]]:
    """(input channels, patch shape) of a tokenizer whose ``proj`` is a Conv1d/2d/3d with stride equal to its
    kernel and no padding (patch 1-D, spectrogram and image patches, tubelets); a clear error otherwise."""
    conv = getattr(tokenizer, "proj", None)
    if not isinstance(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or tuple(conv.kernel_size) != tuple(conv.stride) \
            or any(p != 0 for p in conv.padding):
        raise UserError(f"tokenizer {type(tokenizer).__name__} does not cut its input into non-overlapping patches: "
                        f"quantiser targets need a patch tokenizer (spectrogram_patch, patch2d, patch1d, tubelet)")
    return conv.in_channels, tuple(int(k) for k in conv.kernel_size)


def patchify(x: torch.Tensor, patch: tuple[int, ...]) -> torch.Tensor:
    """(B, C, *S) input -> (B, N, C * prod(patch)): the raw values of each non-overlapping patch.

    The order of patches and of values within a patch is that of a convolution with kernel = stride =
    ``patch`` (row-major over the grid; channel, then each patch axis), so that for a patch tokenizer
    ``proj(x).flatten(2).transpose(1, 2) == patchify(x) @ proj.weight.flatten(1).T + proj.bias``.
    A remainder that does not fill a patch is dropped, as the convolution drops it.
    """
    d = len(patch)
    B, C = x.shape[:2]
    S = x.shape[2:]
    if len(S) != d:
        raise ValueError(f"patches of {d} axes need (B, C, {d} axes) input, got {tuple(x.shape)}")
    g = [s // k for s, k in zip(S, patch)]
    x = x[(slice(None), slice(None)) + tuple(slice(0, gg * k) for gg, k in zip(g, patch))]
    y = x.reshape([B, C] + [v for gg, k in zip(g, patch) for v in (gg, k)])
    perm = [0] + [2 + 2 * i for i in range(d)] + [1] + [3 + 2 * i for i in range(d)]
    return y.permute(perm).reshape(B, math.prod(g), C * math.prod(patch))


class RVQTarget(nn.Module):
    """Discrete targets: the ids of each token's raw patch under a frozen residual quantiser (MuQ's Mel-RVQ).

    ``fit(x)`` (called once on the training inputs before training) fits the quantiser on the patches
    of up to ``max_vectors`` random training tokens; afterwards ``forward(x)`` gives the (B, N, C) ids
    that a token-prediction method learns to predict from context. No gradient flows through it, and
    nothing changes during training (``update`` is a no-op).

    Args:
        online: the online backbone (its tokenizer says how the input is cut into patches).
        n_codebooks, n_codes: C codebooks of K codes.
        max_vectors: training tokens used for k-means.
        iters: Lloyd iterations per codebook.
    Shapes:
        forward(x (B, ...)) -> (B, N, C) int64.
    """

    def __init__(self, online: nn.Module, *, n_codebooks: int = 4, n_codes: int = 64, max_vectors: int = 20000,
                 iters: int = 25):
        super().__init__()
        channels, self.patch = patch_kernel(online.tokenizer)
        if max_vectors < n_codes:
            raise ValueError(f"max_vectors ({max_vectors}) must be at least n_codes ({n_codes})")
        self.rvq = ResidualVQ(dim=channels * math.prod(self.patch), n_codebooks=n_codebooks, n_codes=n_codes)
        self.max_vectors, self.iters = int(max_vectors), int(iters)

    @property
    def n_codebooks(self) -> int:
        return self.rvq.n_codebooks

    @property
    def n_codes(self) -> int:
        return self.rvq.n_codes

    @torch.no_grad()
    def fit(self, x, *, seed: int = 0, batch: int = 256) -> "RVQTarget":
        """Fit the quantiser on the patches of training inputs ``x`` (an array or tensor (n, ...), or any
        indexable source of samples), ``max_vectors`` tokens drawn with ``seed``."""
        n = len(x)
        g = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(n, generator=g)[: max(1, min(n, batch * 8))].sort().values
        rows = []
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            xb = torch.as_tensor(np.stack([np.asarray(x[int(j)]) for j in idx])) if not torch.is_tensor(x) else x[idx]
            rows.append(patchify(xb.float(), self.patch).reshape(-1, self.rvq.dim))
        vecs = torch.cat(rows)
        pick = torch.randperm(len(vecs), generator=g)[: self.max_vectors]
        if len(pick) < self.n_codes:
            raise UserError(f"the training data give only {len(pick)} tokens, fewer than target.n_codes="
                            f"{self.n_codes}: lower target.n_codes")
        self.rvq.fit(vecs[pick], seed=seed, iters=self.iters)
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = patchify(x, self.patch)                                 # (B, N, P)
        return self.rvq.quantize(p.to(self.rvq.codebooks.dtype))

    def update(self, online: nn.Module, step: int, total_steps: int) -> None:
        """Nothing to update: the quantiser is frozen (None: no teacher, no momentum to log)."""
        return None

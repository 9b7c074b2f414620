"""Random convolution-kernel features of series (MiniRocket's transform): fixed, label-free, fast."""
from __future__ import annotations

import itertools
import math

import torch
from torch.nn import functional as F

KERNEL_LENGTH = 9


def kernel_weights() -> torch.Tensor:
    """(84, 9): every kernel of length 9 with three weights 2 and six weights -1 (each sums to 0)."""
    rows = []
    for ones in itertools.combinations(range(KERNEL_LENGTH), 3):
        w = torch.full((KERNEL_LENGTH,), -1.0)
        w[list(ones)] = 2.0
        rows.append(w)
    return torch.stack(rows)


def dilations(length: int, per_kernel: int, max_dilations: int = 32) -> tuple[list[int], list[int]]:
    """Dilations spread exponentially so the widest kernel spans the series, and features per dilation.

    Returns (dilations, counts): ``sum(counts) == per_kernel``; a dilation d makes a kernel span
    8 d + 1 steps, so the largest is ``(length - 1) // 8`` (at least 1).
    """
    top = max(0.0, math.log2(max(length - 1, 1) / (KERNEL_LENGTH - 1)))
    n = max(1, min(per_kernel, max_dilations))
    raw = [int(2 ** (top * i / max(n - 1, 1))) for i in range(n)]
    ds = sorted(set(raw))
    reps = [raw.count(d) for d in ds]                    # small dilations repeat: they get more biases
    counts = [per_kernel * r // n for r in reps]
    for i in range(per_kernel - sum(counts)):
        counts[i % len(counts)] += 1
    return ds, counts


class RandomKernelFeatures:
    """Random dilated convolutions of series, pooled: PPV per bias, optionally MPV, max and min.

    The PPV part follows MiniRocket (Dempster et al., 2021): the 84 kernels of ``kernel_weights``,
    dilations spread exponentially up to the series length, and for each kernel and dilation biases
    drawn as quantiles of that convolution's output on a random training series; one feature = the
    fraction of steps where the convolution exceeds its bias. ``extremes`` adds, for each kernel and
    dilation, the maximum and the minimum of the convolution over the series (ROCKET's max pooling;
    the minimum is the maximum of the negated kernel, which is not among the 84) and of the same
    convolution of the series' first difference (as MultiRocket reads the difference): 4 features per
    kernel and dilation. ``mpv`` adds, for each PPV feature, the mean of the convolution's excess over
    its bias at the steps where it exceeds it (MultiRocket's MPV; 0 where it never does). PPV is blind to the amplitude of a pattern once it crosses the bias; the
    extremes keep it. With several channels each dilation reads the sum of a random subset of them.
    Padding-aware: NaN steps at the end are not counted, and the convolution sees zeros past a
    series' end, so a padded series gives the unpadded one's features.

    Args:
        n_features: about this many PPV features (rounded down to a multiple of 84).
        max_dilations: at most this many distinct dilations.
        extremes: also the max and min of each kernel and dilation on the series and its difference.
        mpv: also the mean positive value per PPV feature.
        seed: the random state of bias quantiles, training series and channel subsets.
    Shapes:
        fit(x (n, C, L)) -> self; transform(x (n, C, L)) -> (n, F) float32: the PPV features, then (with
        ``mpv``) the MPV features in the same order, then (with ``extremes``) per dilation [max, min] of the
        series and [max, min] of its difference.
    """

    def __init__(self, *, n_features: int = 10_000, max_dilations: int = 32, extremes: bool = False,
                 mpv: bool = False, seed: int = 0):
        if n_features < 84:
            raise ValueError(f"n_features must be >= 84 (one per kernel), got {n_features}")
        self.n_features, self.max_dilations, self.seed = int(n_features), int(max_dilations), int(seed)
        self.extremes, self.mpv = bool(extremes), bool(mpv)

    @property
    def dim(self) -> int:
        return 84 * sum(self.counts_) * (2 if self.mpv else 1) + (4 * 84 * len(self.dilations_) if self.extremes else 0)

    def fit(self, x: torch.Tensor) -> RandomKernelFeatures:
        x = torch.as_tensor(x, dtype=torch.float32)
        n, C, L = x.shape
        g = torch.Generator().manual_seed(self.seed)
        self.weights_ = kernel_weights()[:, None]                                 # (84, 1, 9)
        self.dilations_, self.counts_ = dilations(L, self.n_features // 84, self.max_dilations)
        mixes, biases = [], []
        real = self._real_length(x)
        golden = (math.sqrt(5) - 1) / 2
        j = 0
        for d, k in zip(self.dilations_, self.counts_):
            size = min(C, max(1, int(2 ** (torch.rand(1, generator=g).item() * math.log2(min(C, 9) + 1)))))
            mix = torch.zeros(C)
            mix[torch.randperm(C, generator=g)[:size]] = 1.0
            i = int(torch.randint(n, (1,), generator=g))
            conv = self._conv(x[i:i + 1], mix, d)[0, :, :int(real[i])]              # (84, Li)
            q = torch.tensor([((j + m + 1) * golden) % 1.0 for m in range(k)])      # low-discrepancy quantiles
            j += k
            biases.append(torch.quantile(conv, q, dim=1).T.sort(1).values.contiguous())  # (84, k) ascending
            mixes.append(mix)
        self.mixes_, self.biases_ = mixes, biases
        self.length_ = L
        return self

    @staticmethod
    def _real_length(x: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(x.shape[-1])
        return (torch.where(torch.isfinite(x).any(1), steps, -1).amax(1) + 1).clamp(min=1)   # (n,)

    def _conv(self, x: torch.Tensor, mix: torch.Tensor, d: int) -> torch.Tensor:
        s = torch.einsum("bcl,c->bl", torch.nan_to_num(x, nan=0.0), mix)[:, None]         # (B, 1, L)
        return F.conv1d(s, self.weights_, padding=4 * d, dilation=d)                      # (B, 84, L)

    @torch.no_grad()
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        n, _, L = x.shape
        steps = torch.arange(L)
        out = []
        chunk = max(1, (1 << 20) // (84 * max(self.counts_) * L))          # keeps the (B, 84, k, L) comparison in cache
        for a in range(0, n, chunk):
            xb = x[a:a + chunk]
            real = self._real_length(xb)
            outside = (steps[None] >= real[:, None])[:, None]                               # (B, 1, L)
            feats, means, extremes = [], [], []
            dx = xb.diff(dim=-1) if self.extremes else None                                 # NaN past the end stays NaN
            for d, mix, bias in zip(self.dilations_, self.mixes_, self.biases_):
                conv = self._conv(xb, mix, d)
                if self.extremes:
                    extremes += self._extremes(conv, outside)
                conv = conv.masked_fill(outside, float("-inf"))                             # padding: below every bias
                if self.mpv:
                    excess = conv[:, :, None] - bias[None, :, :, None]                      # (B, 84, k, L)
                    hit = excess > 0
                    above = hit.sum(-1)                                                     # (B, 84, k)
                    total = torch.where(hit, excess, torch.zeros((), dtype=excess.dtype)).sum(-1)
                    means.append((total / above.clamp(min=1)).flatten(1))
                else:
                    above = (conv[:, :, None] > bias[None, :, :, None]).sum(-1)             # (B, 84, k)
                feats.append((above.to(torch.float32) / real[:, None, None]).flatten(1))
                if self.extremes:
                    extremes += self._extremes(self._conv(dx, mix, d), outside[..., 1:])
            out.append(torch.cat(feats + means + extremes, 1))
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    @staticmethod
    def _extremes(conv: torch.Tensor, outside: torch.Tensor) -> list[torch.Tensor]:
        """[max, min] over the real steps of (B, 84, L') convolutions; (B, 84) each, 0 with no real step."""
        outside = outside[..., :conv.shape[-1]]
        empty = outside.all(-1)                                                             # (B, 1)
        top = conv.masked_fill(outside, float("-inf")).amax(-1).masked_fill(empty, 0.0)
        low = conv.masked_fill(outside, float("inf")).amin(-1).masked_fill(empty, 0.0)
        return [top, low]

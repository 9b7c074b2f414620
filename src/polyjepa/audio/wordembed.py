"""Joint acoustic-phonetic word embeddings: an audio tower and a symbol-sequence tower in one space.

Spoken words (log-mel frames) and symbol sequences (phonemes or letters) are mapped to unit vectors;
training pulls a spoken word towards its own symbol sequence and towards other recordings of the same
word, and pushes it from other words by at least a margin (the pair loss of El-Geish, 2019:
y d^2 + (1 - y) max(0, m - d)^2 on Euclidean distances, positives and negatives weighted equally).
Evaluation: same-different word discrimination (average precision over all test pairs ranked by
distance) and cross-view retrieval (the nearest symbol sequence of each spoken word).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, D, T) features, (B, T) bool -> (B, D) mean over the True positions."""
    w = mask.to(h.dtype)[:, None]
    return (h * w).sum(-1) / w.sum(-1).clamp_min(1.0)


class AudioWordEncoder(nn.Module):
    """(B, n_mels, T) log-mels, (B, T) valid frames -> (B, dim) unit vectors: convolutions over time (padding
    frames held at zero), then the mean and the max over the real frames, projected."""

    def __init__(self, n_mels: int, dim: int = 64, width: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(n_mels, width, 5, padding=2), nn.GELU(),
                                 nn.Conv1d(width, width, 5, padding=4, dilation=2), nn.GELU(),
                                 nn.Conv1d(width, width, 5, padding=8, dilation=4), nn.GELU())
        self.proj = nn.Linear(2 * width, dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        w = valid.to(x.dtype)[:, None]
        h = x * w                                        # padding is zero whatever it held, after every layer too
        for layer in self.net:
            h = layer(h) * w if isinstance(layer, nn.GELU) else layer(h)
        mx = h.masked_fill(~valid[:, None], float("-inf")).amax(-1)
        return F.normalize(self.proj(torch.cat([masked_mean(h, valid), mx], -1)), dim=-1)


class SymbolEncoder(nn.Module):
    """(B, L) symbol ids (0 = padding) -> (B, dim) unit vectors: embeddings, a bidirectional GRU, the mean over symbols."""

    def __init__(self, n_symbols: int, dim: int = 64, width: int = 64):
        super().__init__()
        self.embed = nn.Embedding(n_symbols + 1, width, padding_idx=0)
        self.rnn = nn.GRU(width, width, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * width, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.embed(ids))                                # (B, L, 2W)
        return F.normalize(self.proj(masked_mean(h.transpose(1, 2), ids > 0)), dim=-1)


def encode_symbols(seqs: list[tuple[str, ...]], vocab: list[str]) -> torch.Tensor:
    """Symbol sequences -> (n, L) int64 ids (1-based, 0 = padding)."""
    index = {s: i + 1 for i, s in enumerate(vocab)}
    L = max(len(s) for s in seqs)
    out = torch.zeros(len(seqs), L, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor([index[c] for c in s])
    return out


def pair_contrastive_loss(a: torch.Tensor, b: torch.Tensor, same: torch.Tensor, *, margin: float = 1.0) -> torch.Tensor:
    """Mean over positives of d^2 plus mean over negatives of max(0, margin - d)^2, d = ||a_i - b_j||.

    Args:
        a (n, D), b (m, D) embeddings; same (n, m) bool: whether a_i and b_j are the same word.
    (El-Geish 2019; Hadsell, Chopra & LeCun 2006 for the pair loss; classes balanced by the two means.)
    """
    d = torch.cdist(a, b)
    pos, neg = same, ~same
    lp = d.pow(2)[pos].mean() if pos.any() else d.new_zeros(())
    ln = F.relu(margin - d).pow(2)[neg].mean() if neg.any() else d.new_zeros(())
    return lp + ln


class JointWordEmbedder(nn.Module):
    """The two towers and the joint loss: audio-to-symbols pairs plus audio-to-audio pairs (multi-view)."""

    def __init__(self, *, n_mels: int, n_symbols: int, dim: int = 64, margin: float = 1.0):
        super().__init__()
        self.audio = AudioWordEncoder(n_mels, dim)
        self.symbols = SymbolEncoder(n_symbols, dim)
        self.margin = float(margin)

    def loss(self, x, valid, word, symbol_ids) -> dict[str, torch.Tensor]:
        """x (B, n_mels, T), valid (B, T), word (B,) word index, symbol_ids (W, L) of every word."""
        ea = self.audio(x, valid)
        words = torch.unique(word)
        es = self.symbols(symbol_ids[words])
        cross = pair_contrastive_loss(ea, es, word[:, None] == words[None], margin=self.margin)
        within = pair_contrastive_loss(ea, ea, word[:, None] == word[None], margin=self.margin)
        return {"loss": cross + within, "cross": cross.detach(), "within": within.detach()}


def train_word_embedder(model: JointWordEmbedder, x, valid, word, symbol_ids, *, epochs: int = 20, batch_size: int = 64,
                        lr: float = 2e-3, seed: int = 0) -> list[float]:
    """AdamW over shuffled minibatches; returns the mean loss of each epoch."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * max(1, len(x) // batch_size))
    history = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        losses = []
        for b in range(max(1, len(x) // batch_size)):
            idx = order[b * batch_size:(b + 1) * batch_size]
            out = model.loss(x[idx], valid[idx], word[idx], symbol_ids)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            sched.step()
            losses.append(float(out["loss"].detach()))
        history.append(float(np.mean(losses)))
    model.eval()
    return history


def average_precision(dist: np.ndarray, labels: np.ndarray) -> float:
    """Same-different word discrimination: the average precision of 'same word' over all pairs i < j of
    ``dist`` (n, n), ranked by increasing distance (ties broken by pair order)."""
    iu = np.triu_indices(len(labels), 1)
    d = np.asarray(dist)[iu]
    same = (labels[:, None] == labels[None])[iu]
    if not same.any():
        raise ValueError("average precision needs at least one pair of the same word")
    order = np.argsort(d, kind="stable")
    hits = same[order]
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at[hits].mean())


def cosine_distances(e: np.ndarray) -> np.ndarray:
    n = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return 1.0 - n @ n.T


def dtw_distances(seqs: list[np.ndarray], *, chunk: int = 4000) -> np.ndarray:
    """(n, n) dynamic-time-warping distances between sequences of frames (each (T_i, K)), cosine frame cost,
    divided by T_i + T_j; computed for all pairs in batches along anti-diagonals (torch)."""
    n = len(seqs)
    T = max(len(s) for s in seqs)
    K = seqs[0].shape[1]
    X = torch.zeros(n, T, K, dtype=torch.float64)
    lens = torch.tensor([len(s) for s in seqs])
    for i, s in enumerate(seqs):
        X[i, :len(s)] = torch.from_numpy(np.asarray(s, dtype=np.float64))
    X = F.normalize(X, dim=-1)
    ii, jj = np.triu_indices(n, 1)
    out = np.zeros((n, n))
    for start in range(0, len(ii), chunk):
        a, b = torch.from_numpy(ii[start:start + chunk]), torch.from_numpy(jj[start:start + chunk])
        cost = 1.0 - X[a] @ X[b].transpose(1, 2)                         # (P, T, T)
        D = dtw_table(cost)
        la, lb = lens[a] - 1, lens[b] - 1
        d = D[torch.arange(len(a)), la, lb] / (lens[a] + lens[b])
        out[ii[start:start + chunk], jj[start:start + chunk]] = d.numpy()
    return out + out.T


def dtw_table(cost: torch.Tensor) -> torch.Tensor:
    """(P, T, U) frame costs -> (P, T, U) cumulative DTW costs D[i, j] = c[i, j] + min(D[i-1, j], D[i, j-1],
    D[i-1, j-1]), filled one anti-diagonal at a time (every pair and every cell of a diagonal at once)."""
    P, T, U = cost.shape
    inf = torch.tensor(float("inf"), dtype=cost.dtype)
    D = torch.full((P, T + 1, U + 1), float("inf"), dtype=cost.dtype)
    D[:, 0, 0] = 0.0
    for k in range(2, T + U + 1):                       # i + j = k in the 1-based padded table
        i = torch.arange(max(1, k - U), min(T, k - 1) + 1)
        j = k - i
        best = torch.minimum(torch.minimum(D[:, i - 1, j], D[:, i, j - 1]), D[:, i - 1, j - 1])
        D[:, i, j] = cost[:, i - 1, j - 1] + torch.where(torch.isinf(best), inf, best)
    return D[:, 1:, 1:]

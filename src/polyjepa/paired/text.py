"""The text side: a WordPiece tokenizer trained on the corpus (Hugging Face ``tokenizers``) and a small
transformer over its ids."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import UserError, require
from ..models.transformer import Block, init_weights, require_positive

PAD, UNK = "[PAD]", "[UNK]"


def train_tokenizer(texts, *, vocab_size: int = 4000, min_frequency: int = 2) -> str:
    """A lower-casing WordPiece tokenizer (Hugging Face ``tokenizers``) whose vocabulary comes from ``texts``
    only (nothing is downloaded); its JSON string.

    The vocabulary holds every character of the corpus (alone and as a word-internal ``##`` piece), then
    the most frequent words (ties broken alphabetically) seen at least ``min_frequency`` times, up to
    ``vocab_size`` entries: frequent words are one token, rarer ones are spelled in characters, and the
    same texts always give the same tokenizer (the library's WordPiece trainer breaks ties differently from
    run to run). Id 0 is the padding token, id 1 the unknown token. The JSON travels with a run (in its
    meta), so that new texts are cut into the same pieces.
    """
    from collections import Counter

    tk = require("tokenizers", "text", "text towers")
    normalizer = tk.normalizers.BertNormalizer(lowercase=True)
    pre = tk.pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(str(text))))
    chars = sorted({c for w in counts for c in w})
    base = [PAD, UNK] + chars + ["##" + c for c in chars]
    words = sorted((w for w, n in counts.items() if n >= min_frequency and len(w) > 1), key=lambda w: (-counts[w], w))
    vocab = base + words[:max(0, vocab_size - len(base))]
    tok = tk.Tokenizer(tk.models.WordPiece(vocab={t: i for i, t in enumerate(vocab)}, unk_token=UNK,
                                           max_input_chars_per_word=100))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre
    return tok.to_str()


def encode_texts(texts, tokenizer_json: str, *, max_len: int = 64) -> np.ndarray:
    """(n,) strings -> (n, max_len) int64 ids, cut to ``max_len`` and padded with 0."""
    tk = require("tokenizers", "text", "text towers")
    tok = tk.Tokenizer.from_str(tokenizer_json)
    ids = np.zeros((len(texts), max_len), np.int64)
    for i, enc in enumerate(tok.encode_batch(list(texts))):
        row = enc.ids[:max_len]
        ids[i, :len(row)] = row
    return ids


def vocab_size_of(tokenizer_json: str) -> int:
    tk = require("tokenizers", "text", "text towers")
    return tk.Tokenizer.from_str(tokenizer_json).get_vocab_size()


class TextTransformer(nn.Module):
    """Token embedding + learned positions -> pre-norm transformer blocks (padding masked) -> mean over tokens.

    Args:
        vocab_size: ids the embedding holds (injected: the run's tokenizer); max_len: longest input (injected).
        dim, depth, heads, mlp_ratio: the transformer.
    Shapes: forward(ids (B, L) int64, 0 = padding) -> (B, dim).
    """

    def __init__(self, *, vocab_size: int, max_len: int, dim: int = 128, depth: int = 2, heads: int = 4,
                 mlp_ratio: float = 4.0):
        super().__init__()
        require_positive(vocab_size=vocab_size, max_len=max_len, dim=dim, depth=depth, heads=heads)
        self.dim, self.vocab_size, self.max_len = dim, vocab_size, max_len
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(1, max_len, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        init_weights(self, self.blocks)
        nn.init.trunc_normal_(self.embed.weight, std=0.02)
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x, keep = self.tokens(ids)
        w = keep.unsqueeze(-1).to(x.dtype)
        return (x * w).sum(1) / w.sum(1)                                    # (B, dim) mean over real tokens

    def tokens(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, L) -> (token features (B, L, dim), keep (B, L) bool: the real tokens; an empty text keeps
        its padding, so that every row has a token to read)."""
        if ids.shape[1] > self.max_len:
            raise ValueError(f"texts of {ids.shape[1]} tokens exceed the tower's max_len {self.max_len}")
        if int(ids.max()) >= self.vocab_size or int(ids.min()) < 0:
            raise UserError(f"token ids outside the tower's vocabulary of {self.vocab_size}: the texts were cut by "
                            f"another tokenizer than the run's; encode them with the run's tokenizer")
        keep = ids != 0                                                     # (B, L)
        keep = keep | ~keep.any(1, keepdim=True)                            # an empty text attends to its padding
        x = self.embed(ids) + self.pos[:, :ids.shape[1]]
        mask = keep[:, None, None, :]                                       # (B, 1, 1, L) True = may attend
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x), keep

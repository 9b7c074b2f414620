"""TI-JEPA: a caption fused into image patches by cross-attention, trained by I-JEPA block prediction over frozen
unimodal encoders (Vo et al., 2025).

```
caption -> text encoder (frozen) -> t (B, L, Dt)
context patches -> image encoder (frozen) -> z (B, Nc, D) -> fusion X(z, t) -> predictor -> p (B, M, Nt, D)
all patches -> image encoder (frozen) -> h (B, N, D) -> fusion X~(h, t) (EMA of X) -> LN -> s[target_idx]
energy = mean over target tokens and channels of (p - s)^2
```
With frozen encoders, what they make of the training pairs is computed once (:func:`encode_pairs`) and every step
reads it: the target path's h and the caption tokens t outright; the context path's input patches, since which
patches the encoder sees changes with every mask (its output over the context alone is not a slice of h).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.encoder import Backbone
from ..models.transformer import gather_tokens, require_positive
from ..objectives.latent import latent_regression
from ..targets.ema import ema_update, momentum_at
from .text import TextTransformer


class CrossAttentionLayer(nn.Module):
    """Patches read the caption: x + W_o softmax(Q K^T / sqrt(hs)) V with Q from LN(x), K and V from LN(t),
    then x + MLP(LN(x)).

    With one text token the softmax over one key is 1, so every patch receives the same vector
    W_o (W_v LN(t) + b_v) + b_o whatever the patch. A row with no real text token (``keep`` all False)
    receives no attention read-out: the layer is then its MLP alone.
    Shapes: forward(x (B, N, D), t (B, L, Dt), keep (B, L) bool, True = a real token) -> (B, N, D).
    """

    def __init__(self, dim: int, text_dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        require_positive(dim=dim, text_dim=text_dim, heads=heads)
        if dim % heads:
            raise ValueError(f"fusion width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm_x = nn.LayerNorm(dim, eps=1e-6)
        self.norm_t = nn.LayerNorm(text_dim, eps=1e-6)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(text_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def attend(self, x: torch.Tensor, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The attention read-out alone (B, N, D), zero for rows without a real token."""
        B, N, D = x.shape
        L, h = t.shape[1], self.heads
        q = self.q(self.norm_x(x)).view(B, N, h, D // h).transpose(1, 2)              # (B, h, N, hs)
        k, v = self.kv(self.norm_t(t)).view(B, L, 2, h, D // h).permute(2, 0, 3, 1, 4)  # (B, h, L, hs) each
        has = keep.any(1)                                                              # (B,)
        mask = (keep | ~has[:, None])[:, None, None, :]                                # no all-masked rows
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)                  # (B, h, N, hs)
        out = self.proj(out.transpose(1, 2).reshape(B, N, D))
        return out * has[:, None, None].to(out.dtype)

    def forward(self, x: torch.Tensor, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = x + self.attend(x, t, keep)
        return x + self.mlp(self.norm2(x))


class CrossAttentionFusion(nn.Module):
    """``depth`` :class:`CrossAttentionLayer` s: text tokens fused into image patch features.

    Args: dim: patch width D (injected); text_dim: text width Dt (injected); depth, heads, mlp_ratio.
    Shapes: forward(x (B, N, D), t (B, L, Dt), keep (B, L) bool) -> (B, N, D).
    Linear weights start truncated-normal(0.02) with zero biases, LayerNorms at unit scale and zero shift.
    """

    def __init__(self, *, dim: int, text_dim: int, depth: int = 1, heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        require_positive(depth=depth)
        self.dim, self.text_dim, self.depth, self.heads = dim, text_dim, depth, heads
        self.layers = nn.ModuleList([CrossAttentionLayer(dim, text_dim, heads, mlp_ratio) for _ in range(depth)])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, t, keep)
        return x


@dataclass
class EncodedPairs:
    """What two frozen encoders make of n images with K captions each, computed once by :func:`encode_pairs`.

    patches (n, N, D): the image tokenizer's output, the context encoder's input (None when the tokenizer
    itself reads the mask, then ``images`` is the input); h (n, N, D): the image encoder on all patches;
    t (n, K, L, Dt): caption token features; keep (n, K, L): the real tokens (ids != 0).
    """
    images: torch.Tensor
    patches: torch.Tensor | None
    h: torch.Tensor
    t: torch.Tensor
    keep: torch.Tensor

    @torch.no_grad()
    def context(self, image_encoder: Backbone, idx: torch.Tensor, context_idx: torch.Tensor) -> torch.Tensor:
        """The image encoder on the context patches of images ``idx`` (B,): (B, Nc, D)."""
        if self.patches is None:
            return image_encoder(self.images[idx], keep_idx=context_idx)
        return image_encoder.encoder(self.patches[idx], context_idx)


@torch.no_grad()
def encode_pairs(image_encoder: Backbone, text_encoder: TextTransformer, images: torch.Tensor, ids: torch.Tensor,
                 chunk: int = 256) -> EncodedPairs:
    """Run the frozen encoders once over images (n, C, H, W) and their captions ids (n, K, L), in chunks."""
    images, ids = torch.as_tensor(images), torch.as_tensor(ids)
    n, k, length = ids.shape
    masks_input = getattr(image_encoder.tokenizer, "masks_input", False)
    patches, h = [], []
    for i in range(0, n, chunk):
        p = image_encoder.tokenizer(images[i:i + chunk])
        patches.append(p)
        h.append(image_encoder(images[i:i + chunk]) if masks_input else image_encoder.encoder(p))
    flat = ids.reshape(-1, length)
    t = torch.cat([text_encoder.tokens(flat[i:i + 4 * chunk])[0] for i in range(0, len(flat), 4 * chunk)])
    return EncodedPairs(images=images, patches=None if masks_input else torch.cat(patches), h=torch.cat(h),
                        t=t.reshape(n, k, length, -1), keep=ids != 0)


class TIJEPA(nn.Module):
    """TI-JEPA on image-caption pairs.

    Args:
        image_encoder: tokenizer + ViT (patch features (B, N, D)); text_encoder: :class:`TextTransformer`.
        fusion: context-side cross-attention X (trainable); its EMA copy X~ fuses the caption into all patches.
        predictor: a mask-token predictor (I-JEPA's) from fused context patches to target positions.
        masker: I-JEPA multi-block masks on the image's patch grid.
        momentum: (start, end) of the EMA momentum of X~, linear over training.
        freeze_encoders: True (TI-JEPA) keeps both encoders fixed; False trains them through the context
            path, while the target side runs the same encoders without gradient (stop-gradient).
        loss: latent distance ('l2' is the paper's energy).
    A batch from the trainer is (B, 1) row indices of the attached pairs; :meth:`make_batch` draws one of each
    image's captions and the masks (the same draws whether or not the encoders' outputs were attached).
    """

    def __init__(self, *, image_encoder: Backbone, text_encoder: TextTransformer, fusion: CrossAttentionFusion,
                 predictor: nn.Module, masker, momentum: tuple[float, float] = (0.996, 1.0),
                 freeze_encoders: bool = True, loss: str = "l2"):
        super().__init__()
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.fusion, self.predictor, self.masker = fusion, predictor, masker
        self.target_fusion = copy.deepcopy(fusion).requires_grad_(False)
        self.momentum = (float(momentum[0]), float(momentum[1]))
        self.freeze_encoders, self.loss_kind = bool(freeze_encoders), loss
        image_encoder.requires_grad_(not self.freeze_encoders)   # an EMA copy arrives with gradients off
        text_encoder.requires_grad_(not self.freeze_encoders)
        self._images = self._ids = self._encoded = None

    def attach(self, images: np.ndarray, ids: np.ndarray, encoded: EncodedPairs | None = None) -> "TIJEPA":
        """Hold the training pairs: images (n, C, H, W), ids (n, K, L) token ids of K captions per image, and
        optionally what the frozen encoders make of them (:func:`encode_pairs`), which the steps then read."""
        if encoded is not None and not self.freeze_encoders:
            raise ValueError("encoder outputs computed once hold only for frozen encoders")
        self._images, self._ids, self._encoded = torch.as_tensor(images), torch.as_tensor(ids), encoded
        return self

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        idx = x[:, 0].long()
        ids = self._ids[idx]                                                  # (B, K, L)
        rows = torch.arange(len(idx))
        pick = torch.randint(ids.shape[1], (len(idx),), generator=generator)
        context_idx, target_idx = self.masker(len(idx), generator)
        batch = {"x": x, "ids": ids[rows, pick], "context_idx": context_idx, "target_idx": target_idx}
        e = self._encoded
        if e is None:
            return {**batch, "images": self._images[idx]}
        return {**batch, "z": e.context(self.image_encoder, idx, context_idx), "h": e.h[idx],
                "t": e.t[idx, pick], "keep": e.keep[idx, pick]}

    def text_tokens(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, L) -> (text token features (B, L, Dt), keep (B, L): the real tokens, ids != 0)."""
        t, _ = self.text_encoder.tokens(ids)
        return t, ids != 0

    def targets(self, h: torch.Tensor, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Target-side fused features of all patches, layer-normalised: h (B, N, D) -> (B, N, D)."""
        s = self.target_fusion(h, t, keep)
        return F.layer_norm(s, s.shape[-1:])

    def forward(self, batch: dict) -> dict:
        return self.loss(batch)

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """The batch holds images and ids, or (frozen encoders) their outputs z, h, t and keep."""
        context_idx, target_idx = batch["context_idx"], batch["target_idx"]
        if "h" in batch:                                                      # read from encode_pairs
            z, h, t, keep = batch["z"], batch["h"], batch["t"], batch["keep"]
        else:
            images = batch["images"]
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoders):
                t, keep = self.text_tokens(batch["ids"])                      # (B, L, Dt)
                z = self.image_encoder(images, keep_idx=context_idx)          # (B, Nc, D): context patches only
            with torch.no_grad():
                h = self.image_encoder(images)
        with torch.no_grad():
            target = gather_tokens(self.targets(h, t.detach(), keep), target_idx)
        p = self.predictor(self.fusion(z, t, keep), context_idx, target_idx)  # (B, M, Nt, D)
        return latent_regression(p, target, kind=self.loss_kind)

    def trainable_modules(self) -> list[nn.Module]:
        mods = [self.fusion, self.predictor]
        return mods if self.freeze_encoders else mods + [self.image_encoder, self.text_encoder]

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float:
        m = momentum_at(step, total_steps, *self.momentum)
        ema_update(list(self.target_fusion.parameters()), list(self.fusion.parameters()), m)
        return m

    @torch.no_grad()
    def energy(self, z: torch.Tensor, s: torch.Tensor, t: torch.Tensor, keep: torch.Tensor,
               context_idx: torch.Tensor, target_idx: torch.Tensor) -> torch.Tensor:
        """Per-pair energy (B,): mean squared distance between the predicted and the target fused features of
        the target blocks. z (B, Nc, D): the image encoder on the context patches; s (B, N, D): :meth:`targets`
        of all patches; t, keep: the caption; context_idx (1 or B, Nc), target_idx (1 or B, M, Nt)."""
        B = len(z)
        ci, ti = context_idx.expand(B, -1), target_idx.expand(B, -1, -1)
        p = self.predictor(self.fusion(z, t, keep), ci, ti)
        return (p - gather_tokens(s, ti)).pow(2).mean(dim=(1, 2, 3))

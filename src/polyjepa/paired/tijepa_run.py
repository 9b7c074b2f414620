"""Runs of TI-JEPA: pretrain the two unimodal encoders on the training split (I-JEPA on the images, masked-token
prediction on the captions), freeze them, train the cross-attention fusion and predictor, and score every test
image-caption pair by the energy and by a matching probe on the fused embedding, against baselines."""
from __future__ import annotations

import copy
import functools
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..masks.multiblock import MultiBlockMasker
from ..models.encoder import Backbone, vit_encoder
from ..models.predictor import MaskTokenPredictor
from ..objectives.latent import latent_regression
from ..objectives.vcr import vcr_loss
from ..targets.ema import EMATarget
from ..tokenizers.patch2d import PatchEmbed2D
from ..train.stages import StageCheckpoints, generator_state, open_stage_run, set_generator_state
from ..train.schedules import set_lr, warmup_cosine_factor
from .data import Pairs
from .text import TextTransformer
from .tijepa import TIJEPA, CrossAttentionFusion, EncodedPairs, encode_pairs

SCHEMA = "polyjepa-tijepa-summary/1"
MASK_ID = 1  # masked caption tokens are replaced by the tokenizer's [UNK] id


def tijepa_options(*, freeze_encoders: bool = True, momentum: tuple[float, float] = (0.996, 1.0), loss: str = "l2",
                   ablation: bool = True, energy_masks: int = 2) -> dict:
    """The recipe's ``method`` section (TI-JEPA) as keyword options. ``ablation`` also trains the same fusion with
    the encoders unfrozen (the collapse check); ``energy_masks`` mask draws average each pair's test energy."""
    if len(momentum) != 2 or not all(0.0 <= float(m) <= 1.0 for m in momentum):
        raise UserError(f"method.momentum must be (start, end) in [0, 1], got {tuple(momentum)}")
    if loss not in ("l2", "smooth_l1", "l1"):
        raise UserError(f"method.loss must be l2, smooth_l1 or l1, got {loss!r}")
    if energy_masks < 1:
        raise UserError(f"method.energy_masks must be at least 1, got {energy_masks}")
    return dict(freeze_encoders=bool(freeze_encoders), momentum=tuple(float(m) for m in momentum), loss=loss,
                ablation=bool(ablation), energy_masks=int(energy_masks))


def ijepa_image_encoder(*, patch_size: int = 4, dim: int = 96, depth: int = 2, heads: int = 3,
                        predictor_dim: int = 48, predictor_depth: int = 2, predictor_heads: int = 3, epochs: int = 30,
                        batch_size: int = 64, lr: float = 1e-3, var_weight: float = 5.0,
                        cov_weight: float = 0.2) -> dict:
    """The ``image_encoder`` section: a ViT pretrained by I-JEPA (+ VCR on the pooled context) on the training
    images only; the EMA encoder is kept, as I-JEPA evaluates."""
    return dict(patch_size=patch_size, dim=dim, depth=depth, heads=heads, predictor_dim=predictor_dim,
                predictor_depth=predictor_depth, predictor_heads=predictor_heads, epochs=epochs,
                batch_size=batch_size, lr=lr, var_weight=var_weight, cov_weight=cov_weight)


def mlm_text_encoder(*, dim: int = 96, depth: int = 2, heads: int = 3, mask_ratio: float = 0.15, epochs: int = 15,
                     batch_size: int = 128, lr: float = 1e-3) -> dict:
    """The ``text_encoder`` section: the paired family's text transformer pretrained by masked-token prediction
    on the training captions only."""
    if not 0 < mask_ratio < 1:
        raise UserError(f"text_encoder.mask_ratio must be in (0, 1), got {mask_ratio}")
    return dict(dim=dim, depth=depth, heads=heads, mask_ratio=mask_ratio, epochs=epochs, batch_size=batch_size,
                lr=lr)


def cross_attention_fusion(*, dim: int, text_dim: int, depth: int = 1, heads: int = 4,
                           mlp_ratio: float = 2.0) -> CrossAttentionFusion:
    return CrossAttentionFusion(dim=dim, text_dim=text_dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio)


def train_steps(params, loss_fn, *, steps: int, lr: float, weight_decay: float = 0.05, warmup: float = 0.1,
                grad_clip: float | None = 1.0, after_step=None, label: str = "", track: tuple[str, ...] = (),
                ckpts: StageCheckpoints | None = None, stage: str = "", modules: dict[str, nn.Module] | None = None,
                batches: "Batches | None" = None) -> dict:
    """AdamW over ``steps`` with linear warm-up and cosine decay; ``loss_fn(step) -> {"loss", ...}``.

    ``track`` names outputs of ``loss_fn`` besides the loss whose last-tenth mean the record holds. With
    ``ckpts`` the run's stage ``stage`` (its ``modules``, the optimizer, the ``batches`` and their generator,
    the losses so far) is checkpointed every ``ckpts.every`` steps and when it ends; a stage the checkpoint
    left in training continues from its step. The learning rate follows the schedule of ``lr`` from that step
    on, so a resume that changes ``lr`` takes effect at once.
    Returns the steps and the mean loss (and tracked values) of the first and last tenth of the steps."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    gens = {} if batches is None else {"batches": batches.generator}
    pos = (ckpts or StageCheckpoints(None)).begin(stage, dict(modules or {}), opt, generators=gens,
                                                  state={"losses": [], "logs": {k: [] for k in track}})
    if pos.resumed and batches is not None:
        batches.restore_json(pos.state["batches"])
    losses, logs = pos.state["losses"], pos.state["logs"]
    for step in range(pos.step, steps):
        set_lr(opt, lr * warmup_cosine_factor(step, steps, int(warmup * steps)))
        out = loss_fn(step)
        if not torch.isfinite(out["loss"]):
            raise UserError(f"{label}: the loss became {float(out['loss'])} at step {step}: lower the learning rate")
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        if after_step is not None:
            after_step(step, steps)
        losses.append(float(out["loss"].detach()))
        for k in track:
            logs[k].append(float(out[k]))
        pos.advance(**({} if batches is None else {"batches": batches.state_json()}))
    k = max(1, steps // 10)
    record = {"steps": steps, "first_loss": float(np.mean(losses[:k])), "last_loss": float(np.mean(losses[-k:])),
              **{f"final_{name}": float(np.mean(v[-k:])) for name, v in logs.items()}}
    pos.finish(**record)
    return record


def finished_stage(ckpts: StageCheckpoints | None, stage: str, modules: dict[str, nn.Module]) -> dict | None:
    """The training record of ``stage`` with its weights loaded into ``modules`` when the checkpoints hold it
    finished, else None. A checkpoint that records the stage finished without holding its weights comes from
    another layout of this run and is refused rather than read as untrained modules."""
    if ckpts is not None and stage in ckpts.finished and any(name not in ckpts.weights for name in modules):
        raise UserError(f"checkpoint {ckpts.path} records stage {stage!r} finished but lacks its weights "
                        f"{sorted(set(modules) - set(ckpts.weights))}: it comes from another version of this run; "
                        f"start the run again")
    done = ckpts.skip(stage, modules) if ckpts is not None else None
    return None if done is None else {k: v for k, v in done.items() if k not in ("seconds", "torch_rng")}


class Batches:
    """Endless (batch_size,) index tensors over n items: shuffled epochs, the last partial batch dropped.

    The permutation of an epoch is drawn from ``generator`` when its first batch is asked for, between the
    draws the caller makes from the same generator (masks, captions). :meth:`state` (the generator now and at
    the epoch's start, the position) and :meth:`restore` put a fresh object where a saved one stood."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.perm, self.pos, self.epoch_state = None, 0, None

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        if self.perm is None or self.pos + self.batch_size > self.n:
            self.epoch_state = self.generator.get_state()
            self.perm, self.pos = torch.randperm(self.n, generator=self.generator), 0
        self.pos += self.batch_size
        return self.perm[self.pos - self.batch_size:self.pos]

    def state(self) -> tuple[dict, dict]:
        """(tensors, JSON) of where the batches stand."""
        tensors = {"now": self.generator.get_state()}
        if self.epoch_state is not None:
            tensors["epoch"] = self.epoch_state
        return tensors, {"pos": self.pos}

    def restore(self, tensors: dict, meta: dict) -> None:
        if "epoch" in tensors:
            self.generator.set_state(tensors["epoch"])
            self.epoch_state = tensors["epoch"].clone()
            self.perm = torch.randperm(self.n, generator=self.generator)
        self.generator.set_state(tensors["now"])
        self.pos = int(meta["pos"])

    def state_json(self) -> dict:
        """Where the batches stand besides the generator's state now, as JSON: the position and the generator's
        state at the epoch's start (base64 text)."""
        if self.epoch_state is None:
            return {"pos": self.pos}
        at_epoch = torch.Generator()
        at_epoch.set_state(self.epoch_state)
        return {"pos": self.pos, "epoch": generator_state(at_epoch)}

    def restore_json(self, meta: dict) -> None:
        """Continue from :meth:`state_json`, the generator already set to its state at that moment."""
        tensors = {"now": self.generator.get_state()}
        if "epoch" in meta:
            at_epoch = torch.Generator()
            set_generator_state(at_epoch, meta["epoch"])
            tensors["epoch"] = at_epoch.get_state()
        self.restore(tensors, meta)


def epoch_steps(n: int, batch_size: int, epochs: int) -> int:
    return max(1, n // batch_size) * epochs


def pretrain_image_encoder(images: torch.Tensor, *, seed: int, patch_size: int, dim: int, depth: int, heads: int,
                           predictor_dim: int, predictor_depth: int, predictor_heads: int, epochs: int,
                           batch_size: int, lr: float, var_weight: float, cov_weight: float,
                           ckpts: StageCheckpoints | None = None) -> tuple[Backbone, dict]:
    """I-JEPA (the library's JEPA method, multi-block masks, EMA target, L2 latent loss, VCR) on ``images``
    (n, C, H, W); returns the EMA encoder and the training record. With ``ckpts`` the stage ``image`` is
    checkpointed, continued or, when it has finished, read back."""
    from ..methods.jepa import JEPA

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = PatchEmbed2D(image_size=tuple(images.shape[2:]), patch_size=patch_size,
                                 in_channels=images.shape[1], dim=dim)
        backbone = Backbone(tokenizer, vit_encoder("tiny", dim=dim, depth=depth, heads=heads))
        predictor = MaskTokenPredictor(in_dim=dim, dim=predictor_dim, depth=predictor_depth, heads=predictor_heads,
                                       pos_embed=tokenizer.position_embedding(predictor_dim))
        jepa = JEPA(backbone=backbone, predictor=predictor, masker=MultiBlockMasker(grid=tokenizer.grid),
                    target=EMATarget(backbone), objective=functools.partial(latent_regression, kind="l2"),
                    regularizer=functools.partial(vcr_loss, var_weight=var_weight, cov_weight=cov_weight))
    encoder = jepa.target.model
    record = finished_stage(ckpts, "image", {"image": jepa})
    if record is not None:
        return encoder.eval(), record
    g = torch.Generator().manual_seed(seed)
    bs = min(batch_size, len(images))
    draw = Batches(len(images), bs, g)
    steps = epoch_steps(len(images), bs, epochs)

    def loss(step):
        context_idx, target_idx = jepa.masker(bs, g)
        return jepa.loss({"x": images[next(draw)], "context_idx": context_idx, "target_idx": target_idx})

    params = [p for m in jepa.trainable_modules() for p in m.parameters()]
    record = train_steps(params, loss, steps=steps, lr=lr, label="image I-JEPA",
                         after_step=lambda s, n: jepa.update_target(s, n),
                         ckpts=ckpts, stage="image", modules={"image": jepa}, batches=draw)
    return encoder.eval(), record


def pretrain_text_encoder(ids: torch.Tensor, *, vocab_size: int, max_len: int, seed: int, dim: int, depth: int,
                          heads: int, mask_ratio: float, epochs: int, batch_size: int,
                          lr: float, ckpts: StageCheckpoints | None = None) -> tuple[TextTransformer, dict]:
    """Masked-token prediction on captions ``ids`` (n, L): a ``mask_ratio`` share of each batch's real tokens
    becomes [UNK] and a linear head over the vocabulary predicts the original ids (cross entropy). With
    ``ckpts`` the stage ``text`` is checkpointed, continued or read back."""
    ids = ids[(ids != 0).any(1)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tower = TextTransformer(vocab_size=vocab_size, max_len=max_len, dim=dim, depth=depth, heads=heads)
        head = nn.Linear(dim, vocab_size)
    record = finished_stage(ckpts, "text", {"text": tower, "text_head": head})
    if record is not None:
        return tower.eval(), record
    g = torch.Generator().manual_seed(seed + 1)
    bs = min(batch_size, len(ids))
    draw = Batches(len(ids), bs, g)

    def loss(step):
        x = ids[next(draw)]
        real = x != 0
        masked = (torch.rand(x.shape, generator=g) < mask_ratio) & real
        masked[0, real[0].nonzero()[0, 0]] = True                       # at least one masked token per batch
        h, _ = tower.tokens(x.masked_fill(masked, MASK_ID))
        return {"loss": F.cross_entropy(head(h[masked]), x[masked])}

    record = train_steps([*tower.parameters(), *head.parameters()], loss, steps=epoch_steps(len(ids), bs, epochs),
                         lr=lr, label="caption masked-token prediction", ckpts=ckpts, stage="text",
                         modules={"text": tower, "text_head": head}, batches=draw)
    return tower.eval(), record


def build_tijepa(cfg, image_encoder: Backbone, text_encoder: TextTransformer, *, seed: int,
                 freeze_encoders: bool = True, momentum=(0.996, 1.0), loss: str = "l2") -> TIJEPA:
    """The recipe's fusion, predictor and masker around the two encoders (copies of them), initialised from
    ``seed``: the same seed gives the same fusion and predictor whatever ``freeze_encoders``."""
    from ..config import part_kwargs
    from ..registry import build_part

    tok = image_encoder.tokenizer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fusion = build_part("fusion", cfg, part_kwargs(cfg, "fusion"), dim=image_encoder.dim,
                            text_dim=text_encoder.dim)
        pred_dim = part_kwargs(cfg, "predictor").get("dim", image_encoder.dim)
        predictor = build_part("predictor", cfg, part_kwargs(cfg, "predictor"), in_dim=image_encoder.dim,
                               pos_embed=tok.position_embedding(pred_dim))
        masker = build_part("masker", cfg, part_kwargs(cfg, "masker"), grid=tok.grid)
    if fusion is None or predictor is None or masker is None:
        raise UserError("a tijepa recipe needs fusion, predictor and masker sections (e.g. fusion.name="
                        "cross_attention, predictor.name=mask_token, masker.name=multiblock)")
    return TIJEPA(image_encoder=copy.deepcopy(image_encoder), text_encoder=copy.deepcopy(text_encoder),
                  fusion=fusion, predictor=predictor, masker=masker, momentum=momentum,
                  freeze_encoders=freeze_encoders, loss=loss)


def train_tijepa(method: TIJEPA, images: torch.Tensor, ids: torch.Tensor, *, seed: int, steps: int,
                 batch_size: int, lr: float, weight_decay: float = 0.05, warmup: float = 0.1,
                 grad_clip: float | None = 1.0, encoded: EncodedPairs | None = None,
                 ckpts: StageCheckpoints | None = None, stage: str = "tijepa") -> dict:
    """Train the fusion and predictor (and the encoders when unfrozen) on pairs (images (n, C, H, W),
    ids (n, K, L)); the target fusion follows by EMA after every step. ``encoded``: the frozen encoders'
    outputs of these pairs (:func:`encode_pairs`), read instead of running the encoders at every step (the
    same steps, masks and losses). With ``ckpts`` the stage is checkpointed, continued or read back."""
    record = finished_stage(ckpts, stage, {stage: method})
    if record is not None:
        return record
    method.attach(images, ids, encoded)
    g = torch.Generator().manual_seed(seed)
    bs = min(batch_size, len(images))
    draw = Batches(len(images), bs, g)

    def loss(step):
        return method.loss(method.make_batch(next(draw)[:, None], g))

    params = [p for m in method.trainable_modules() for p in m.parameters()]
    record = train_steps(params, loss, steps=steps, lr=lr, weight_decay=weight_decay, warmup=warmup,
                         grad_clip=grad_clip, label="TI-JEPA", after_step=method.update_target, track=("target_std",),
                         ckpts=ckpts, stage=stage, modules={stage: method}, batches=draw)
    method.attach(images, ids)                                # drop the reference to the encoded pairs
    return record


@torch.no_grad()
def side_features(method: TIJEPA, images: torch.Tensor, ids: torch.Tensor, masks: list, chunk: int = 256,
                  encoded: EncodedPairs | None = None):
    """Encoder outputs reused by every pair: h (n, N, D) all patches, z per mask set (n, Nc, D), and the
    caption tokens t (m, L, Dt) with keep (m, L), m = n K. ``encoded``: what the (frozen) encoders made of
    these images and captions already, so that only the context features per mask are computed."""
    method.eval()
    if encoded is None:
        encoded = encode_pairs(method.image_encoder, method.text_encoder, images, ids, chunk)
    n, length = len(encoded.h), encoded.t.shape[2]
    zs = [torch.cat([encoded.context(method.image_encoder, torch.arange(i, min(i + chunk, n)),
                                     ci.expand(min(chunk, n - i), -1)) for i in range(0, n, chunk)])
          for ci, _ in masks]
    return encoded.h, zs, encoded.t.reshape(-1, length, encoded.t.shape[-1]), encoded.keep.reshape(-1, length)


@torch.no_grad()
def pair_outputs(method: TIJEPA, feats, img: np.ndarray, cap: np.ndarray, masks: list,
                 chunk: int = 1024) -> tuple[np.ndarray | None, np.ndarray]:
    """For pairs (img[p], cap[p]): the energy averaged over ``masks`` (P,) (None when ``masks`` is empty)
    and the fused embedding (P, D)."""
    h, zs, t, keep = feats
    energies, embs = [], []
    for i in range(0, len(img), chunk):
        a, b = torch.as_tensor(img[i:i + chunk]), torch.as_tensor(cap[i:i + chunk])
        s = method.targets(h[a], t[b], keep[b])                                  # (P, N, D)
        if masks:
            energies.append(sum(method.energy(z[a], s, t[b], keep[b], ci, ti)
                                for z, (ci, ti) in zip(zs, masks)) / len(masks))
        embs.append(s.mean(1))
    return (torch.cat(energies).numpy() if masks else None), torch.cat(embs).numpy()


def fixed_masks(masker, n: int, seed: int) -> list:
    """``n`` seeded mask draws (context_idx (1, Nc), target_idx (1, M, Nt)) shared by every test pair."""
    g = torch.Generator().manual_seed(seed)
    return [masker(1, g) for _ in range(n)]


def matching_auc(sim: np.ndarray, owner: np.ndarray) -> float:
    """ROC AUC of telling matched from mismatched pairs by a score, over every (image, caption) test pair:
    sim (n_images, n_captions), owner (n_captions,) each caption's image."""
    from sklearn.metrics import roc_auc_score

    own = owner[None, :] == np.arange(sim.shape[0])[:, None]
    return float(roc_auc_score(own.ravel(), sim.ravel()))


def scored(sim: np.ndarray, owner: np.ndarray) -> dict:
    from .retrieval import retrieval_metrics

    return {"match_auc": matching_auc(sim, owner), **retrieval_metrics(sim, owner)}


def evaluate_tijepa(method: TIJEPA, pairs: Pairs, *, seed: int = 0, energy_masks: int = 2,
                    shared: dict | None = None) -> tuple[dict, dict, dict]:
    """Score every test (image, caption) pair by -energy and by a matching probe on the fused embedding.

    The probe is logistic regression on standardised fused embeddings of the training pairs: every caption of
    an image (matched, label 1) and as many captions of other training images (label 0). ``shared``: for
    variants over the same frozen encoders, {"train": ..., "test": ...} what the encoders made of each split
    (:func:`encode_pairs`); the test split's context features per mask set are kept in it for the next
    variant. Returns the rows (match AUC, retrieval), collapse diagnostics and the test matrices' shapes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..diagnostics.rankme import rankme

    train, test = ~pairs.test, pairs.test
    masks = fixed_masks(method.masker, energy_masks, seed)
    rng = np.random.default_rng(seed)
    shared = {} if shared is None else shared
    # training pairs for the probe: only their fused embeddings are read, no energy
    n, k, _ = pairs.b[train].shape
    feats = side_features(method, pairs.a[train], pairs.b[train], [], encoded=shared.get("train"))
    img_pos = np.repeat(np.arange(n), k)
    img_neg = (img_pos + rng.integers(1, n, len(img_pos))) % n                  # another image, same caption
    cap = np.arange(n * k)
    _, e_pos = pair_outputs(method, feats, img_pos, cap, [])
    _, e_neg = pair_outputs(method, feats, img_neg, cap, [])
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    probe.fit(np.concatenate([e_pos, e_neg]), np.r_[np.ones(len(e_pos)), np.zeros(len(e_neg))])
    # every test pair
    n_te, k_te, _ = pairs.b[test].shape
    key = ("test_features", tuple(tuple(m.flatten().tolist()) for pair in masks for m in pair))
    feats = shared.get(key) or side_features(method, pairs.a[test], pairs.b[test], masks, encoded=shared.get("test"))
    if "test" in shared:
        shared[key] = feats
    img, cap = np.divmod(np.arange(n_te * n_te * k_te), n_te * k_te)
    energy, emb = pair_outputs(method, feats, img, cap, masks)
    owner = np.repeat(np.arange(n_te), k_te)
    e_mat = energy.reshape(n_te, n_te * k_te)
    p_mat = probe.decision_function(emb).reshape(n_te, n_te * k_te)
    matched = owner[None, :] == np.arange(n_te)[:, None]
    fused = torch.as_tensor(emb.reshape(n_te, n_te * k_te, -1)[matched])        # (n_te * k_te, D) matched pairs
    pooled = feats[0].mean(1)
    diag = {"rankme_fused": rankme(fused), "rankme_image_encoder": rankme(pooled),
            "fused_std": float(fused.std(0).mean()), "image_std": float(pooled.std(0).mean()),
            "energy_matched": float(e_mat[matched].mean()), "energy_mismatched": float(e_mat[~matched].mean())}
    rows = {"energy": scored(-e_mat, owner), "energy_centred": scored(-double_centre(e_mat), owner),
            "probe": scored(p_mat, owner)}
    return rows, diag, {"pairs": int(matched.size)}


def double_centre(m: np.ndarray) -> np.ndarray:
    """m minus its row means and column means, plus its overall mean: what is left of each pair's score once
    the image's and the caption's own levels (how hard the image is to predict, how unusual the caption is) are
    removed; a score that is a sum of an image term and a caption term becomes 0 everywhere."""
    return m - m.mean(1, keepdims=True) - m.mean(0, keepdims=True) + m.mean()


def pooled_features(encoded: EncodedPairs) -> tuple[np.ndarray, np.ndarray]:
    """Mean-pooled patch features (n, D) and caption features (n, K, Dt) of encoded pairs, as the encoders pool
    them (the text tower averages its real tokens; an empty caption, its padding)."""
    w = (encoded.keep | ~encoded.keep.any(-1, keepdim=True)).unsqueeze(-1).to(encoded.t.dtype)
    txt = (encoded.t * w).sum(2) / w.sum(2)
    return encoded.h.mean(1).numpy().astype(np.float64), txt.numpy().astype(np.float64)


def frozen_cca_row(train: EncodedPairs, test: EncodedPairs) -> dict:
    """The frozen encoders alone: mean-pooled patch and caption features, CCA fitted on the training pairs,
    cosine in the canonical space."""
    from .baselines import RawFeatures, cca_embeddings
    from .retrieval import cosine_similarity

    (a_tr, b_tr), (a_te, b_te) = pooled_features(train), pooled_features(test)
    a_c, b_c = cca_embeddings(RawFeatures(a_tr, a_te, b_tr, b_te))
    owner = np.repeat(np.arange(len(a_c)), b_c.shape[1])
    return scored(cosine_similarity(a_c, b_c.reshape(-1, b_c.shape[-1])), owner)


def raw_cca_row(pairs: Pairs, seed: int = 0) -> dict:
    """Pixels and TF-IDF, SVD-reduced, CCA (the paired family's classical baseline)."""
    from .baselines import cca_embeddings, raw_features
    from .retrieval import cosine_similarity

    a_c, b_c = cca_embeddings(raw_features(pairs, seed=seed))
    owner = np.repeat(np.arange(len(a_c)), b_c.shape[1])
    return scored(cosine_similarity(a_c, b_c.reshape(-1, b_c.shape[-1])), owner)


ROW_NAMES = {"tijepa_energy": "TI-JEPA, energy", "tijepa_energy_centred": "TI-JEPA, centred energy",
             "tijepa_probe": "TI-JEPA, fused-embedding probe",
             "random_energy": "random-init cross-attention, energy",
             "random_energy_centred": "random-init cross-attention, centred energy",
             "random_probe": "random-init cross-attention, probe",
             "unfrozen_energy": "TI-JEPA, encoders unfrozen, energy",
             "unfrozen_energy_centred": "TI-JEPA, encoders unfrozen, centred energy",
             "unfrozen_probe": "TI-JEPA, encoders unfrozen, probe",
             "frozen_cca": "frozen encoders, CCA cosine", "raw_cca": "pixels + TF-IDF, CCA cosine"}
COLS = ("match_auc", "a2b_r1", "a2b_r5", "a2b_r10", "a2b_medr", "b2a_r1", "b2a_r5", "b2a_r10", "b2a_medr")


def format_tijepa_table(summary: dict) -> str:
    """The matching / retrieval comparison as a plain-text table, then the collapse diagnostics."""
    lines = [f"\n{summary['recipe']} on {summary['data']}: {summary['n_train']} train / {summary['n_test']} test "
             f"images, every test image x caption pair scored",
             f"{'score':<40} " + " ".join(f"{c:>9}" for c in COLS)]
    for key, r in summary["results"].items():
        cells = " ".join(f"{r[c]:>9.1f}" if c.endswith("medr") else f"{r[c]:>9.3f}" for c in COLS)
        lines.append(f"{ROW_NAMES.get(key, key):<40} {cells}")
    lines.append("(match_auc = ROC AUC of matched vs mismatched test pairs; a2b = image queries captions, b2a = "
                 "caption queries images; r@k recall at k, medr median rank)")
    for name, d in summary["diagnostics"].items():
        lines.append(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in d.items()))
    return "\n".join(lines)


def run_tijepa(cfg, *, out: str | None = None, seed: int = 0, echo=print, write: bool = True,
               resume: bool = False) -> dict:
    """``polyjepa pretrain`` for a TI-JEPA recipe: pretrain and freeze the encoders, train the fusion, evaluate
    against the baselines; returns the summary.

    With ``write`` the run directory is made first (config.yaml, run.json) and every stage (image encoder,
    text encoder, each fusion variant) is checkpointed every ``train.checkpoint_every`` steps and when it ends;
    ``resume`` (``polyjepa pretrain --resume RUN_DIR``, ``out`` the run directory) reads the finished stages
    back, continues the one in training from its step and evaluates: the weights and losses are those of a
    run that never stopped (unless the resume changed ``train.lr`` or the length of the fusion training).
    """
    from ..config import DataConfig, EvalConfig, TrainConfig, dataclass_from, part_kwargs
    from ..registry import build_part
    from .run import load_run_pairs

    t_start = time.time()
    t = dataclass_from(cfg, "train", TrainConfig)
    if t.threads:
        torch.set_num_threads(int(t.threads))
    opts = tijepa_options(**part_kwargs(cfg, "method"))
    if dataclass_from(cfg, "data", DataConfig).source is None:
        raise UserError("no image-caption pairs given: pass --data PATH (an .npz with images, captions and split)")
    if dataclass_from(cfg, "data", DataConfig).stream:
        raise UserError("TI-JEPA reads its image-caption pairs into memory (its encoders train in stages on the "
                        "whole image array): drop data.stream")
    pairs = load_run_pairs(cfg)
    if pairs.side_a != "image":
        raise UserError(f"TI-JEPA fuses captions into image patches: the data's side a is {pairs.side_a}, not "
                        f"images; bring an .npz with an images column")
    image_opts = build_part("image_encoder", cfg, part_kwargs(cfg, "image_encoder")) or ijepa_image_encoder()
    text_opts = build_part("text_encoder", cfg, part_kwargs(cfg, "text_encoder")) or mlm_text_encoder()
    name = str(cfg.name)
    run_dir, ckpts = open_stage_run(cfg, out=out, name=name, seed=seed, resume=resume, write=write, echo=echo,
                                    info={"data": str(cfg.data.source), "input_shape": list(pairs.a.shape[1:]),
                                          "tijepa": True})
    train = ~pairs.test
    images = torch.as_tensor(pairs.a[train])
    ids = torch.as_tensor(pairs.b[train])
    echo(f"polyjepa: {cfg.name} on {pairs.name}: {pairs.n_train} train / {int(pairs.test.sum())} test images x "
         f"{pairs.b.shape[1]} captions, images {tuple(pairs.a.shape[1:])}, captions of {pairs.meta['max_len']} "
         f"tokens, vocabulary {pairs.meta['vocab_size']}")
    clock = {"start": time.time()}
    seconds: dict[str, float] = {}                       # wall time of each part of this command

    def lap(part: str) -> None:
        now = time.time()
        seconds[part] = round(now - clock["start"], 2)
        clock["start"] = now

    image_encoder, image_rec = pretrain_image_encoder(images, seed=seed, ckpts=ckpts, **image_opts)
    lap("image_encoder")
    echo(f"  image encoder (I-JEPA, {image_rec['steps']} steps): loss {image_rec['first_loss']:.3f} -> "
         f"{image_rec['last_loss']:.3f}")
    text_encoder, text_rec = pretrain_text_encoder(ids.reshape(-1, ids.shape[-1]), vocab_size=pairs.meta["vocab_size"],
                                                   max_len=pairs.meta["max_len"], seed=seed, ckpts=ckpts,
                                                   **text_opts)
    lap("text_encoder")
    echo(f"  text encoder (masked tokens, {text_rec['steps']} steps): loss {text_rec['first_loss']:.3f} -> "
         f"{text_rec['last_loss']:.3f}")
    steps = int(t.max_steps) if t.max_steps else epoch_steps(len(images), min(t.batch_size, len(images)),
                                                               int(t.max_epochs))
    train_opts = dict(seed=seed, steps=steps, batch_size=int(t.batch_size), lr=float(t.lr),
                      weight_decay=float(t.weight_decay[0]), warmup=float(t.warmup), grad_clip=t.grad_clip)
    # the frozen encoders' outputs, computed once for every step and every score of the frozen variants
    shared = {"train": encode_pairs(image_encoder, text_encoder, images, ids),
              "test": encode_pairs(image_encoder, text_encoder, pairs.a[pairs.test], pairs.b[pairs.test])}
    lap("encode_once")
    variants = {"tijepa": opts["freeze_encoders"]}                       # name -> encoders frozen
    if opts["ablation"] and opts["freeze_encoders"]:
        variants["unfrozen"] = False
    results, diagnostics, records, models = {}, {}, {}, {}
    build = functools.partial(build_tijepa, cfg, image_encoder, text_encoder, seed=seed, momentum=opts["momentum"],
                              loss=opts["loss"])
    for name, frozen in variants.items():
        method = build(freeze_encoders=frozen)
        records[name] = train_tijepa(method, images, ids, **train_opts, encoded=shared["train"] if frozen else None,
                                     ckpts=ckpts, stage=name)
        lap(f"train_{name}")
        rec = records[name]
        echo(f"  {ROW_NAMES[name + '_energy'].rsplit(',', 1)[0]} ({steps} steps): loss {rec['first_loss']:.4f} -> "
             f"{rec['last_loss']:.4f}")
        rows, diagnostics[name], _ = evaluate_tijepa(method, pairs, seed=seed, energy_masks=opts["energy_masks"],
                                                     shared=shared if frozen else None)
        results.update({f"{name}_{k}": v for k, v in rows.items()})
        diagnostics[name].update(final_loss=records[name]["last_loss"],
                                 final_target_std=records[name]["final_target_std"])
        models[name] = method
        lap(f"evaluate_{name}")
    if dataclass_from(cfg, "eval", EvalConfig).baselines:
        rows, diagnostics["random"], _ = evaluate_tijepa(build(freeze_encoders=True), pairs, seed=seed,
                                                         energy_masks=opts["energy_masks"], shared=shared)
        results.update({f"random_{k}": v for k, v in rows.items()})
        results["frozen_cca"] = frozen_cca_row(shared["train"], shared["test"])
        results["raw_cca"] = raw_cca_row(pairs, seed)
        lap("baselines")
    method = models["tijepa"]
    summary = {"schema": SCHEMA, "recipe": str(cfg.name), "data": str(cfg.data.source), "seed": seed,
               "n_train": pairs.n_train, "n_test": int(pairs.test.sum()), "captions_per_image": int(pairs.b.shape[1]),
               "built": built_config(method, pairs), "pretraining": {"image": image_rec, "text": text_rec},
               "training": records, "seconds": time.time() - t_start, "seconds_by_part": seconds, "results": results,
               "diagnostics": diagnostics}
    table = format_tijepa_table(summary)
    if run_dir is not None:
        from ..runner import write_run_files

        summary["run_dir"] = str(run_dir)
        write_run_files(run_dir, summary, {"model": method}, f"# {name}\n\n```\n{table}\n```\n")
    echo(table)
    return summary


def built_config(method: TIJEPA, pairs: Pairs) -> dict:
    """What was built, read from the model."""
    enc, tok = method.image_encoder.encoder, method.image_encoder.tokenizer
    p = method.predictor
    return {"image_encoder": f"ViT {enc.depth} blocks x {enc.dim}, {enc.heads} heads, patch {tok.patch_size} on "
                             f"{tuple(pairs.a.shape[1:])} ({tok.grid[0]}x{tok.grid[1]} patches)",
            "text_encoder": f"text transformer {len(method.text_encoder.blocks)} blocks x {method.text_encoder.dim}, "
                            f"vocabulary {method.text_encoder.vocab_size}, max_len {method.text_encoder.max_len}",
            "fusion": f"{method.fusion.depth} cross-attention layer(s) x {method.fusion.dim}, {method.fusion.heads} "
                      f"heads (text width {method.fusion.text_dim})",
            "predictor": f"{len(p.blocks)} blocks x {p.embed.out_features}",
            "masker": repr(method.masker),
            "frozen_encoders": method.freeze_encoders,
            "trainable_parameters": sum(q.numel() for m in method.trainable_modules() for q in m.parameters()
                                        if q.requires_grad)}


run_tijepa.resumable = True   # polyjepa pretrain --resume hands its run directories back to this runner

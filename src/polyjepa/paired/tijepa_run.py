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
from ..train.schedules import set_lr, warmup_cosine_factor
from .data import Pairs
from .text import TextTransformer
from .tijepa import TIJEPA, CrossAttentionFusion

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
                after_step=None, label: str = "") -> dict:
    """AdamW over ``steps`` with linear warm-up and cosine decay; ``loss_fn(step) -> {"loss", ...}``.
    Returns the mean loss of the first and last tenth of the steps."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    losses = []
    for step in range(steps):
        set_lr(opt, lr * warmup_cosine_factor(step, steps, int(warmup * steps)))
        out = loss_fn(step)
        if not torch.isfinite(out["loss"]):
            raise UserError(f"{label}: the loss became {float(out['loss'])} at step {step}: lower the learning rate")
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if after_step is not None:
            after_step(step, steps)
        losses.append(float(out["loss"].detach()))
    k = max(1, steps // 10)
    return {"steps": steps, "first_loss": float(np.mean(losses[:k])), "last_loss": float(np.mean(losses[-k:]))}


def batch_indices(n: int, batch_size: int, generator: torch.Generator):
    """Endless (batch_size,) index tensors: shuffled epochs, the last partial batch dropped."""
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i:i + batch_size]


def epoch_steps(n: int, batch_size: int, epochs: int) -> int:
    return max(1, n // batch_size) * epochs


def pretrain_image_encoder(images: torch.Tensor, *, seed: int, patch_size: int, dim: int, depth: int, heads: int,
                           predictor_dim: int, predictor_depth: int, predictor_heads: int, epochs: int,
                           batch_size: int, lr: float, var_weight: float, cov_weight: float) -> tuple[Backbone, dict]:
    """I-JEPA (the library's JEPA method, multi-block masks, EMA target, L2 latent loss, VCR) on ``images``
    (n, C, H, W); returns the EMA encoder and the training record."""
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
    g = torch.Generator().manual_seed(seed)
    bs = min(batch_size, len(images))
    draw = batch_indices(len(images), bs, g)
    steps = epoch_steps(len(images), bs, epochs)

    def loss(step):
        context_idx, target_idx = jepa.masker(bs, g)
        return jepa.loss({"x": images[next(draw)], "context_idx": context_idx, "target_idx": target_idx})

    params = [p for m in jepa.trainable_modules() for p in m.parameters()]
    record = train_steps(params, loss, steps=steps, lr=lr, label="image I-JEPA",
                         after_step=lambda s, n: jepa.update_target(s, n))
    return jepa.target.model.eval(), record


def pretrain_text_encoder(ids: torch.Tensor, *, vocab_size: int, max_len: int, seed: int, dim: int, depth: int,
                          heads: int, mask_ratio: float, epochs: int, batch_size: int,
                          lr: float) -> tuple[TextTransformer, dict]:
    """Masked-token prediction on captions ``ids`` (n, L): a ``mask_ratio`` share of each batch's real tokens
    becomes [UNK] and a linear head over the vocabulary predicts the original ids (cross entropy)."""
    ids = ids[(ids != 0).any(1)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tower = TextTransformer(vocab_size=vocab_size, max_len=max_len, dim=dim, depth=depth, heads=heads)
        head = nn.Linear(dim, vocab_size)
    g = torch.Generator().manual_seed(seed + 1)
    bs = min(batch_size, len(ids))
    draw = batch_indices(len(ids), bs, g)

    def loss(step):
        x = ids[next(draw)]
        real = x != 0
        masked = (torch.rand(x.shape, generator=g) < mask_ratio) & real
        masked[0, real[0].nonzero()[0, 0]] = True                       # at least one masked token per batch
        h, _ = tower.tokens(x.masked_fill(masked, MASK_ID))
        return {"loss": F.cross_entropy(head(h[masked]), x[masked])}

    record = train_steps([*tower.parameters(), *head.parameters()], loss, steps=epoch_steps(len(ids), bs, epochs),
                         lr=lr, label="caption masked-token prediction")
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
                 batch_size: int, lr: float, weight_decay: float = 0.05, warmup: float = 0.1) -> dict:
    """Train the fusion and predictor (and the encoders when unfrozen) on pairs (images (n, C, H, W),
    ids (n, K, L)); the target fusion follows by EMA after every step."""
    method.attach(images, ids)
    g = torch.Generator().manual_seed(seed)
    bs = min(batch_size, len(images))
    draw = batch_indices(len(images), bs, g)
    stds = []

    def loss(step):
        out = method.loss(method.make_batch(next(draw)[:, None], g))
        stds.append(float(out["target_std"]))
        return out

    params = [p for m in method.trainable_modules() for p in m.parameters()]
    record = train_steps(params, loss, steps=steps, lr=lr, weight_decay=weight_decay, warmup=warmup, label="TI-JEPA",
                         after_step=method.update_target)
    return {**record, "final_target_std": float(np.mean(stds[-max(1, steps // 10):]))}


@torch.no_grad()
def side_features(method: TIJEPA, images: torch.Tensor, ids: torch.Tensor, masks: list, chunk: int = 256):
    """Encoder outputs reused by every pair: h (n, N, D) all patches, z per mask set (n, Nc, D), and the
    caption tokens t (m, L, Dt) with keep (m, L)."""
    method.eval()
    h = torch.cat([method.image_encoder(images[i:i + chunk]) for i in range(0, len(images), chunk)])
    zs = [torch.cat([method.image_encoder(images[i:i + chunk], keep_idx=ci.expand(len(images[i:i + chunk]), -1))
                     for i in range(0, len(images), chunk)]) for ci, _ in masks]
    parts = [method.text_tokens(ids[i:i + chunk]) for i in range(0, len(ids), chunk)]
    return h, zs, torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


@torch.no_grad()
def pair_outputs(method: TIJEPA, feats, img: np.ndarray, cap: np.ndarray, masks: list,
                 chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """For pairs (img[p], cap[p]): the energy averaged over ``masks`` (P,) and the fused embedding (P, D)."""
    h, zs, t, keep = feats
    energies, embs = [], []
    for i in range(0, len(img), chunk):
        a, b = torch.as_tensor(img[i:i + chunk]), torch.as_tensor(cap[i:i + chunk])
        s = method.targets(h[a], t[b], keep[b])                                  # (P, N, D)
        e = sum(method.energy(z[a], s, t[b], keep[b], ci, ti) for z, (ci, ti) in zip(zs, masks)) / len(masks)
        energies.append(e)
        embs.append(s.mean(1))
    return torch.cat(energies).numpy(), torch.cat(embs).numpy()


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


def evaluate_tijepa(method: TIJEPA, pairs: Pairs, *, seed: int = 0, energy_masks: int = 2) -> tuple[dict, dict, dict]:
    """Score every test (image, caption) pair by -energy and by a matching probe on the fused embedding.

    The probe is logistic regression on standardised fused embeddings of the training pairs: every caption of
    an image (matched, label 1) and as many captions of other training images (label 0). Returns the two rows
    (match AUC, retrieval), collapse diagnostics and the test matrices' shapes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..diagnostics.rankme import rankme

    train, test = ~pairs.test, pairs.test
    masks = fixed_masks(method.masker, energy_masks, seed)
    rng = np.random.default_rng(seed)
    # training pairs for the probe
    a_tr = torch.as_tensor(pairs.a[train])
    n, k, length = pairs.b[train].shape
    feats = side_features(method, a_tr, torch.as_tensor(pairs.b[train].reshape(-1, length)), masks)
    img_pos = np.repeat(np.arange(n), k)
    img_neg = (img_pos + rng.integers(1, n, len(img_pos))) % n                  # another image, same caption
    cap = np.arange(n * k)
    _, e_pos = pair_outputs(method, feats, img_pos, cap, masks[:1])
    _, e_neg = pair_outputs(method, feats, img_neg, cap, masks[:1])
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    probe.fit(np.concatenate([e_pos, e_neg]), np.r_[np.ones(len(e_pos)), np.zeros(len(e_neg))])
    # every test pair
    n_te, k_te, _ = pairs.b[test].shape
    feats = side_features(method, torch.as_tensor(pairs.a[test]), torch.as_tensor(pairs.b[test].reshape(-1, length)),
                          masks)
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


def frozen_cca_row(image_encoder: Backbone, text_encoder: TextTransformer, pairs: Pairs) -> dict:
    """The frozen encoders alone: mean-pooled patch and caption features, CCA fitted on the training pairs,
    cosine in the canonical space."""
    from .baselines import RawFeatures, cca_embeddings
    from .retrieval import cosine_similarity

    train, test = ~pairs.test, pairs.test

    @torch.no_grad()
    def img(x):
        return torch.cat([image_encoder(torch.as_tensor(x[i:i + 256])).mean(1) for i in range(0, len(x), 256)]).numpy()

    @torch.no_grad()
    def txt(b):
        flat = torch.as_tensor(b.reshape(-1, b.shape[-1]))
        out = torch.cat([text_encoder(flat[i:i + 512]) for i in range(0, len(flat), 512)]).numpy()
        return out.reshape(b.shape[0], b.shape[1], -1).astype(np.float64)

    raw = RawFeatures(img(pairs.a[train]).astype(np.float64), img(pairs.a[test]).astype(np.float64),
                      txt(pairs.b[train]), txt(pairs.b[test]))
    a_c, b_c = cca_embeddings(raw)
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


def run_tijepa(cfg, *, out: str | None = None, seed: int = 0, echo=print, write: bool = True) -> dict:
    """``polyjepa pretrain`` for a TI-JEPA recipe: pretrain and freeze the encoders, train the fusion, evaluate
    against the baselines; returns the summary (and writes the run directory)."""
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
    pairs = load_run_pairs(cfg)
    if pairs.side_a != "image":
        raise UserError(f"TI-JEPA fuses captions into image patches: the data's side a is {pairs.side_a}, not "
                        f"images; bring an .npz with an images column")
    image_opts = build_part("image_encoder", cfg, part_kwargs(cfg, "image_encoder")) or ijepa_image_encoder()
    text_opts = build_part("text_encoder", cfg, part_kwargs(cfg, "text_encoder")) or mlm_text_encoder()
    train = ~pairs.test
    images = torch.as_tensor(pairs.a[train])
    ids = torch.as_tensor(pairs.b[train])
    echo(f"polyjepa: {cfg.name} on {pairs.name}: {pairs.n_train} train / {int(pairs.test.sum())} test images x "
         f"{pairs.b.shape[1]} captions, images {tuple(pairs.a.shape[1:])}, captions of {pairs.meta['max_len']} "
         f"tokens, vocabulary {pairs.meta['vocab_size']}")
    image_encoder, image_rec = pretrain_image_encoder(images, seed=seed, **image_opts)
    echo(f"  image encoder (I-JEPA, {image_rec['steps']} steps): loss {image_rec['first_loss']:.3f} -> "
         f"{image_rec['last_loss']:.3f}")
    text_encoder, text_rec = pretrain_text_encoder(ids.reshape(-1, ids.shape[-1]), vocab_size=pairs.meta["vocab_size"],
                                                   max_len=pairs.meta["max_len"], seed=seed, **text_opts)
    echo(f"  text encoder (masked tokens, {text_rec['steps']} steps): loss {text_rec['first_loss']:.3f} -> "
         f"{text_rec['last_loss']:.3f}")
    steps = int(t.max_steps) if t.max_steps else epoch_steps(len(images), min(t.batch_size, len(images)),
                                                               int(t.max_epochs))
    train_opts = dict(seed=seed, steps=steps, batch_size=int(t.batch_size), lr=float(t.lr),
                      weight_decay=float(t.weight_decay[0]), warmup=float(t.warmup))
    variants = {"tijepa": opts["freeze_encoders"]}                       # name -> encoders frozen
    if opts["ablation"] and opts["freeze_encoders"]:
        variants["unfrozen"] = False
    results, diagnostics, records, models = {}, {}, {}, {}
    build = functools.partial(build_tijepa, cfg, image_encoder, text_encoder, seed=seed, momentum=opts["momentum"],
                              loss=opts["loss"])
    for name, frozen in variants.items():
        method = build(freeze_encoders=frozen)
        records[name] = train_tijepa(method, images, ids, **train_opts)
        rec = records[name]
        echo(f"  {ROW_NAMES[name + '_energy'].rsplit(',', 1)[0]} ({steps} steps): loss {rec['first_loss']:.4f} -> "
             f"{rec['last_loss']:.4f}")
        rows, diagnostics[name], _ = evaluate_tijepa(method, pairs, seed=seed, energy_masks=opts["energy_masks"])
        results.update({f"{name}_{k}": v for k, v in rows.items()})
        diagnostics[name].update(final_loss=records[name]["last_loss"],
                                 final_target_std=records[name]["final_target_std"])
        models[name] = method
    if dataclass_from(cfg, "eval", EvalConfig).baselines:
        rows, diagnostics["random"], _ = evaluate_tijepa(build(freeze_encoders=True), pairs, seed=seed,
                                                         energy_masks=opts["energy_masks"])
        results.update({f"random_{k}": v for k, v in rows.items()})
        results["frozen_cca"] = frozen_cca_row(image_encoder, text_encoder, pairs)
        results["raw_cca"] = raw_cca_row(pairs, seed)
    method = models["tijepa"]
    summary = {"schema": SCHEMA, "recipe": str(cfg.name), "data": str(cfg.data.source), "seed": seed,
               "n_train": pairs.n_train, "n_test": int(pairs.test.sum()), "captions_per_image": int(pairs.b.shape[1]),
               "built": built_config(method, pairs), "pretraining": {"image": image_rec, "text": text_rec},
               "training": records, "seconds": time.time() - t_start, "results": results,
               "diagnostics": diagnostics}
    table = format_tijepa_table(summary)
    if write:
        from ..runner import write_run

        summary["run_dir"] = str(write_run(out, str(cfg.name), cfg, summary, {"model": method},
                                           f"# {cfg.name}\n\n```\n{table}\n```\n"))
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

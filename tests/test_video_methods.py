import json

import pytest
import torch

from polyjepa.build import build_method
from polyjepa.config import load_recipe
from polyjepa.data.batches import step_generator
from polyjepa.errors import UserError
from polyjepa.models.transformer import gather_tokens
from polyjepa.runner import pretrain

SMALL = ["encoder.size=micro", "encoder.dim=32", "encoder.depth=1", "encoder.heads=2", "predictor.dim=16",
         "predictor.depth=1", "predictor.heads=2", "tokenizer.patch_size=8"]
SHAPE = (1, 8, 16, 16)
DATA = ["data.frame_size=16", "data.digit_size=8", "data.n_train=96", "data.n_test=48"]
RUN = ["train.batch_size=32", "train.max_steps=6", "train.log_every=2", "train.monitor_every=3",
       "train.checkpoint_every=3", "eval.monitor_samples=32"]


def _method(recipe, *over):
    return build_method(load_recipe(recipe, SMALL + list(over)), SHAPE, seed=0)


def test_vjepa_loss_is_the_mean_over_mask_pairs_and_trains_the_right_parts():
    m = _method("vjepa-moving-digits")
    x = torch.randn(4, *SHAPE)
    batch = m.make_batch(x, step_generator(0, 0), 0.0)
    assert len(batch["context_idx"]) == 2
    out = m.loss(batch)
    h = m.target(x)
    ref = []
    for k, (c, t) in enumerate(zip(batch["context_idx"], batch["target_idx"])):
        p = m.predictor(m.backbone(x, keep_idx=c), c, t, mask_index=k)
        l1 = (p - gather_tokens(h, t)).abs().mean()
        ref.append(l1 + m.regularizer(m.backbone(x, keep_idx=c).mean(1))["loss"])
    torch.testing.assert_close(out["loss"], torch.stack(ref).mean())
    out["loss"].backward()
    for mod in m.trainable_modules():
        for name, p in mod.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad is None for p in m.target.parameters())


@pytest.mark.parametrize("latent, dim", [("none", 0), ("sampled", 3), ("inferred", 3)])
def test_vjvcr_predicts_the_future_from_the_past(latent, dim):
    m = _method("vjvcr-moving-digits", f"method.latent={latent}", f"method.latent_dim={dim}")
    assert m.context_idx.tolist() == [list(range(8))] and m.target_idx.tolist() == [list(range(8, 16))]
    x = torch.randn(6, *SHAPE)
    batch = m.make_batch(x, step_generator(0, 0), 0.0)
    assert ("noise" in batch) == (dim > 0)
    out = m.loss(batch)
    # the future's features do not depend on the past frames, the prediction does
    x2 = x.clone()
    x2[:, :, :4] += 1.0
    with torch.no_grad():
        tok, tok2 = m.backbone.tokenizer(x), m.backbone.tokenizer(x2)
        torch.testing.assert_close(m.backbone.encoder(tok, m.target_idx.expand(6, -1)),
                                   m.backbone.encoder(tok2, m.target_idx.expand(6, -1)))
        # a whole clip is embedded as trained: past and future encoded apart, then concatenated
        whole = m.backbone(x)
        torch.testing.assert_close(whole, torch.cat([m.backbone.encoder(tok, m.context_idx.expand(6, -1)),
                                                     m.backbone.encoder(tok, m.target_idx.expand(6, -1))], 1))
        assert m.embed(x, pool="time+grid:2").shape == (6, 32 * 9)
    # independent computation of the loss
    zp = m.backbone.encoder(m.backbone.tokenizer(x), m.context_idx.expand(6, -1))
    zf = m.backbone.encoder(m.backbone.tokenizer(x), m.target_idx.expand(6, -1))
    cond, kl = None, 0.0
    if latent == "sampled":
        cond = batch["noise"]
    elif latent == "inferred":
        mu, logvar = m.infer(zf.mean(1)).chunk(2, 1)
        cond = mu + (0.5 * logvar).exp() * batch["noise"]
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()
    p = m.predictor(zp, m.context_idx.expand(6, -1), m.target_idx.expand(6, -1)[:, None], cond=cond)
    reg = (m.regularizer(zp.reshape(-1, 32))["loss"] + m.regularizer(zf.reshape(-1, 32))["loss"]) / 2  # reg_on: tokens
    torch.testing.assert_close(out["loss"], (p[:, 0] - zf).pow(2).mean() + m.latent_kl * kl + reg)
    out["loss"].backward()
    for mod in m.trainable_modules():
        for name, prm in mod.named_parameters():
            assert prm.grad is not None and torch.isfinite(prm.grad).all(), name


@pytest.mark.parametrize("reg_on, stop_grad", [("tokens", True), ("pooled", False), ("tokens", False)])
def test_vjvcr_regulariser_placement_and_gradient_into_the_future(reg_on, stop_grad):
    m = _method("vjvcr-moving-digits", f"method.reg_on={reg_on}", f"method.stop_grad={str(stop_grad).lower()}")
    x = torch.randn(5, *SHAPE)
    out = m.loss(m.make_batch(x, step_generator(0, 0), 0.0))
    out["loss"].backward()
    got = [q.grad.clone() for q in m.backbone.parameters()]
    m.zero_grad()
    # independent: the same loss written out, the future detached only when stop_grad
    zp = m.backbone.encoder(m.backbone.tokenizer(x), m.context_idx.expand(5, -1))
    zf = m.backbone.encoder(m.backbone.tokenizer(x), m.target_idx.expand(5, -1))
    p = m.predictor(zp, m.context_idx.expand(5, -1), m.target_idx.expand(5, -1)[:, None])[:, 0]
    target = zf.detach() if stop_grad else zf
    flat = (lambda z: z.mean(1)) if reg_on == "pooled" else (lambda z: z.reshape(-1, z.shape[-1]))
    ref = (p - target).pow(2).mean() + (m.regularizer(flat(zp))["loss"] + m.regularizer(flat(zf))["loss"]) / 2
    torch.testing.assert_close(out["loss"], ref)
    ref.backward()
    for a, b in zip(got, m.backbone.parameters()):
        torch.testing.assert_close(a, b.grad, rtol=1e-4, atol=1e-6)


def test_vjvcr_argument_errors():
    with pytest.raises(UserError, match="reg_on"):
        _method("vjvcr-moving-digits", "method.reg_on=clips")
    with pytest.raises(UserError, match=r"4 tubelet slots\): set method.context_slots to 2"):
        _method("vjvcr-moving-digits", "method.context_slots=4")
    with pytest.raises(UserError, match="latent_dim"):
        _method("vjvcr-moving-digits", "method.latent=sampled")


@pytest.mark.parametrize("recipe", ["vjepa-moving-digits", "vjvcr-moving-digits"])
def test_recipe_pretrains_into_a_run_directory(tmp_path, recipe):
    s = pretrain(recipe, out=str(tmp_path / "run"), overrides=SMALL + DATA + RUN, progress=False,
                 echo=lambda *_: None)
    run = tmp_path / "run"
    for f in ("config.yaml", "run.json", "metrics.csv", "summary.json", "encoder.safetensors"):
        assert (run / f).exists(), f
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["n_train"] == 96 and summary["n_test"] == 48
    assert 0 <= summary["probe"]["linear"]["accuracy"] <= 1 and "random_init" in summary["baselines"]
    assert summary["embedding"]["dim"] == 32 * (1 + 4 + 4)  # time+grid:2 on a 4-slot grid
    # the encoder that was evaluated: V-JEPA's EMA target; VJ-VCR has no teacher, only its one online encoder
    assert summary["embedding"]["encoder"] == {"vjepa-moving-digits": "target", "vjvcr-moving-digits": "online"}[recipe]
    assert s["final_loss"] is not None and json.loads((run / "run.json").read_text())["input_shape"] == [1, 8, 16, 16]


def test_clips_with_too_few_frames_are_a_user_error(tmp_path):
    with pytest.raises(UserError, match="tubelet_size"):
        pretrain("vjepa-moving-digits", out=str(tmp_path / "r"), overrides=SMALL + DATA + RUN + ["data.frames=3"],
                 progress=False, echo=lambda *_: None)
    with pytest.raises(UserError, match="frames >= 2"):
        pretrain("vjepa-moving-digits", out=str(tmp_path / "r"), overrides=SMALL + DATA + RUN + ["data.frames=1"],
                 progress=False, echo=lambda *_: None)


def test_image_data_with_a_video_recipe_says_what_is_wrong(tmp_path):
    with pytest.raises(UserError, match="frames"):
        pretrain("vjepa-moving-digits", out=str(tmp_path / "r"),
                 overrides=SMALL + RUN + ["data.loader=images", "data.source=digits"], progress=False,
                 echo=lambda *_: None)


def test_a_recipe_on_your_own_clip_array(tmp_path):
    import numpy as np
    from omegaconf import OmegaConf

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (64, 8, 1, 16, 16), dtype=np.uint8)  # (n, frames, channels, height, width)
    np.savez(tmp_path / "clips.npz", x=x, labels=np.arange(64) % 2)
    cfg = OmegaConf.load(load_recipe.__globals__["recipe_dir"]() / "vjepa-moving-digits.yaml")
    cfg.data = {"loader": "clips", "source": str(tmp_path / "clips.npz"), "test_size": 16}
    OmegaConf.save(cfg, tmp_path / "mine.yaml")
    s = pretrain(str(tmp_path / "mine.yaml"), out=str(tmp_path / "run"), overrides=SMALL + RUN + ["eval.baselines=false"],
                 progress=False, echo=lambda *_: None)
    assert s["n_train"] == 48 and s["n_test"] == 16 and s["steps"] == 6

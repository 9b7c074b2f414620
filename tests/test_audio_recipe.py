"""The ajepa recipe end to end on a small synthetic audio set; the tokenizer and the A-JEPA method."""
import csv
import json

import numpy as np
import pytest
import torch

from polyjepa.audio.tokenizer import SpectrogramPatchEmbed
from polyjepa.errors import UserError

from .test_audio_data import tone_clips, write_npz

AUDIO_TINY = ["encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
              "train.batch_size=16", "train.max_steps=8", "train.log_every=2", "train.monitor_every=4",
              "train.checkpoint_every=4", "eval.monitor_samples=32", "train.threads=1"]


def test_tokenizer_patches_and_positions():
    tok = SpectrogramPatchEmbed(image_size=(8, 12), in_channels=1, dim=16, patch_size=(4, 3))
    assert tok.grid == (2, 4) and tok.position_embedding(8).shape == (8, 8)
    x = torch.zeros(2, 1, 8, 12)
    x[:, :, 4:, 3:6] = 1.0                                  # frequency row 1, time column 1 -> token 5
    out = tok(x) - tok.pos_embed
    changed = (out - out[:, :1]).abs().sum(-1) > 0
    assert changed[0].nonzero().flatten().tolist() == [5]
    with pytest.raises(ValueError, match="not a multiple of patch size"):
        SpectrogramPatchEmbed(image_size=(10, 12), in_channels=1, dim=16, patch_size=(4, 3))


def test_ajepa_recipe_trains_logs_the_schedule_and_probes(tmp_path):
    from polyjepa.runner import embed_run, pretrain

    clips, y = tone_clips(90)
    data = write_npz(tmp_path / "tones.npz", clips, y, take=np.arange(90) % 50)
    out = tmp_path / "run"
    s = pretrain("ajepa", data=str(data), out=str(out), overrides=AUDIO_TINY, progress=False, echo=lambda *a: None)
    assert s["n_train"] == 80 and s["n_test"] == 10 and s["steps"] == 8
    assert 0 <= s["probe"]["linear"]["accuracy"] <= 1 and "raw" in s["baselines"]
    assert json.loads((out / "summary.json").read_text())["recipe"] == "ajepa"
    with open(out / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["mask_tf_prob"]]
    probs = [float(r["mask_tf_prob"]) for r in rows]
    assert all(0.99 <= float(r["momentum"]) <= 1.0 for r in rows)   # the EMA teacher's scheduled momentum
    assert probs == sorted(probs) and probs[0] < 0.5 < probs[-1]  # the curriculum's mix, rising
    assert all(0 < float(r["mask_context"]) < 1 and 0 < float(r["mask_target"]) < 1 for r in rows)
    emb = embed_run(str(out), str(data))
    assert emb.shape[0] == 90 and np.isfinite(emb).all()


def test_ajepa_method_gradients_reach_every_trainable_parameter():
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    cfg = load_recipe("ajepa", AUDIO_TINY)
    method = build_method(cfg, (1, 32, 64), seed=0)
    x = torch.randn(8, 1, 32, 64)
    c, t = method.masker(8, torch.Generator().manual_seed(0), progress=1.0)
    out = method({"x": x, "context_idx": c, "target_idx": t})
    out["loss"].backward()
    for name, p in method.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad is None for p in method.target.parameters())
    assert out["mask_tf_prob"] == 0.0                       # progress is tracked by update_target
    method.update_target(9, 10)
    assert method({"x": x, "context_idx": c, "target_idx": t})["mask_tf_prob"] == pytest.approx(1.0)


def test_wrong_data_for_the_recipe_says_so(tmp_path):
    from polyjepa.runner import pretrain

    with pytest.raises(UserError, match="FSDD layout|does not exist"):
        pretrain("ajepa", data=str(tmp_path / "none.npz"), out=str(tmp_path / "r"), overrides=AUDIO_TINY,
                 progress=False, echo=lambda *a: None)


def test_masks_that_cannot_fit_a_small_token_grid_fail_before_the_run_exists(tmp_path):
    from polyjepa.runner import pretrain

    clips, y = tone_clips(24)
    data = write_npz(tmp_path / "tones.npz", clips, y)
    # 8 frames -> an 8 x 2 token grid: 4 multi-block targets leave no context
    with pytest.raises(UserError, match="cannot draw a training batch: could not keep 4 context tokens on a"):
        pretrain("ajepa", data=str(data), out=str(tmp_path / "run"), progress=False, echo=lambda *a: None,
                 overrides=AUDIO_TINY + ["data.frames=8", "data.crop=stretch"])
    assert not (tmp_path / "run").exists()


def test_training_monitor_draws_bank_and_queries_from_the_whole_training_set():
    # Core fix: FSDD is stored sorted by digit; the monitor took its kNN bank and queries from the
    # first rows, so the queries held digits the bank never saw (monitor kNN 0.03 at step 0).
    from polyjepa.eval.evaluate import Monitor

    y = np.repeat(np.arange(10), 100)
    x = np.zeros((1000, 1, 2, 2), np.float32)
    m = Monitor(x, y, samples=256)
    assert len(m.bank_x) == 256 and len(m.query_x) == 128
    assert set(m.bank_y.tolist()) == set(range(10)) and set(m.query_y.tolist()) <= set(m.bank_y.tolist())

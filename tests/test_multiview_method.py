"""The multi-view method: every recipe builds and trains a step with finite gradients; local views;
the teacher gets no gradient; a tiny end-to-end run writes the run directory, the spectrum and the report."""
import csv
import json

import numpy as np
import pytest
import torch

from polyjepa.build import build_method
from polyjepa.config import load_recipe
from polyjepa.errors import UserError
from polyjepa.multiview.method import encode_any_size

RECIPES = ["simclr-mnist", "barlow-mnist", "vicreg-mnist", "tico-mnist", "intl-mnist", "lejepa-mnist", "dino-mnist"]
SMALL = ["encoder.size=micro", "encoder.depth=1", "projector.hidden=32"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_trains_a_step_with_finite_gradients(recipe):
    cfg = load_recipe(recipe, SMALL)
    method = build_method(cfg, (1, 16, 16), seed=0)
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    batch = method.make_batch(x, torch.Generator().manual_seed(1), 0.0)
    assert batch["global"].shape[:2] == (2, 8)
    out = method(batch)
    assert torch.isfinite(out["loss"]) and all(v.ndim == 0 for v in out.values())
    out["loss"].backward()
    for module in method.trainable_modules():
        for name, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if method.teacher is not None:
        assert all(p.grad is None for p in method.teacher.parameters())
        before = [p.clone() for p in method.teacher.parameters()]
        torch.optim.SGD([p for m in method.trainable_modules() for p in m.parameters()], lr=0.1).step()
        method.update_target(0, 10)
        assert any(not torch.equal(a, b) for a, b in zip(before, method.teacher.parameters()))
    method.update_target(4, 10)
    assert int(method.step) == 5 and float(method.progress) == pytest.approx(0.5)
    assert method.embed(x).shape == (8, method.backbone.dim)


def test_local_views_use_resampled_positions():
    cfg = load_recipe("lejepa-mnist", SMALL)
    method = build_method(cfg, (1, 16, 16), seed=0)
    bb = method.backbone
    x = torch.randn(3, 1, 16, 16)
    assert torch.allclose(encode_any_size(bb, x), bb(x))
    small = torch.randn(3, 1, 8, 8)
    tokens = encode_any_size(bb, small)
    assert tokens.shape == (3, 4, bb.dim)
    # The resampled positions differ from the full grid's first positions (they span the whole image).
    pos = bb.tokenizer.pos_embed[0].reshape(4, 4, -1)
    tok_only = bb.tokenizer.proj(small).flatten(2).transpose(1, 2)
    assert not torch.allclose(bb.encoder(tok_only + pos[:2, :2].reshape(4, -1)), tokens)


def test_lejepa_directions_follow_the_step():
    cfg = load_recipe("lejepa-mnist", SMALL)
    method = build_method(cfg, (1, 16, 16), seed=0).train()
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    batch = method.make_batch(x, torch.Generator().manual_seed(1), 0.0)
    a = method(batch)["sigreg"].item()
    assert method(batch)["sigreg"].item() == pytest.approx(a, rel=1e-6)
    method.update_target(0, 10)
    assert method(batch)["sigreg"].item() != pytest.approx(a, rel=1e-6)


def test_bad_view_sizes_are_user_errors():
    with pytest.raises(UserError, match="multiple of the patch size"):
        build_method(load_recipe("lejepa-mnist", SMALL + ["views.local_size=[10,10]"]), (1, 16, 16))
    with pytest.raises(UserError, match="exactly two views"):
        build_method(load_recipe("tico-mnist", SMALL + ["views.n_local=2", "views.local_size=[8,8]"]), (1, 16, 16))
    with pytest.raises(UserError, match="C, H, W"):
        build_method(load_recipe("vicreg-mnist", SMALL), (3, 100))
    with pytest.raises(UserError, match="larger than the images"):
        build_method(load_recipe("dino-croponly-mnist", SMALL), (1, 16, 16))


def test_crop_only_dino_trains_on_plain_crops():
    method = build_method(load_recipe("dino-croponly-mnist", SMALL), (1, 28, 28), seed=0)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    batch = method.make_batch(x, torch.Generator().manual_seed(1), 0.0)
    assert batch["global"].shape == (2, 4, 1, 24, 24) and batch["local"].shape == (4, 4, 1, 12, 12)
    out = method(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and method.embed(x).shape == (4, method.backbone.dim)


TINY_MV = ["encoder.size=micro", "encoder.depth=2", "projector.hidden=64", "train.batch_size=32",
           "train.max_steps=12", "train.log_every=2", "train.monitor_every=4", "train.checkpoint_every=8",
           "data.test_size=0.2", "eval.monitor_samples=64", "train.lr=2e-3",
           "eval.baselines=false"]


@pytest.mark.parametrize("recipe", ["vicreg-mnist", "lejepa-mnist"])
def test_tiny_end_to_end_run(tmp_path, image_npz, recipe):
    from polyjepa.runner import pretrain

    extra = ["views.local_size=[8,8]", "views.n_local=2"] if recipe == "lejepa-mnist" else []
    s = pretrain(recipe, data=str(image_npz), out=str(tmp_path / "run"), overrides=TINY_MV + extra,
                 progress=False, echo=lambda *_: None)
    run = tmp_path / "run"
    for name in ("summary.json", "report.md", "spectrum.jsonl", "plots/spectrum.png", "encoder.safetensors"):
        assert (run / name).exists(), name
    assert s["steps"] == 12 and s["embedding"]["encoder"] == "online"
    rows = [json.loads(line) for line in (run / "spectrum.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 4, 8, 12]
    assert all(len(r["eigenvalues"]) == 64 and r["eigenvalues"] == sorted(r["eigenvalues"], reverse=True) for r in rows)
    with open(run / "metrics.csv") as f:
        metrics = list(csv.DictReader(f))
    losses = [float(r["loss"]) for r in metrics if r.get("loss")]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert any(r.get("lidar") for r in metrics)
    assert not any(r.get("momentum") for r in metrics)          # no teacher: no momentum logged
    report = (run / "report.md").read_text()
    assert "spectrum" in report and ("No collapse" in report or "COLLAPSE" in report)
    assert s["probe"]["linear"]["accuracy"] > 0.5  # three classes of bars

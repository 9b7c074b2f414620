"""The random affine view and the JEPA's optional invariance term (two-view VICReg on pooled embeddings)."""
import math

import numpy as np
import pytest
import torch

from polyjepa.build import build_method
from polyjepa.config import load_recipe
from polyjepa.data import MaskedBatches
from polyjepa.data.augment import RandomAffine
from polyjepa.errors import UserError
from polyjepa.objectives.vicreg import vicreg_loss

SMALL = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2"]


def centroid(img: torch.Tensor) -> torch.Tensor:
    """(H, W) -> (x, y) mass centre in align_corners=False normalised coordinates."""
    H, W = img.shape
    ys = (2 * torch.arange(H, dtype=torch.float64) + 1) / H - 1
    xs = (2 * torch.arange(W, dtype=torch.float64) + 1) / W - 1
    m = img.double()
    return torch.stack([(m.sum(0) * xs).sum() / m.sum(), (m.sum(1) * ys).sum() / m.sum()])


def test_affine_with_zero_ranges_is_the_identity():
    x = torch.randn(5, 2, 12, 16)
    out = RandomAffine(rotate=0, scale=0, translate=0)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)


def test_affine_moves_a_blob_where_the_drawn_parameters_say():
    # A smooth blob away from the edges: its mass centre must land at zoom * R(-angle) (c - t), the
    # inverse of the output -> input map, computed here from the same draws, without affine_grid.
    H = W = 48
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    blob = torch.exp(-((xx - 30) ** 2 + (yy - 20) ** 2) / (2 * 2.0 ** 2))
    x = blob.expand(6, 1, H, W).clone()
    aug = RandomAffine(rotate=30, scale=0.2, translate=0.2)
    out = aug(x, torch.Generator().manual_seed(3))
    u = torch.rand(6, 4, generator=torch.Generator().manual_seed(3)).double() * 2 - 1
    c = centroid(blob)
    for i in range(6):
        a, zoom = u[i, 0] * math.radians(30), 1 + u[i, 1] * 0.2
        t = torch.stack([u[i, 2], u[i, 3]]) * 0.2
        rot = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]], dtype=torch.float64)
        want = zoom * rot @ (c - t)
        assert torch.allclose(centroid(out[i, 0]), want, atol=0.02), (i, centroid(out[i, 0]), want)


def test_affine_is_seeded_and_checks_its_ranges():
    x = torch.randn(4, 1, 10, 10)
    aug = RandomAffine()
    assert torch.equal(aug(x, torch.Generator().manual_seed(1)), aug(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(aug(x, torch.Generator().manual_seed(1)), aug(x, torch.Generator().manual_seed(2)))
    for bad in ({"rotate": -1}, {"scale": 1.0}, {"translate": -0.1}):
        with pytest.raises(ValueError):
            RandomAffine(**bad)


def invariance_method(*extra):
    cfg = load_recipe("ijepa-digits", SMALL + ["invariance.name=vicreg", "invariance.weight=0.5", *extra])
    return build_method(cfg, (1, 8, 8), seed=0)


def test_invariance_term_equals_an_independent_vicreg_of_the_two_views():
    method = invariance_method()
    batches = MaskedBatches(torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)), batch_size=32,
                            make_batch=method.make_batch)
    batch = batches[0]
    x = batches.x[batches._order(0)[:32]]
    assert batch["x2"].shape == batch["x"].shape == x.shape
    assert not torch.equal(batch["x2"], batch["x"]) and not torch.equal(batch["x"], x)  # two views, both moved
    assert torch.equal(batches[0]["x2"], batch["x2"])  # drawn from the step: the same after a resume
    out = method(batch)
    # Without the term: the same method with its invariance removed.
    inv, method.invariance = method.invariance, None
    base = method(batch)
    z = method.backbone(batch["x"], keep_idx=batch["context_idx"]).mean(1)
    zb = method.backbone(batch["x2"]).mean(1)
    want = vicreg_loss(inv.projector(z), inv.projector(zb))
    assert torch.allclose(out["loss"], base["loss"] + 0.5 * want["loss"], rtol=1e-5)
    assert torch.allclose(out["inv_invariance"], want["invariance"], rtol=1e-5)


def test_several_whole_views_average_vicreg_over_every_pair():
    method = invariance_method("invariance.views=3")
    batch = MaskedBatches(torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1)), batch_size=32,
                          make_batch=method.make_batch)[0]
    assert batch["x2"].shape == (32, 3, 1, 8, 8)
    views = [batch["x"], *batch["x2"].unbind(1)]
    for i in range(4):  # four different draws of each image
        for j in range(i + 1, 4):
            assert not torch.equal(views[i], views[j])
    out = method(batch)
    inv, method.invariance = method.invariance, None
    base = method(batch)
    z = [method.backbone(batch["x"], keep_idx=batch["context_idx"]).mean(1)]
    z += [method.backbone(v).mean(1) for v in batch["x2"].unbind(1)]  # one view at a time, not one pass
    p = [inv.projector(e) for e in z]
    pairs = [vicreg_loss(p[i], p[j]) for i in range(4) for j in range(i + 1, 4)]
    assert len(pairs) == 6
    want = sum(o["loss"] for o in pairs) / 6
    assert torch.allclose(out["loss"], base["loss"] + 0.5 * want, rtol=1e-5)
    assert torch.allclose(out["inv_variance"], sum(o["variance"] for o in pairs) / 6, rtol=1e-5)
    for bad in (0, 1.5):
        with pytest.raises(UserError, match="views"):
            invariance_method(f"invariance.views={bad}")


def test_whole_first_view_replaces_the_context_tokens():
    method = invariance_method("invariance.first=whole", "invariance.views=2")
    batch = MaskedBatches(torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2)), batch_size=32,
                          make_batch=method.make_batch)[0]
    out = method(batch)
    inv, method.invariance = method.invariance, None
    base = method(batch)
    p = [inv.projector(method.backbone(v).mean(1)) for v in (batch["x"], *batch["x2"].unbind(1))]
    want = sum(vicreg_loss(p[i], p[j])["loss"] for i, j in ((0, 1), (0, 2), (1, 2))) / 3
    assert torch.allclose(out["loss"], base["loss"] + 0.5 * want, rtol=1e-5)
    with pytest.raises(UserError, match="first"):
        invariance_method("invariance.first=masked")


def test_invariance_trains_every_part_with_finite_gradients():
    method = invariance_method()
    batch = MaskedBatches(torch.randn(64, 1, 8, 8), batch_size=32, make_batch=method.make_batch)[0]
    method(batch)["loss"].backward()
    params = [(n, p) for m in method.trainable_modules() for n, p in m.named_parameters()]
    assert any(n.startswith("projector") for n, _ in params)
    for name, p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad is None for p in method.target.parameters())


def test_invariance_section_is_refused_where_the_method_cannot_use_it():
    with pytest.raises(UserError, match="no use for an invariance section"):
        build_method(load_recipe("tsjepa", ["invariance.name=vicreg"]), (1, 64))
    with pytest.raises(UserError, match="invariance"):
        load_recipe("ijepa-digits", ["invariance.weight=1"])  # a key of a section the recipe lacks
    with pytest.raises(UserError, match="weight"):
        invariance_method("invariance.weight=-1")


def test_pretrain_with_invariance_resumes_to_the_same_losses(tmp_path, tiny_overrides):
    import csv
    import shutil

    from polyjepa.runner import pretrain

    def losses(run):
        with open(run / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        assert "inv_loss" in rows[0]
        return {int(r["step"]): float(r["loss"]) for r in rows if r.get("loss")}

    quiet = dict(progress=False, echo=lambda *_: None)
    over = tiny_overrides + ["invariance.name=vicreg", "invariance.hidden=64", "invariance.out_dim=32"]
    full = pretrain("ijepa-digits", out=str(tmp_path / "full"), overrides=over, **quiet)
    assert full["steps"] == 8 and np.isfinite(full["probe"]["linear"]["accuracy"])
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)  # "killed" after the step-4 checkpoint
    shutil.rmtree(part / "checkpoints" / "step-0000008")
    (part / "checkpoints" / "latest.json").unlink()
    (part / "summary.json").unlink()
    pretrain(None, resume=str(part), **quiet)
    a, b = losses(tmp_path / "full"), losses(part)
    assert sorted(a) == sorted(b)
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-5, abs=1e-7), step


def test_cjepa_recipe_builds_and_takes_a_step():
    cfg = load_recipe("cjepa-mnist", ["encoder.depth=2", "predictor.depth=1"])
    method = build_method(cfg, (1, 28, 28), seed=0)
    assert method.invariance is not None and method.embed_from == "online"
    assert type(method.backbone.tokenizer).__name__ == "ConvStem2D" and method.backbone.tokenizer.masks_input
    assert (method.invariance.first, method.invariance.views) == ("whole", 2)
    batch = MaskedBatches(torch.rand(16, 1, 28, 28), batch_size=16, make_batch=method.make_batch)[0]
    assert batch["x2"].shape == (16, 2, 1, 28, 28)
    out = method(batch)
    assert torch.isfinite(out["loss"]) and out["inv_loss"] > 0

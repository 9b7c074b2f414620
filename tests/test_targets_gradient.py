"""SAR-JEPA's hand-crafted targets: ROA gradients against closed forms and a direct loop, the part in recipes."""
import math

import numpy as np
import pytest
import torch

from polyjepa.build import build_method
from polyjepa.config import load_recipe
from polyjepa.data import MaskedBatches
from polyjepa.data.sources import load_images
from polyjepa.errors import UserError
from polyjepa.targets import GradientTarget, roa_gradient
from polyjepa.targets.gradient import unit_range


def _direct_roa(img: np.ndarray, r: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Loops over pixels and half-windows of the reflect-padded image (numpy), as the definition reads."""
    p = np.pad(img + offset, r, mode="reflect")
    H, W = img.shape
    gx, gy = np.zeros((H, W)), np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            ci, cj = i + r, j + r
            left = p[ci - r:ci + r + 1, cj - r:cj + 1].mean()
            right = p[ci - r:ci + r + 1, cj:cj + r + 1].mean()
            up = p[ci - r:ci + 1, cj - r:cj + r + 1].mean()
            down = p[ci:ci + r + 1, cj - r:cj + r + 1].mean()
            gx[i, j], gy[i, j] = math.log(left / right), math.log(up / down)
    return gx, gy


@pytest.mark.parametrize("r", [1, 3])
def test_roa_gradient_equals_a_direct_loop_on_a_random_image(r):
    rng = np.random.default_rng(r)
    img = rng.gamma(1.0, 1.0, size=(9, 11))          # speckle-like positive amplitudes
    gx, gy = roa_gradient(torch.from_numpy(img)[None, None], r, offset=0.01)
    ex, ey = _direct_roa(img, r, 0.01)
    np.testing.assert_allclose(gx[0, 0].numpy(), ex, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gy[0, 0].numpy(), ey, rtol=1e-10, atol=1e-10)


def test_step_edge_gradient_has_its_closed_form():
    """Columns < 8 are 0, the rest 1: G_y = 0 everywhere and G_x(j) = log((f_l + e) / (f_r + e)) with f the
    fraction of bright columns among j-r..j (left) and j..j+r (right)."""
    r, e, W = 2, 0.01, 16
    img = torch.zeros(1, 1, 12, W, dtype=torch.float64)
    img[..., 8:] = 1.0
    gx, gy = roa_gradient(img, r, offset=e)
    assert torch.equal(gy, torch.zeros_like(gy))
    for j in range(W):
        fl = sum(k >= 8 for k in range(j - r, j + 1)) / (r + 1)
        fr = sum(k >= 8 for k in range(j, j + r + 1)) / (r + 1)
        expect = math.log((fl + e) / (fr + e))
        assert torch.allclose(gx[0, 0, :, j], torch.full((12,), expect, dtype=torch.float64)), j
    # the edge is found: non-zero only where a half-window straddles it, strongest on its dark side
    mag = gx[0, 0, 0].abs()
    assert torch.nonzero(mag).flatten().tolist() == [6, 7, 8, 9] and mag.argmax() == 7


def test_ratio_gradient_ignores_a_multiplicative_factor_and_a_ramp_has_its_closed_form():
    """A horizontal ramp x(j) = a + b j: the box means are the ramp at the half-windows' centres (j -/+ r/2),
    so G_x = log((a + b (j - r/2)) / (a + b (j + r/2))) away from the borders (offset 0)."""
    a, b, r = 5.0, 0.5, 2
    img = (a + b * torch.arange(20, dtype=torch.float64)).expand(1, 1, 6, 20).clone()
    gx, _ = roa_gradient(img, r, offset=0.0)
    for j in range(r, 20 - r):
        assert math.isclose(gx[0, 0, 0, j].item(), math.log((a + b * (j - r / 2)) / (a + b * (j + r / 2))),
                            rel_tol=1e-12)
    gx3, _ = roa_gradient(3.0 * img, r, offset=0.0)       # speckle is multiplicative: the ratio cancels it
    assert torch.allclose(gx3, gx, atol=1e-12)


def test_targets_are_the_patchified_magnitudes_and_ignore_the_data_normalisation():
    t = GradientTarget(image_size=(16, 24), in_channels=1, grid=(2, 3), radii=(1, 3))
    assert t.patch == (8, 8) and t.dim == 2 * 64
    x = torch.rand(3, 1, 16, 24)
    h = t(x)
    assert h.shape == (3, 6, 128)
    u = unit_range(x)
    for s, r in enumerate((1, 3)):
        gx, gy = roa_gradient(u, r, 0.01)
        mag = torch.sqrt(gx ** 2 + gy ** 2)
        # token 4 = grid row 1, column 1: pixels rows 8-15, columns 8-15; scale s = values s*64 .. s*64+63
        torch.testing.assert_close(h[:, 4, s * 64:(s + 1) * 64], mag[:, 0, 8:16, 8:16].reshape(3, 64))
    torch.testing.assert_close(t(2.5 * x - 7.0), h, atol=1e-5, rtol=1e-5)   # standardised data: same targets
    assert t.update(None, 0, 1) is None and not list(t.parameters())


def test_bad_images_get_one_line():
    with pytest.raises(UserError, match="does not tile into the 3x3 token grid") as e:
        GradientTarget(image_size=(16, 16), in_channels=1, grid=(3, 3))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="read 1-channel images but the data have 3 channels"):
        GradientTarget(image_size=(16, 16), in_channels=3, grid=(2, 2), radii=(2,), channels=1)
    with pytest.raises(UserError, match="radii"):
        GradientTarget(image_size=(16, 16), in_channels=1, grid=(2, 2), radii=(16,))
    t = GradientTarget(image_size=(16, 16), in_channels=1, grid=(2, 2), radii=(2,))
    with pytest.raises(UserError, match=r"expect images \(B, 1, 16, 16\)"):
        t(torch.rand(2, 3, 16, 16))


SMALL = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
         "tokenizer.patch_size=8", "target.radii=[1,2]"]


def test_the_sar_recipe_trains_every_parameter_and_regresses_the_gradient_features():
    cfg = load_recipe("sarjepa-mstar", SMALL)
    method = build_method(cfg, (1, 32, 32), seed=0)
    assert method.target.dim == 2 * 64 and method.predictor.head.out_features == 128
    x = torch.rand(64, 1, 32, 32)
    batch = MaskedBatches(x, batch_size=8, masker=method.masker)[0]
    out = method(batch)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    out["loss"].backward()
    for name, p in method.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert method.encoder() is method.backbone


@pytest.mark.parametrize("shape, overrides, match", [
    ((3, 32, 32), [], "read 1-channel images but the data have 3 channels"),
    ((1, 30, 32), [], "not a multiple of patch size 8"),
    ((1, 32, 32), ["method.embed_from=target"], "set method.embed_from=online"),
])
def test_the_sar_recipe_refuses_bad_input_in_one_line(shape, overrides, match):
    cfg = load_recipe("sarjepa-mstar", SMALL + overrides)
    with pytest.raises(UserError, match=match) as e:
        build_method(cfg, shape, seed=0)
    assert "\n" not in str(e.value)


def test_an_npz_with_a_split_array_keeps_its_official_test_split(tmp_path):
    x = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 4, 4)
    split = np.array(["train", "test", "train", "test", "train", "train"])
    np.savez(tmp_path / "s.npz", images=x, labels=np.array([0, 1, 0, 1, 1, 0]), split=split)
    d = load_images(str(tmp_path / "s.npz"), size=8)
    assert d.x.shape == (4, 1, 8, 8) and d.x_test.shape == (2, 1, 8, 8)
    assert d.y.tolist() == [0, 0, 1, 0] and d.y_test.tolist() == [1, 1]
    np.savez(tmp_path / "bad.npz", images=x, split=np.array(["train"] * 6))
    with pytest.raises(UserError, match="'split' array"):
        load_images(str(tmp_path / "bad.npz"))


@pytest.mark.skipif(not (Path := __import__("pathlib").Path)(__file__).resolve().parents[1].parent.joinpath(
    "shared/data/mstar10_64px_3000.npz").is_file(), reason="../shared/data/mstar10_64px_3000.npz is absent")
def test_mstar_loads_with_its_depression_split():
    root = Path(__file__).resolve().parents[1].parent / "shared/data/mstar10_64px_3000.npz"
    d = load_images(str(root))
    assert d.x.shape == (1500, 1, 64, 64) and d.x_test.shape == (1500, 1, 64, 64)
    assert np.bincount(d.y).tolist() == [150] * 10 == np.bincount(d.y_test).tolist()

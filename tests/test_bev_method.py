"""AD-L-JEPA as a method: gradients reach the context encoder, predictor and tokens but not the EMA target; each
encoder sees only its own cells' points; the LiDAR loader refuses bad sweeps in one line; boxes and augmentations
match direct computations; the recipe runs end to end."""

import numpy as np
import pytest
import torch

from polyjepa.bev.augment import augment_cloud
from polyjepa.bev.boxes import cell_labels, points_in_boxes
from polyjepa.bev.data import load_lidar_bev
from polyjepa.bev.grid import BEVGrid
from polyjepa.errors import UserError

SMALL = ["data.x_range=[0.0, 12.8]", "data.y_range=[-6.4, 6.4]", "data.cell=0.4", "encoder.widths=[8, 16]",
         "encoder.blocks=1", "predictor.depth=2"]


def small_method(seed=0):
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    return build_method(load_recipe("adljepa-kitti", SMALL), (5, 32, 32), seed, {})


def scene(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    occ = (torch.rand(b, 32, 32, generator=g) < 0.3).float()
    return torch.stack([occ * 2, occ, occ * torch.rand(b, 32, 32, generator=g), occ * 0.5, occ * 0.3], 1)


def test_gradients_reach_encoder_predictor_and_tokens_not_the_target():
    m = small_method()
    batch = m.make_batch(scene(), torch.Generator().manual_seed(1))
    out = m.loss(batch)
    assert torch.isfinite(out["loss"]) and set(out) >= {"nonempty", "empty", "var_context", "var_pred"}
    out["loss"].backward()
    for mod in m.trainable_modules():
        for name, p in mod.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert m.backbone.net[0][0].weight.grad.abs().sum() > 0 and m.predictor.net[0][0].weight.grad.abs().sum() > 0
    assert m.tokens.mask.grad.abs().sum() > 0 and m.tokens.empty.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in m.target.parameters())
    before = [p.clone() for p in m.target.parameters()]
    with torch.no_grad():
        for p in m.backbone.parameters():
            p.add_(1.0)
    m.update_target(0, 10)                                     # momentum 0.996: the target moves 0.004 of the way
    moved = [(a - b).abs().max().item() for a, b in zip(m.target.parameters(), before)]
    assert max(moved) == pytest.approx(0.004, rel=1e-3)


def test_each_encoder_sees_only_its_own_cells():
    m = small_method()
    x = scene(2)
    b = m.make_batch(x, torch.Generator().manual_seed(3))
    assert torch.equal(b["context"] | b["target"], m.occupied_cells(x))
    noise = torch.rand_like(x)
    up = b["target"].repeat_interleave(2, 1).repeat_interleave(2, 2).unsqueeze(1)
    x2 = torch.where(up, noise, x)                             # change only what lies under the target cells
    assert torch.equal(m._keep(x, b["context"]), m._keep(x2, b["context"]))
    assert not torch.equal(m._keep(x, b["target"]), m._keep(x2, b["target"]))
    assert m._keep(x, b["context"])[:, 1].sum() + m._keep(x, b["target"])[:, 1].sum() == x[:, 1].sum()


def test_gamma_defaults_to_one_over_root_width():
    m = small_method()
    assert m.weights["gamma"] == pytest.approx(1 / 4)          # width 16; the paper's 1/16 at width 256


def write_bin(path, points):
    np.asarray(points, np.float32).tofile(path)
    return path


def cloud(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(0, 12, n), rng.uniform(-6, 6, n), rng.uniform(-2.5, 0.5, n), rng.uniform(0, 1, n)], 1)


def test_bad_lidar_sweeps_are_one_clear_line(tmp_path):
    small = dict(x_range=(0.0, 12.8), y_range=(-6.4, 6.4), copies=1)
    good = write_bin(tmp_path / "ok.bin", cloud())
    assert load_lidar_bev(str(good), **small).x.shape == (1, 5, 32, 32)
    odd = tmp_path / "odd.bin"
    np.concatenate([cloud(10).ravel(), [1.0, 2.0]]).astype(np.float32).tofile(odd)
    nan = cloud(50)
    nan[7, 0] = np.nan
    far = cloud(50) + np.array([500.0, 0, 0, 0])
    cases = {odd: "not a whole number of 16-byte kitti records", write_bin(tmp_path / "nan.bin", nan): "NaN",
             write_bin(tmp_path / "empty.bin", np.zeros((0, 4))): "empty",
             write_bin(tmp_path / "far.bin", far): "no point inside the BEV grid", tmp_path / "none.bin": "does not exist"}
    for path, words in cases.items():
        with pytest.raises(UserError, match=words) as e:
            load_lidar_bev(str(path), **small)
        assert "\n" not in str(e.value)
    np.savez(tmp_path / "nan.npz", points=nan)
    with pytest.raises(UserError, match="NaN"):
        load_lidar_bev(str(tmp_path / "nan.npz"), **small)
    with pytest.raises(UserError, match="copies"):
        load_lidar_bev(str(good), x_range=(0.0, 12.8), y_range=(-6.4, 6.4), copies=0)


def test_augmentations_keep_geometry():
    pts = cloud(500).astype(np.float32)
    rng = np.random.default_rng(0)
    out = augment_cloud(pts, rng, flip=True, max_angle=180.0, scale=(1.0, 1.0))
    assert np.allclose(np.hypot(out[:, 0], out[:, 1]), np.hypot(pts[:, 0], pts[:, 1]), atol=1e-4)
    assert np.array_equal(out[:, 2:], pts[:, 2:])
    same = augment_cloud(pts, rng, flip=False, max_angle=0.0, scale=(2.0, 2.0))
    assert np.allclose(same[:, :3], 2 * pts[:, :3]) and np.array_equal(same[:, 3], pts[:, 3])
    kept = augment_cloud(pts, rng, max_angle=0.0, dropout=0.5)
    assert 150 < len(kept) < 350


def test_points_in_a_rotated_box_and_their_cells():
    # a box 4 long (along the camera's z after rotation_y = pi/2), 2 wide, 1.5 high, bottom centre at (0, 1, 10)
    box = np.array([[1.5, 2.0, 4.0, 0.0, 1.0, 10.0, np.pi / 2]])
    rect = np.array([[0.0, 0.5, 11.9], [0.9, 0.5, 10.0], [0.0, 0.5, 12.1], [1.1, 0.5, 10.0], [0.0, -0.6, 10.0],
                     [0.0, 1.2, 10.0]])
    assert points_in_boxes(rect, box).tolist() == [True, True, False, False, False, False]
    # rotation_y = pi/6: the heading in camera coordinates is (cos ry, 0, -sin ry) (KITTI's convention); a point
    # 1.9 along it is inside, its mirror (1.9 along (cos ry, 0, +sin ry)) is not, so the sign of ry is tested
    ry = np.pi / 6
    tilted = np.array([[1.5, 2.0, 4.0, 0.0, 1.0, 10.0, ry]])
    head, mirror = np.array([np.cos(ry), 0.0, -np.sin(ry)]), np.array([np.cos(ry), 0.0, np.sin(ry)])
    pts = np.array([0.0, 0.5, 10.0]) + 1.9 * np.stack([head, mirror])
    assert points_in_boxes(pts, tilted).tolist() == [True, False]
    grid = BEVGrid(x_range=(0.0, 4.0), y_range=(0.0, 4.0), z_range=(0.0, 1.0), cell=1.0)
    pts = np.array([[0.5, 0.5, 0.5], [3.5, 3.5, 0.5], [1.5, 0.5, 0.5]], np.float32)
    occ, pos = cell_labels(pts, np.array([True, False, False]), grid, stride=2)
    assert occ.tolist() == [[True, False], [False, True]] and pos.tolist() == [[True, False], [False, False]]


def test_recipe_parts_are_registered():
    from polyjepa.registry import part_builder

    assert part_builder("data", {"data": {"loader": "lidar_bev"}})[0] is load_lidar_bev
    assert part_builder("method", {"method": {"name": "adl_jepa"}})[0].__name__ == "ADLJEPA"


@pytest.mark.slow
def test_recipe_pretrains_end_to_end(tmp_path):
    from polyjepa.runner import pretrain

    (tmp_path / "sweeps").mkdir()
    for i in range(2):
        write_bin(tmp_path / "sweeps" / f"{i:06d}.bin", cloud(3000, i))
    summary = pretrain("adljepa-kitti", data=str(tmp_path / "sweeps"), out=str(tmp_path / "run"), progress=False,
                       overrides=[*SMALL, "data.copies=2", "train.batch_size=2", "train.max_steps=2"],
                       echo=lambda *a, **k: None)
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])
    assert (tmp_path / "run" / "encoder.safetensors").exists()


def test_assembler_refuses_data_that_is_not_a_bev_grid():
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    with pytest.raises(UserError, match="data.loader=lidar_bev"):
        build_method(load_recipe("adljepa-kitti", SMALL), (3, 32, 32), 0, {})
    with pytest.raises(UserError, match="multiple of encoder.stride"):
        build_method(load_recipe("adljepa-kitti", SMALL), (5, 33, 32), 0, {})

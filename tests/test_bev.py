"""LiDAR: readers refuse bad sweeps in one line; BEV counts and features equal a direct computation."""
from pathlib import Path

import numpy as np
import pytest
import torch

from polyjepa.errors import UserError
from polyjepa.bev.grid import BEVGrid, BEVTokenizer, bev_counts, bev_features
from polyjepa.bev.io import load_kitti_frames, read_lidar_bin

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def random_cloud(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-5, 80, n), rng.uniform(-50, 50, n), rng.uniform(-4, 2, n), rng.uniform(0, 1, n)],
                    1).astype(np.float32)


def test_bev_counts_equal_a_direct_histogram():
    grid = BEVGrid()
    pts = random_cloud()
    rows, cols = grid.shape
    inside_z = (pts[:, 2] >= grid.z_range[0]) & (pts[:, 2] < grid.z_range[1])
    ref, _, _ = np.histogram2d(pts[inside_z, 0], pts[inside_z, 1], bins=[rows, cols],
                               range=[grid.x_range, grid.y_range])
    counts = bev_counts(pts, grid)
    assert counts.shape == (rows, cols) == (88, 100)
    assert np.array_equal(counts.numpy(), ref)
    assert 0 < counts.sum() < len(pts)                                  # some points fell outside


def test_bev_features_match_a_loop_over_points():
    grid = BEVGrid(x_range=(0.0, 4.0), y_range=(0.0, 4.0), z_range=(0.0, 2.0), cell=1.0)
    pts = np.array([[0.5, 0.5, 0.2, 0.1], [0.7, 0.2, 1.8, 0.5], [3.5, 2.5, 1.0, 1.0], [9.0, 1.0, 1.0, 1.0]],
                   np.float32)
    f = bev_features(pts, grid)
    assert f.shape == (5, 4, 4)
    assert f[0, 0, 0] == pytest.approx(np.log(3.0)) and f[1, 0, 0] == 1 and f[1].sum() == 2
    assert f[2, 0, 0] == pytest.approx(0.9) and f[3, 0, 0] == pytest.approx(0.5) and f[4, 0, 0] == pytest.approx(0.3)
    assert f[2, 3, 2] == pytest.approx(0.5) and f[4, 3, 2] == pytest.approx(1.0)
    assert f[:, 1:3].abs().sum() == 0                                   # empty cells are zero in every channel


def test_bad_lidar_input_is_one_clear_line(tmp_path):
    good = random_cloud(100)
    good.tofile(tmp_path / "ok.bin")
    assert np.array_equal(read_lidar_bin(tmp_path / "ok.bin"), good)
    np.concatenate([good.ravel(), [1.0]]).astype(np.float32).tofile(tmp_path / "odd.bin")
    with pytest.raises(UserError, match="not a whole number of 16-byte kitti records") as e:
        read_lidar_bin(tmp_path / "odd.bin")
    assert "\n" not in str(e.value)
    random_cloud(101).tofile(tmp_path / "kitti101.bin")
    with pytest.raises(UserError, match="20-byte nuscenes records"):
        read_lidar_bin(tmp_path / "kitti101.bin", layout="nuscenes")        # 1,616 bytes is not a multiple of 20
    bad = good.copy()
    bad[3, 1] = np.nan
    bad.tofile(tmp_path / "nan.bin")
    with pytest.raises(UserError, match="1 of 100 points have NaN"):
        read_lidar_bin(tmp_path / "nan.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        read_lidar_bin(tmp_path / "empty.bin")
    with pytest.raises(UserError, match="empty"):
        bev_features(np.zeros((0, 4), np.float32), BEVGrid())
    with pytest.raises(UserError, match="not found"):
        read_lidar_bin(tmp_path / "none.bin")
    with pytest.raises(UserError, match="multiple of patch size"):
        BEVTokenizer(patch_size=3)


def test_bev_tokens_have_the_token_grid():
    tok = BEVTokenizer(patch_size=4, dim=16)
    out = tok([random_cloud(2000, 1), random_cloud(3000, 2)])
    assert out.shape == (2, 22 * 25, 16) and tok.grid == (22, 25)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in tok.parameters())


@pytest.mark.skipif(not (DATA / "kitti_velodyne_12frames.npz").exists(), reason="../shared/data KITTI frames absent")
def test_real_kitti_frames_read_and_bin():
    frames, split = load_kitti_frames(DATA / "kitti_velodyne_12frames.npz")
    z = np.load(DATA / "kitti_velodyne_12frames.npz")
    assert len(frames) == 12 and [len(f) for f in frames] == np.diff(z["frame_ptr"]).tolist()
    assert list(split[:6]) == ["training"] * 6
    f = frames[0]
    grid = BEVGrid()
    keep = (f[:, 2] >= grid.z_range[0]) & (f[:, 2] < grid.z_range[1])
    ref, _, _ = np.histogram2d(f[keep, 0], f[keep, 1], bins=list(grid.shape), range=[grid.x_range, grid.y_range])
    assert np.array_equal(bev_counts(f, grid).numpy(), ref) and ref.sum() > 10000


@pytest.mark.skipif(not (DATA / "nuscenes_lidar_top_1frame.npz").exists(),
                    reason="../shared/data nuScenes sweep absent")
def test_nuscenes_sweep_roundtrips_through_the_bin_reader(tmp_path):
    z = np.load(DATA / "nuscenes_lidar_top_1frame.npz")
    pts = np.concatenate([z["points"], z["ring"].reshape(-1, 1)], 1).astype(np.float32)
    pts.tofile(tmp_path / "sweep.pcd.bin")
    back = read_lidar_bin(tmp_path / "sweep.pcd.bin", layout="nuscenes")
    assert back.shape == (34688, 5) and np.array_equal(back, pts)


def test_cell_split_keeps_half_of_each_kind_disjoint_and_covering():
    from polyjepa.bev.adl_jepa import split_cells

    occupied = torch.rand(3, 10, 12, generator=torch.Generator().manual_seed(0)) < 0.3
    s = split_cells(occupied, torch.Generator().manual_seed(1))
    parts = torch.stack([s.context, s.target, s.context_empty, s.target_empty]).int()
    assert torch.equal(parts.sum(0), torch.ones_like(parts[0]))            # disjoint and covering every cell
    assert torch.equal(s.context | s.target, occupied) and torch.equal(s.context_empty | s.target_empty, ~occupied)
    for b in range(3):
        n, m = occupied[b].sum().item(), (~occupied[b]).sum().item()
        assert s.context[b].sum().item() == round(n / 2) and s.context_empty[b].sum().item() == round(m / 2)
    again = split_cells(occupied, torch.Generator().manual_seed(1))
    assert torch.equal(again.context, s.context)


def test_adl_jepa_loss_against_a_loop_over_cells():
    from polyjepa.bev.adl_jepa import adl_jepa_loss, split_cells

    g = torch.Generator().manual_seed(0)
    pred, target, context = (torch.randn(2, 4, 5, 6, generator=g) for _ in range(3))
    occupied = torch.rand(2, 5, 6, generator=g) < 0.4
    s = split_cells(occupied, g)
    out = adl_jepa_loss(pred, target, context, s)
    ne, e = [], []
    for b in range(2):
        for i in range(5):
            for j in range(6):
                p, t = pred[b, :, i, j], target[b, :, i, j]
                c = 1 - (p @ t / (p.norm() * t.norm())).item()
                if s.target[b, i, j]:
                    ne.append(c)
                elif s.target_empty[b, i, j]:
                    e.append(c)

    def hinge(x, cells):
        return sum(max(0.0, 1 / 16 - (x[b, d][cells[b]].var().item() + 1e-4) ** 0.5) for b in range(2)
                   for d in range(4)) / 8

    small = 0.01 * context                                                 # spread below 1/16: the hinge is active
    ref = 0.75 * np.mean(ne) + 0.25 * np.mean(e) + hinge(context, s.context) + hinge(pred, s.target)
    assert out["loss"].item() == pytest.approx(ref, rel=1e-5)
    out2 = adl_jepa_loss(pred, target, small, s)
    assert out2["var_context"].item() == pytest.approx(hinge(small, s.context), rel=1e-5) and out2["var_context"] > 0
    assert adl_jepa_loss(target, target, context, s)["nonempty"].item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.skipif(not (DATA / "nuscenes_lidar_top_1frame.npz").exists(),
                    reason="../shared/data nuScenes sweep absent")
def test_adljepa_pretrains_on_the_nuscenes_sweep(tmp_path):
    """The recipe takes a nuScenes sweep (which faces y) through the same loader and trains on it."""
    import json

    from polyjepa.cli import main

    run = tmp_path / "nus"
    assert main(["pretrain", "adljepa-kitti", "--data", str(DATA / "nuscenes_lidar_top_1frame.npz"), "--out",
                 str(run), "data.x_range=[-40,40]", "data.y_range=[0,70.4]", "data.copies=2", "train.max_steps=2",
                 "train.batch_size=2", "train.monitor_every=0", "eval.baselines=false", "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["n_train"] == 2
    assert np.isfinite(summary["final_loss"])

"""Point-cloud data: voxel grids to clouds, files and arrays, official splits, augmentations, errors."""
import numpy as np
import pytest
import torch

from polyjepa.errors import UserError
from polyjepa.points import PointAugment, load_points, voxels_to_points
from polyjepa.points.data import sample_surface, surface_voxels
from polyjepa.points.meshio import read_off

from .conftest import SHARED_DATA


def box_grids():
    g = np.zeros((3, 8, 8, 8), np.int32)
    g[0, 2:6, 2:6, 2:6] = 1        # a 4^3 solid cube: 56 surface voxels, 8 interior
    g[1, 1:3, 1:7, 4] = 1          # a thin plate: all surface
    return g                        # g[2] is empty


def test_surface_voxels_and_clouds_inside_occupied_voxels():
    g = box_grids()
    s = surface_voxels(g)
    assert s[0].sum() == 4 ** 3 - 2 ** 3 and not s[0, 3:5, 3:5, 3:5].any() and s[1].sum() == 12
    x, kept = voxels_to_points(g, 100, surface=True, seed=0)
    assert x.shape == (2, 100, 3) and kept.tolist() == [0, 1]  # the empty grid is left out
    for cloud, i in zip(x, kept):
        vox = np.floor(cloud).astype(int)
        assert s[i][tuple(vox.T)].all()  # every point lies in a surface voxel
    assert len(np.unique(x[1], axis=0)) == 100  # 12 voxels, 100 points: the jitter keeps them distinct
    solid, _ = voxels_to_points(g[:1], 200, surface=False, seed=0)
    assert (np.floor(solid[0]).astype(int) == 3).all(1).any()  # interior voxels used without surface


def test_npz_with_official_split(tmp_path):
    g = box_grids()
    path = tmp_path / "vox.npz"
    np.savez(path, X_train=np.concatenate([g, g]), y_train=np.array([0, 1, 2, 0, 1, 2]), X_test=g[:2],
             y_test=np.array([0, 1]))
    d = load_points(str(path), points=64)
    assert d.x.shape == (4, 64, 3) and d.x_test.shape == (2, 64, 3)
    assert d.y.tolist() == [0, 1, 0, 1] and d.y_test.tolist() == [0, 1]
    assert d.meta == {"dropped_empty": {"train": 2, "test": 0}}
    r = np.linalg.norm(d.x, axis=-1)
    assert np.allclose(r.max(1), 1, atol=1e-5) and np.allclose(d.x.mean(1), 0, atol=1e-5)  # unit ball, centred


def test_cloud_arrays_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "c.npy", rng.normal(size=(5, 300, 3)))
    assert load_points(str(tmp_path / "c.npy"), points=128).x.shape == (5, 128, 3)
    np.savez(tmp_path / "l.npz", points=rng.normal(size=(6, 50, 3)), labels=np.array(list("abcabc")))
    d = load_points(str(tmp_path / "l.npz"), points=80)  # fewer points than asked: resampled with replacement
    assert d.x.shape == (6, 80, 3) and d.y.tolist() == [0, 1, 2, 0, 1, 2]
    np.save(tmp_path / "two.npy", rng.normal(size=(5, 300, 2)))
    with pytest.raises(UserError, match=r"must be \(n, points, 3\)"):
        load_points(str(tmp_path / "two.npy"))
    nan = rng.normal(size=(4, 300, 3))
    nan[2, 5] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(UserError, match="NaN or inf coordinates in 1 clouds"):
        load_points(str(tmp_path / "nan.npy"))
    np.save(tmp_path / "few.npy", rng.normal(size=(4, 10, 3)))
    with pytest.raises(UserError, match="fewer than data.min_points=32"):
        load_points(str(tmp_path / "few.npy"))
    with pytest.raises(UserError, match="does not exist"):
        load_points(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "nokey.npz", stuff=np.zeros(3))
    with pytest.raises(UserError, match="no point clouds"):
        load_points(str(tmp_path / "nokey.npz"))


CUBE_OFF = """OFF
8 6 0
0 0 0
1 0 0
1 1 0
0 1 0
0 0 1
1 0 1
1 1 1
0 1 1
4 0 1 2 3
4 4 5 6 7
4 0 1 5 4
4 2 3 7 6
4 1 2 6 5
4 0 3 7 4
"""


def write_ply(path, pts, binary):
    head = f"ply\nformat {'binary_little_endian' if binary else 'ascii'} 1.0\nelement vertex {len(pts)}\n" \
           "property float x\nproperty float y\nproperty float z\nend_header\n"
    body = pts.astype("<f4").tobytes() if binary else "".join(f"{a} {b} {c}\n" for a, b, c in pts).encode()
    path.write_bytes(head.encode() + body)


def test_mesh_and_ply_files_and_class_folders(tmp_path):
    (tmp_path / "cube.off").write_text(CUBE_OFF)
    verts, faces = read_off(tmp_path / "cube.off")
    assert verts.shape == (8, 3) and faces.shape == (12, 3)  # quads fanned into triangles
    p = sample_surface(verts, faces, 600, np.random.default_rng(0))
    assert np.allclose(np.abs(p - 0.5).max(1), 0.5)  # every point on a face of the unit cube
    assert np.abs(np.bincount(np.abs(p - 0.5).argmax(1), minlength=3) / 600 - 1 / 3).max() < 0.08  # by area
    x = load_points(str(tmp_path / "cube.off"), points=500).x
    assert x.shape == (1, 500, 3) and np.linalg.norm(x[0], axis=1).max() == pytest.approx(1, abs=1e-5)
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(100, 3)).astype(np.float32)
    for binary in (False, True):
        write_ply(tmp_path / "p.ply", pts, binary)
        got = load_points(str(tmp_path / "p.ply"), points=100).x[0]
        assert np.allclose(np.sort(got, axis=0), np.sort((pts - pts.mean(0)) / np.linalg.norm(pts - pts.mean(0), axis=1).max(), axis=0), atol=1e-4)
    for cls in ("chair", "table"):
        for split, n in (("train", 3), ("test", 2)):
            (tmp_path / "set" / cls / split).mkdir(parents=True)
            for i in range(n):
                write_ply(tmp_path / "set" / cls / split / f"{i}.ply", rng.normal(size=(60, 3)), binary=True)
    d = load_points(str(tmp_path / "set"), points=64)
    assert d.x.shape == (6, 64, 3) and d.x_test.shape == (4, 64, 3)
    assert sorted(d.y.tolist()) == [0, 0, 0, 1, 1, 1] and sorted(d.y_test.tolist()) == [0, 0, 1, 1]


def test_upper_case_suffixes_bad_face_indices_and_corrupt_npz_members(tmp_path):
    from polyjepa.config import DataConfig
    from polyjepa.data.prepare import load_data

    (tmp_path / "up").mkdir()
    for i in range(3):
        (tmp_path / "up" / f"c{i}.OFF").write_text(CUBE_OFF)   # read as OFF, not PLY
    assert load_points(str(tmp_path / "up"), points=64).x.shape == (3, 64, 3)
    assert load_points(str(tmp_path / "up" / "c0.OFF"), points=64).x.shape == (1, 64, 3)
    (tmp_path / "bad.off").write_text(CUBE_OFF.replace("4 0 3 7 4", "4 0 3 7 9"))
    with pytest.raises(UserError, match="refers to vertex 9 but the file has 8 vertices"):
        load_points(str(tmp_path / "bad.off"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "c.npz", points=rng.normal(size=(4, 300, 3)))
    raw = bytearray((tmp_path / "c.npz").read_bytes())
    raw[1000:1100] = b"x" * 100                               # the zip directory is intact, a member is not
    (tmp_path / "c.npz").write_bytes(bytes(raw))
    with pytest.raises(UserError, match="corrupt or unreadable"):
        load_data(DataConfig(loader="points", source=str(tmp_path / "c.npz")))
    np.savez(tmp_path / "ragged.npz", points=np.array([np.zeros((40, 3)), np.zeros((50, 3))], dtype=object))
    with pytest.raises(UserError, match="does not unpickle: store one numeric array"):
        load_data(DataConfig(loader="points", source=str(tmp_path / "ragged.npz")))


def test_column_labels_as_hdf5_exports_store_them(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "s.npz", X_train=rng.normal(size=(4, 50, 3)), X_test=rng.normal(size=(2, 50, 3)),
             y_train=np.array([[0], [1], [0], [1]]), y_test=np.array([[1], [0]]))
    d = load_points(str(tmp_path / "s.npz"), points=32)
    assert d.y.tolist() == [0, 1, 0, 1] and d.y_test.tolist() == [1, 0]


def test_augment_rotates_about_the_up_axis():
    x = torch.randn(6, 50, 3)
    g = torch.Generator().manual_seed(0)
    y = PointAugment(scale=None, rotate=True, translate=0.0, up_axis=2)(x, g)
    assert torch.allclose(y[..., 2], x[..., 2])                                  # height kept
    assert torch.allclose(y[..., :2].norm(dim=-1), x[..., :2].norm(dim=-1), atol=1e-5)  # a rotation in the plane
    assert not torch.allclose(y, x)
    t = PointAugment(scale=(0.8, 1.2), rotate=False, translate=0.2)
    a, b = t(x, torch.Generator().manual_seed(1)), t(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    shift = a.mean(1) - x.mean(1) * (a - a.mean(1, keepdim=True)).std(1) / (x - x.mean(1, keepdim=True)).std(1)
    assert shift.abs().max() <= 0.2 + 1e-4
    ratio = (a - a.mean(1, keepdim=True)).abs().amax(1) / (x - x.mean(1, keepdim=True)).abs().amax(1)
    assert ((ratio > 0.8 - 1e-4) & (ratio < 1.2 + 1e-4)).all()


@pytest.mark.slow  # decompresses 500 MB of voxels
@pytest.mark.skipif(not (SHARED_DATA / "modelnet10_vox32.npz").exists(), reason="needs ../shared/data/modelnet10_vox32.npz")
def test_modelnet10_official_split():
    d = load_points(str(SHARED_DATA / "modelnet10_vox32.npz"), points=64)
    assert d.x.shape == (3991 - 27, 64, 3) and d.x_test.shape == (908 - 7, 64, 3)
    assert d.meta["dropped_empty"] == {"train": 27, "test": 7}
    assert set(d.y.tolist()) == set(range(10)) == set(d.y_test.tolist())


def test_augment_transform_is_the_map_call_applies():
    x = torch.randn(5, 40, 3)
    for kw in ({}, {"scale": None}, {"rotate": False, "translate": 0.0}, {"scale": (0.5, 2.0), "max_angle": 30.0}):
        aug = PointAugment(**kw)
        A, t = aug.transform(x, torch.Generator().manual_seed(2))
        assert A.shape == (5, 3, 3) and t.shape == (5, 3)
        assert torch.allclose(x @ A.transpose(1, 2) + t.unsqueeze(1), aug(x, torch.Generator().manual_seed(2)), atol=1e-5)

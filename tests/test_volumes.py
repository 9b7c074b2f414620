"""Volumes: readers, the cubic patch tokenizer, 3-D views, the contrastive-clustering objective, and the
clustering metrics against independent computations."""
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from polyjepa.errors import UserError
from polyjepa.volumes.augment import VolumeAugment, warp
from polyjepa.volumes.contrastive_clustering import (ContrastiveClustering, cluster_entropy,
                                                     contrastive_clustering_loss)
from polyjepa.volumes.data import downsample, load_volumes
from polyjepa.volumes.metrics import (adjusted_rand_index, clustering_accuracy, clustering_scores,
                                      normalized_mutual_info)
from polyjepa.volumes.tokenizer import VolumePatchEmbed, volume_backbone

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def brute_force_accuracy(y, c):
    classes, clusters = np.unique(y), np.unique(c)
    best = 0
    for perm in itertools.permutations(range(max(len(classes), len(clusters))), len(clusters)):
        hits = sum(np.sum((c == cl) & (y == classes[p])) for cl, p in zip(clusters, perm) if p < len(classes))
        best = max(best, hits)
    return best / len(y)


def test_metrics_on_a_known_assignment():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    renamed = np.array([5, 5, 5, 3, 3, 3, 9, 9, 9])                   # the same partition under other names
    assert clustering_scores(y, renamed) == {"acc": 1.0, "nmi": 1.0, "ari": 1.0}
    one_wrong = np.array([5, 5, 3, 3, 3, 3, 9, 9, 9])
    assert clustering_accuracy(y, one_wrong) == pytest.approx(8 / 9)
    merged = np.zeros(9, dtype=int)                                    # everything in one cluster
    assert clustering_accuracy(y, merged) == pytest.approx(1 / 3) and adjusted_rand_index(y, merged) == 0.0
    assert normalized_mutual_info(y, merged) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 60)
    c = np.where(rng.random(60) < 0.6, y, rng.integers(0, 5, 60))    # partly right, with a fifth cluster
    assert clustering_accuracy(y, c) == pytest.approx(brute_force_accuracy(y, c))


def test_metrics_refuse_mismatched_labels():
    with pytest.raises(ValueError, match="equally long"):
        clustering_accuracy(np.zeros(3), np.zeros(4))


def test_downsample_averages_cubes():
    x = np.arange(2 * 4 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4, 4)
    d = downsample(x, 2)
    assert d.shape == (2, 1, 2, 2, 2)
    assert d[1, 0, 1, 0, 1] == pytest.approx(x[1, 0, 2:4, 0:2, 2:4].mean())
    with pytest.raises(UserError, match="multiples"):
        downsample(np.zeros((1, 1, 5, 4, 4), np.float32), 2)


def test_bad_volume_files_are_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_volumes(tmp_path / "none.npz")
    np.savez(tmp_path / "keys.npz", a=np.zeros(3))
    with pytest.raises(UserError, match="expected X_train"):
        load_volumes(tmp_path / "keys.npz")
    bad = np.zeros((4, 8, 8, 8), np.float32)
    bad[1, 2, 3, 4] = np.nan
    np.savez(tmp_path / "nan.npz", X_train=bad, y_train=np.zeros(4), X_test=np.zeros((2, 8, 8, 8)), y_test=np.zeros(2))
    with pytest.raises(UserError, match="NaN or inf"):
        load_volumes(tmp_path / "nan.npz")
    np.savez(tmp_path / "flat.npz", X_train=np.zeros((4, 8, 8)), y_train=np.zeros(4), X_test=np.zeros((2, 8, 8)),
             y_test=np.zeros(2))
    with pytest.raises(UserError, match=r"\(N, D, H, W\)"):
        load_volumes(tmp_path / "flat.npz")
    np.savez(tmp_path / "count.npz", X_train=np.zeros((4, 8, 8, 8)), y_train=np.zeros(3),
             X_test=np.zeros((2, 8, 8, 8)), y_test=np.zeros(2))
    with pytest.raises(UserError, match="4 train volumes but 3 labels"):
        load_volumes(tmp_path / "count.npz")


@pytest.mark.skipif(not (DATA / "adrenalmnist3d_28.npz").exists(), reason="../shared/data/adrenalmnist3d_28.npz absent")
def test_adrenal_official_split():
    v = load_volumes(DATA / "adrenalmnist3d_28.npz")
    assert v.x_train.shape == (1188, 1, 28, 28, 28) and v.x_test.shape == (298, 1, 28, 28, 28)
    assert v.x_train.max() == 1.0 and v.x_train.min() == 0.0 and set(np.unique(v.y_test)) == {0, 1}


def test_patch_tokenizer_cuts_cubes_in_depth_major_order():
    tok = VolumePatchEmbed(input_shape=(1, 8, 8, 8), patch_size=4, dim=8)
    assert tok.num_tokens == 8 and tok.grid == (2, 2, 2)
    x = torch.zeros(1, 1, 8, 8, 8)
    x[0, 0, 4:, :4, 4:] = 1.0                                          # the cube at grid (1, 0, 1) -> token 5
    with torch.no_grad():
        h = tok(x) - tok.pos_embed
    changed = (h.abs().sum(-1) > 1e-6).nonzero()[:, 1].tolist()
    assert changed == [5]
    with pytest.raises(UserError, match="multiples of 3"):
        VolumePatchEmbed(input_shape=(1, 8, 8, 8), patch_size=3, dim=8)


def test_augment_identity_mirror_and_seeding():
    x = torch.rand(3, 1, 8, 8, 8)
    g = torch.Generator().manual_seed(0)
    off = dict(rotate=0.0, scale=(1.0, 1.0), translate=0.0, noise=0.0, cutout=0.0)
    assert torch.allclose(VolumeAugment(flip=0.0, **off)(x, g), x, atol=1e-5)
    assert torch.allclose(VolumeAugment(flip=1.0, **off)(x, g), x.flip(2), atol=1e-5)
    a = VolumeAugment()(x, torch.Generator().manual_seed(1))
    b = VolumeAugment()(x, torch.Generator().manual_seed(1))
    c = VolumeAugment()(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(UserError, match="augment.scale"):
        VolumeAugment(scale=(1.2, 0.8))


def test_quarter_turn_about_the_up_axis_is_rot90_of_d_and_h():
    x = torch.rand(2, 1, 6, 6, 6)
    ones, zeros = torch.ones(2, 3), torch.zeros(2, 3)
    no = torch.zeros(2, dtype=torch.bool)
    turned = warp(x, torch.full((2,), math.pi / 2), ones, zeros, no)
    k1, k3 = torch.rot90(x, 1, dims=(2, 3)), torch.rot90(x, -1, dims=(2, 3))
    assert torch.allclose(turned, k1, atol=1e-5) and not torch.allclose(turned, k3, atol=1e-3)
    # a zoom-out by 2 leaves the centre voxel of a volume of odd side where it was
    y = torch.zeros(1, 1, 5, 5, 5)
    y[0, 0, 2, 2, 2] = 1.0
    zoom = warp(y, torch.zeros(1), torch.full((1, 3), 2.0), torch.zeros(1, 3), torch.zeros(1, dtype=torch.bool))
    assert zoom[0, 0, 2, 2, 2] > 0.1 and zoom[0, 0, 0, 0, 0] == 0


def test_contrastive_clustering_loss_terms():
    torch.manual_seed(0)
    k, n = 4, 16
    assert cluster_entropy(torch.full((n, k), 1 / k)).item() == pytest.approx(math.log(k))
    assert cluster_entropy(torch.eye(k)[torch.zeros(n, dtype=torch.long)]).item() == pytest.approx(0.0, abs=1e-6)
    z = torch.randn(n, 8)
    p = torch.randn(n, k).softmax(-1)
    out = contrastive_clustering_loss(z, z + 0.01 * torch.randn(n, 8), p, p, entropy_weight=1.0)
    # independent NT-Xent over the cluster columns: 2K anchors, positive = the same cluster in the other view
    cols = torch.nn.functional.normalize(torch.cat([p.T, p.T]), dim=1)
    sim = cols @ cols.T
    sim.fill_diagonal_(float("-inf"))
    pos = torch.cat([torch.arange(k, 2 * k), torch.arange(k)])
    ref = torch.stack([-(sim[i, pos[i]] - torch.logsumexp(sim[i], 0)) for i in range(2 * k)]).mean()
    assert out["cluster"].item() == pytest.approx(ref.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((out["instance"] + out["cluster"] - out["entropy"]).item(), rel=1e-6)


def test_every_parameter_of_the_clustering_model_gets_a_gradient():
    torch.manual_seed(0)
    model = ContrastiveClustering(volume_backbone(input_shape=(1, 8, 8, 8), patch_size=4, dim=16, depth=1, heads=2),
                                  clusters=3)
    x = torch.rand(6, 1, 8, 8, 8)
    z, p = model(torch.cat([x, x.flip(2)]))
    assert p.shape == (12, 3) and torch.allclose(p.sum(-1), torch.ones(12))
    contrastive_clustering_loss(z[:6], z[6:], p[:6], p[6:])["loss"].backward()
    assert all(q.grad is not None and torch.isfinite(q.grad).all() for q in model.parameters())
    assert model.assign(x).shape == (6,)

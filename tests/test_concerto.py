"""Concerto: cameras, the z-buffer renderer, the point-to-patch correspondence and the method."""
from __future__ import annotations

import math

import pytest
import torch

from polyjepa.concerto import (Cameras, cross_modal_loss, depth_image, orbit_cameras, patch_group_weights,
                               pool_patches, project, render_points, render_voxels, visible, visible_patches)
from polyjepa.concerto.parts import depth_ijepa
from polyjepa.errors import UserError

CUBE = torch.tensor([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])[None]  # (1, 8, 3)


def front_camera(kind: str = "pinhole") -> Cameras:
    """Identity rotation, the cube's centre 3 units ahead; f = 8 px, principal point (16, 16), 32 x 32."""
    return Cameras(torch.eye(3)[None], torch.tensor([[0.0, 0.0, 3.0]]), torch.tensor([[8.0, 8.0, 16.0, 16.0]]),
                   (32, 32), kind)


def test_cube_projection_pinhole_matches_hand_computation():
    r = render_points(CUBE, front_camera())
    # corner (x, y, z): depth 3 + z; u = 16 + 8 x / (3 + z), v = 16 + 8 y / (3 + z)
    # (-.5, -.5, -.5): depth 2.5, u = v = 16 - 1.6 = 14.4 -> pixel (14, 14)
    # (+.5, +.5, +.5): depth 3.5, u = v = 16 + 4 / 3.5 = 17.142857 -> pixel (17, 17)
    assert r.point_depth[0, 0, 0].item() == pytest.approx(2.5)
    assert r.uv[0, 0, 0].tolist() == pytest.approx([14.4, 14.4])
    assert r.point_depth[0, 0, 7].item() == pytest.approx(3.5)
    assert r.uv[0, 0, 7].tolist() == pytest.approx([17.142857, 17.142857])
    assert r.pixel[0, 0, 0].item() == 14 * 32 + 14 and r.pixel[0, 0, 7].item() == 17 * 32 + 17
    # (+.5, -.5, -.5): u = 17.6, v = 14.4 -> row 14, col 17
    assert r.pixel[0, 0, 4].item() == 14 * 32 + 17
    # the four near corners are drawn at their depth 2.5; each far corner shares a pixel with a near one
    drawn = r.depth[0, 0][r.silhouette[0, 0]]
    assert sorted(drawn.tolist()) == pytest.approx([2.5] * 4)
    assert r.depth[0, 0, 14, 14].item() == pytest.approx(2.5)


def test_cube_projection_orthographic():
    r = render_points(CUBE, front_camera("orthographic"))
    # u = 16 + 8 x: the corners land on columns/rows 12 and 20, whatever their depth
    assert r.uv[0, 0, :, 0].tolist() == pytest.approx([12, 12, 12, 12, 20, 20, 20, 20])
    assert r.point_depth[0, 0].tolist() == pytest.approx([2.5, 3.5] * 4)
    assert int(r.silhouette.sum()) == 4


def test_each_point_is_drawn_where_it_projects():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 200, 3, generator=g) * 2 - 1
    cams = orbit_cameras(azimuths=[0.0, 100.0], size=24, fov=80.0)
    r = render_points(x, cams)
    uv, depth, inside = project(x, cams)
    assert inside.all()                                         # the orbit frames the unit cube
    row, col = uv[..., 1].floor().long(), uv[..., 0].floor().long()
    b, v = torch.meshgrid(torch.arange(3), torch.arange(2), indexing="ij")
    at = r.depth[b[..., None], v[..., None], row, col]          # (B, V, P): depth drawn at each point's pixel
    assert torch.all(at <= depth + 1e-6)                        # something no farther is drawn there
    vis = visible(r, tolerance=0.0)
    assert torch.allclose(at[vis], depth[vis])                  # a visible point is the one drawn
    assert vis.any(-1).all()
    # each drawn pixel is the projection of some point
    hit = torch.zeros_like(r.silhouette)
    hit.view(3, 2, -1).scatter_(2, r.pixel.clamp(min=0), torch.ones_like(r.pixel, dtype=torch.bool))
    assert torch.equal(hit, r.silhouette)


def test_zbuffer_keeps_the_nearest_point():
    cam = front_camera()
    near = torch.tensor([[0.1, 0.1, 0.0]])
    far = near * (5.0 / 3.0) + torch.tensor([[0.0, 0.0, 2.0]])  # same ray through the camera centre, 2 units behind
    for pts in (torch.cat([near, far]), torch.cat([far, near])):  # order does not matter
        r = render_points(pts[None], cam)
        assert r.pixel[0, 0, 0] == r.pixel[0, 0, 1]
        assert int(r.silhouette.sum()) == 1
        assert r.depth[0, 0].view(-1)[r.pixel[0, 0, 0]].item() == pytest.approx(3.0)
        vis = visible(r, tolerance=0.1)[0, 0]
        assert vis[(pts[:, 2] == 0).nonzero().item()] and not vis[(pts[:, 2] == 2).nonzero().item()]


def test_splat_covers_the_neighbourhood_and_voxels_render():
    r = render_points(torch.zeros(1, 1, 3), front_camera(), splat=1)
    assert int(r.silhouette.sum()) == 9 and r.silhouette[0, 0, 15:18, 15:18].all()
    grid = torch.zeros(1, 4, 4, 4)
    grid[0, 1:3, 1:3, 1:3] = 1                                  # a cube of 2^3 voxels = [-0.5, 0.5]^3
    rv = render_voxels(grid, front_camera(), samples=2)
    assert rv.depth[0, 0][rv.silhouette[0, 0]].min().item() == pytest.approx(3.0 - 0.5 + 0.125)  # nearest sub-sample
    img = depth_image(rv.depth, near=2.0, far=4.0, silhouette=True)
    assert img.shape == (1, 1, 2, 32, 32) and torch.equal(img[:, :, 1].bool(), rv.silhouette)
    assert img[:, :, 0][~rv.silhouette].abs().max() == 0 and img.max() <= 1


def test_pooling_per_patch_equals_a_direct_loop():
    g = torch.Generator().manual_seed(1)
    B, G, K, D, patch = 2, 5, 6, 4, 8
    x = torch.rand(B, G * K, 3, generator=g) * 1.6 - 0.8
    cams = orbit_cameras(azimuths=[20.0, 200.0], size=32)
    r = render_points(x, cams, splat=1)
    idx = visible_patches(x, r, cams, patch=patch, tolerance=0.1)          # (B, V, Q)
    group = torch.arange(G).repeat_interleave(K)
    w = patch_group_weights(idx, group, n_patches=16, n_groups=G)          # (B, V * 16, G)
    feats = torch.randn(B, G, D, generator=g)
    pooled, hit = pool_patches(feats, w)
    for b in range(B):
        for v in range(2):
            for p in range(16):
                members = [q for q in range(G * K) if idx[b, v, q] == p]
                assert hit[b, v * 16 + p].item() == bool(members)
                if members:
                    want = torch.stack([feats[b, group[q]] for q in members]).mean(0)
                    assert torch.allclose(pooled[b, v * 16 + p], want, atol=1e-6)
    assert hit.sum() > 4 and (~hit).sum() > 4                               # both kinds of patch occur
    # the cross-modal loss is 1 - cos over the hit patches
    target = torch.randn(B, 32, D, generator=g)
    want = (1 - torch.nn.functional.cosine_similarity(pooled[hit], target[hit], dim=-1)).mean()
    assert cross_modal_loss(feats, w, target).item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("bad, words", [
    (torch.tensor([[[0.0, float("nan"), 0.0]]]), "NaN"),
    (torch.zeros(1, 0, 3), "empty"),
    (torch.tensor([[[0.0, 0.0, -10.0]]]), "none of the 1 images"),          # behind the camera
])
def test_bad_input_is_one_clear_user_error(bad, words):
    with pytest.raises(UserError, match=words) as e:
        render_points(bad, front_camera())
    assert "\n" not in str(e.value)


def test_camera_looking_away_in_visible_patches():
    r = render_points(CUBE, front_camera())
    idx = visible_patches(CUBE + torch.tensor([0.0, 0.0, -10.0]), r, front_camera(), patch=8, tolerance=0.1)
    assert (idx == -1).all()
    with pytest.raises(UserError, match="patch"):
        visible_patches(CUBE, r, front_camera(), patch=5, tolerance=0.1)


def test_orbit_cameras_look_at_the_origin():
    cams = orbit_cameras(azimuths=[0.0, 90.0, 215.0], elevation=25.0, distance=2.5, size=20)
    uv, depth, inside = project(torch.zeros(1, 1, 3), cams)
    assert torch.allclose(uv, torch.full_like(uv, 10.0), atol=1e-5) and inside.all()
    assert torch.allclose(depth, torch.full_like(depth, 2.5), atol=1e-5)
    # up stays up: a point above the origin lands above the centre (smaller row)
    uv_up, _, _ = project(torch.tensor([[[0.0, 0.0, 0.5]]]), cams)
    assert (uv_up[..., 1] < 10).all() and torch.allclose(uv_up[..., 0], torch.full_like(uv_up[..., 0], 10.0), atol=1e-4)
    # orthographic framing: the square of side 2 d tan(fov/2) at the origin fills the image
    ortho = orbit_cameras(azimuths=[0.0], elevation=0.0, distance=2.0, size=20, fov=90.0, kind="orthographic")
    edge = 2.0 * math.tan(math.radians(45.0))
    uv_edge, _, _ = project(torch.tensor([[[0.0, edge, 0.0]]]), ortho)  # azimuth 0: camera on +x, y is to the right
    assert uv_edge[0, 0, 0].tolist() == pytest.approx([20.0, 10.0], abs=1e-4)  # the right edge, mid-height


def tiny_concerto(**kw):
    from polyjepa.concerto.method import Concerto
    from polyjepa.models.encoder import vit_encoder
    from polyjepa.points.backbone import PointBackbone
    from polyjepa.points.tokenizer import PointGroupTokenizer

    cams = orbit_cameras(azimuths=[0.0, 180.0], size=16)
    backbone = PointBackbone(PointGroupTokenizer(dim=32, n_groups=8, group_size=8, widths=(16, 16, 32)),
                             vit_encoder("micro", dim=32, depth=1, heads=2))
    image = depth_ijepa(image_size=cams.size, patch_size=4, dim=16, depth=1, heads=2, predictor_dim=16,
                        predictor_depth=1, predictor_heads=2, n_targets=2)
    return Concerto(backbone=backbone, image=image, cameras=cams, prototypes=16, head_hidden=32, bottleneck=8,
                    cross_hidden=16, **kw)


def clouds(n=4, p=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, 3, generator=g)
    return x / x.norm(dim=-1, keepdim=True).amax(1, keepdim=True)


def test_teacher_and_2d_encoder_get_no_gradient_in_the_3d_stage():
    torch.manual_seed(0)
    m = tiny_concerto(image_share=0.3)
    m.progress.fill_(0.5)                                                   # past the 2-D stage
    batch = m.make_batch(clouds(), torch.Generator().manual_seed(0), progress=0.5)
    assert batch["weights"].shape == (4, 2 * 16, 8) and batch["weights"].sum() > 0
    out = m.loss(batch)
    assert out["sd"] > 0 and out["cross"] > 0
    out["loss"].backward()
    for name, p in m.named_parameters():
        frozen = name.startswith(("teacher.", "image."))
        assert (p.grad is None) == frozen, name
        if not frozen:
            assert torch.isfinite(p.grad).all(), name
    assert not any(p.requires_grad for p in m.teacher.parameters())
    assert not any(p.requires_grad for p in m.image.target.parameters())


def test_2d_stage_trains_only_the_image_jepa_then_freezes_it():
    torch.manual_seed(0)
    m = tiny_concerto(image_share=0.5)
    assert m.image_start(10) == 5 and m.image_start(3) == 2 and tiny_concerto(image_share=0.0).image_start(7) == 0
    batch = m.make_batch(clouds(), torch.Generator().manual_seed(1))
    out = m.loss(batch)
    assert out["image_jepa"] > 0 and out["sd"] == 0
    out["loss"].backward()
    assert all(p.grad is None for n, p in m.named_parameters() if not n.startswith("image."))
    assert m.image.backbone.tokenizer.proj.weight.grad is not None
    teacher_before = [p.clone() for p in m.teacher.parameters()]
    with torch.no_grad():
        for p in m.image.backbone.parameters():
            p.add_(0.1)
    image_before = [p.clone() for p in m.image.target.parameters()]
    m.update_target(4, 10)                                                  # the last 2-D step: the image EMA moves
    assert not all(torch.equal(a, b) for a, b in zip(image_before, m.image.target.parameters()))
    frozen = [p.clone() for p in m.image.target.parameters()]
    assert not m.in_image_stage() and float(m.progress) == 0.5
    assert all(torch.equal(a, b) for a, b in zip(teacher_before, m.teacher.parameters()))
    with torch.no_grad():
        for p in m.backbone.parameters():
            p.add_(0.1)
    m.update_target(5, 10)                                                  # a 3-D step moves the 3-D teacher only
    assert not all(torch.equal(a, b) for a, b in zip(teacher_before, m.teacher.parameters()))
    m.update_target(6, 10)
    assert all(torch.equal(a, b) for a, b in zip(frozen, m.image.target.parameters()))   # the 2-D teacher is frozen


def test_make_batch_is_seeded_and_views_share_tokens():
    m = tiny_concerto()
    x = clouds()
    a = m.make_batch(x, torch.Generator().manual_seed(3), progress=0.5)
    b = m.make_batch(x, torch.Generator().manual_seed(3), progress=0.5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the two views are affine images of one grouping: patch point spreads agree up to the per-axis scale
    ratio = a["patches"].std((1, 2)) / a["patches2"].std((1, 2))           # (B, 3)
    assert ((ratio > 0.8 / 1.2 - 0.05) & (ratio < 1.2 / 0.8 + 0.05)).all()
    assert a["keep_idx"].shape == (4, 4)


def test_batches_hold_what_their_stage_uses_and_sd_only_renders_nothing(monkeypatch):
    import polyjepa.concerto.method as concerto_method

    m = tiny_concerto(image_share=0.5)
    image = m.make_batch(clouds(), torch.Generator().manual_seed(0), progress=0.4)
    assert bool(image["image_stage"]) and image["images"].shape == (4, 2, 1, 16, 16)
    assert "centres" not in image and "weights" not in image               # no point views in the 2-D stage
    joint = m.make_batch(clouds(), torch.Generator().manual_seed(0), progress=0.5)
    assert not bool(joint["image_stage"]) and {"images", "weights", "keep_idx"} <= joint.keys()
    assert "context_idx" not in joint                                       # no 2-D masks in the 3-D stage

    def no_render(*a, **k):
        raise AssertionError("rendered although nothing uses the renders")

    sd_only = tiny_concerto(image_share=0.0, cross_weight=0.0)
    monkeypatch.setattr(concerto_method, "render_points", no_render)
    monkeypatch.setattr(sd_only, "image_targets", no_render)                # nor runs the 2-D teacher
    batch = sd_only.make_batch(clouds(), torch.Generator().manual_seed(0), progress=0.0)
    assert not bool(batch["image_stage"]) and "images" not in batch and "weights" not in batch
    out = sd_only.loss(batch)
    assert out["sd"] > 0 and out["cross"] == 0 and out["image_jepa"] == 0
    out["loss"].backward()
    assert all(p.grad is not None for p in sd_only.backbone.tokenizer.patch_embed.parameters())


def test_each_stage_has_its_own_warmup_and_cosine():
    from types import SimpleNamespace

    from polyjepa.train.schedules import apply_schedules, stage_starts, warmup_cosine

    m = tiny_concerto(image_share=0.3)
    total, start = 100, m.image_start(100)
    assert start == 30 and stage_starts(m, total) == [0, 30]
    assert stage_starts(tiny_concerto(image_share=0.0), total) == [0]      # no 2-D stage: one schedule
    assert stage_starts(torch.nn.Linear(2, 2), total) == [0]               # a method without stages
    tc = SimpleNamespace(lr=1e-3, start_lr=1e-5, final_lr=1e-6, warmup=0.1, weight_decay=(0.04, 0.4))
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    opt.param_groups[0]["apply_wd"] = True
    lrs = [apply_schedules(opt, s, total, tc, stage_starts=stage_starts(m, total))[0] for s in range(total)]
    wds = [apply_schedules(opt, s, total, tc, stage_starts=stage_starts(m, total))[1] for s in range(total)]
    assert lrs[0] == lrs[start] == pytest.approx(1e-5)                     # the 3-D stage starts its warm-up
    assert lrs[3] == lrs[start + 7] == pytest.approx(1e-3)                 # peak after 10% of each stage's steps
    assert lrs[start - 1] < 2e-5 and wds[start] == pytest.approx(0.04) and wds[start - 1] > 0.35
    for s in range(start, total):                                          # the 3-D stage: one schedule of 70 steps
        assert lrs[s] == pytest.approx(warmup_cosine(s - start, 70, start=1e-5, peak=1e-3, final=1e-6, warmup_steps=7))
    one = [apply_schedules(opt, s, total, tc)[0] for s in range(total)]    # the default: one schedule, as before
    assert one == [warmup_cosine(s, total, start=1e-5, peak=1e-3, final=1e-6, warmup_steps=10) for s in range(total)]


def test_recipe_runs_end_to_end(tmp_path):
    import numpy as np

    import polyjepa as pj

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 128, 3))
    x[::2] /= np.linalg.norm(x[::2], axis=-1, keepdims=True)
    np.savez(tmp_path / "c.npz", points=x, labels=np.arange(32) % 2)
    small = ["data.points=64", "tokenizer.n_groups=8", "tokenizer.group_size=8", "tokenizer.widths=[16,16,32]",
             "encoder.dim=32", "encoder.depth=1", "encoder.heads=2", "teacher2d.dim=16", "teacher2d.depth=1",
             "teacher2d.heads=2", "teacher2d.predictor_dim=16", "teacher2d.predictor_depth=1", "cameras.size=16",
             "method.prototypes=16", "method.head_hidden=32", "train.batch_size=8", "train.max_steps=4",
             "eval.monitor_samples=16", "eval.baselines=false", "train.threads=1"]
    s = pj.pretrain("concerto-modelnet10", data=str(tmp_path / "c.npz"), out=str(tmp_path / "run"),
                    overrides=small + ["train.log_every=1", "train.warmup=0.5"], progress=False, echo=lambda *a: None)
    assert s["steps"] == 4 and np.isfinite(s["final_loss"])
    import csv

    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        lr = [float(r["lr"]) for r in csv.DictReader(f) if r.get("lr")]
    # 2 steps of 2-D teacher, then 2 of 3-D student (image_share 0.3 of 4): each stage warms up from start_lr
    assert lr == pytest.approx([1e-5, 1e-3, 1e-5, 1e-3])
    with pytest.raises(UserError, match="camera kind"):
        pj.pretrain("concerto-modelnet10", data=str(tmp_path / "c.npz"), out=str(tmp_path / "run2"),
                    overrides=small + ["cameras.kind=fisheye"], progress=False, echo=lambda *a: None)

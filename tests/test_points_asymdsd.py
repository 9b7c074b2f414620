"""AsymDSD on point clouds: cross-attention-only predictor, asymmetric student, iBOT loss, EMA teacher, inputs."""
import math

import pytest
import torch

import polyjepa as pj
from polyjepa.build import build_method
from polyjepa.errors import UserError
from polyjepa.points.asymdsd import CrossAttentionPredictor, crop_cloud, ibot_patch_loss, inverse_block_mask
from polyjepa.points.tokenizer import PointGroups, group_points

SMALL = ["data.points=64", "tokenizer.n_groups=8", "tokenizer.group_size=8", "tokenizer.widths=[16,16,32]",
         "encoder.dim=32", "encoder.depth=2", "encoder.heads=2", "predictor.dim=16", "predictor.depth=2",
         "predictor.heads=2", "method.local_groups=4", "method.head_hidden=32", "method.head_bottleneck=16",
         "method.cls_prototypes=64", "method.patch_prototypes=64", "method.n_local=2"]


def small_method(extra=()):
    cfg = pj.load_recipe("asymdsd-modelnet10", SMALL + list(extra))
    return build_method(cfg, (64, 3), 0, {})


def clouds(n=6, p=64, seed=0):
    x = torch.randn(n, p, 3, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=-1, keepdim=True).amax(1, keepdim=True)


def test_predictor_queries_do_not_attend_to_each_other():
    torch.manual_seed(0)
    pred = CrossAttentionPredictor(in_dim=16, dim=16, depth=3, heads=2).eval()
    z, cc = torch.randn(2, 5, 16), torch.randn(2, 5, 3)
    tc = torch.randn(2, 1, 6, 3)
    out = pred(z, cc, tc)
    moved = tc.clone()
    moved[:, 0, 2] += 3.0                                                  # change one query's position
    out2 = pred(z, cc, moved)
    others = [i for i in range(6) if i != 2]
    assert torch.allclose(out[:, 0, others], out2[:, 0, others], atol=1e-6)
    assert not torch.allclose(out[:, 0, 2], out2[:, 0, 2], atol=1e-3)
    # alone, a query gives the same output as among the others
    alone = pred(z, cc, tc[:, :, 3:4])
    assert torch.allclose(alone[:, 0, 0], out[:, 0, 3], atol=1e-6)
    # and the context does matter
    assert not torch.allclose(pred(z + 1.0, cc, tc), out, atol=1e-3)


def test_student_never_sees_masked_patches():
    m = small_method()
    g = torch.Generator().manual_seed(0)
    batch = m.make_batch(clouds(), g)
    vis, msk = batch["visible_idx"], batch["masked_idx"]
    G = m.backbone.tokenizer.n_groups
    assert vis.shape[-1] == round(0.3 * G) and vis.shape[-1] + msk.shape[-1] == G
    both = torch.cat([vis, msk], -1).sort(-1).values
    assert torch.equal(both, torch.arange(G).expand_as(both))               # a partition of the patches
    gc, gp = batch["global_centres"].flatten(0, 1), batch["global_patches"].flatten(0, 1)
    v = vis.flatten(0, 1)
    z = m.backbone(PointGroups(gc, gp), keep_idx=v)
    # scramble the masked patches (shapes and centres): the student's output does not change
    noisy_p, noisy_c = gp.clone(), gc.clone()
    mk = msk.flatten(0, 1)
    rows = torch.arange(len(mk))[:, None]
    noisy_p[rows, mk] = torch.randn_like(noisy_p[rows, mk]) * 5
    noisy_c[rows, mk] = torch.randn_like(noisy_c[rows, mk]) * 5
    z2 = m.backbone(PointGroups(noisy_c, noisy_p), keep_idx=v)
    assert torch.allclose(z, z2, atol=1e-6)
    # a visible patch does change it
    noisy_p[rows[:, 0], v[:, 0]] += 1.0
    assert not torch.allclose(z, m.backbone(PointGroups(gc, noisy_p), keep_idx=v), atol=1e-4)
    # and the method's loss feeds its student exactly the visible patches
    seen, forward = [], m.backbone.forward

    def recording(x, keep_idx=None, layers=1):
        seen.append(keep_idx)
        return forward(x, keep_idx=keep_idx, layers=layers)

    m.backbone.forward = recording
    m.loss(batch)
    assert seen and seen[0] is not None and torch.equal(seen[0], v)


def test_inverse_block_mask_keeps_blocks_visible():
    c = torch.rand(3, 40, 3)
    vis, msk = inverse_block_mask(c, torch.Generator().manual_seed(1), ratio=0.7, block_ratio=0.1)
    assert vis.shape == (3, 12) and msk.shape == (3, 28)
    for b in range(3):                                                      # disjoint, together every patch
        assert sorted(vis[b].tolist() + msk[b].tolist()) == list(range(40))
    # the visible patches gather in a few blocks: closer together than as many random patches
    d = torch.cdist(c, c)
    spread_vis = torch.stack([d[b][vis[b]][:, vis[b]].mean() for b in range(3)])
    rand = torch.randperm(40, generator=torch.Generator().manual_seed(2))[:12]
    spread_rand = torch.stack([d[b][rand][:, rand].mean() for b in range(3)])
    assert (spread_vis < spread_rand).all()
    with pytest.raises(ValueError):
        inverse_block_mask(c, torch.Generator(), ratio=1.0)


def test_ibot_patch_loss_matches_an_independent_computation():
    g = torch.Generator().manual_seed(0)
    s, t, c = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g), torch.randn(5, generator=g)
    out = ibot_patch_loss(s, t, c, student_temp=0.1, teacher_temp=0.05, center_momentum=0.8)
    want = 0.0
    for i in range(7):
        e = [math.exp((t[i, k].item() - c[k].item()) / 0.05) for k in range(5)]
        pt = [v / sum(e) for v in e]
        logz = math.log(sum(math.exp(s[i, k].item() / 0.1) for k in range(5)))
        want += -sum(pt[k] * (s[i, k].item() / 0.1 - logz) for k in range(5))
    assert out["loss"].item() == pytest.approx(want / 7, rel=1e-5)
    # soft-label cross entropy in torch agrees too
    ref = torch.nn.functional.cross_entropy(s / 0.1, torch.softmax((t - c) / 0.05, -1))
    assert out["loss"].item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(out["center"], 0.8 * c + 0.2 * t.mean(0))
    # the gradient reaches the student only
    s.requires_grad_(True)
    t.requires_grad_(True)
    ibot_patch_loss(s, t, c)["loss"].backward()
    assert s.grad.abs().sum() > 0 and t.grad is None


def test_teacher_gets_no_gradient_and_follows_the_ema():
    m = small_method().train()
    batch = m.make_batch(clouds(), torch.Generator().manual_seed(0))
    out = m.loss(batch)
    assert {"cls_loss", "mpm_loss", "koleo"} <= set(out)
    out["loss"].backward()
    assert all(p.grad is None for p in m.teacher.parameters())
    assert all(not p.requires_grad for p in m.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.predictor.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.cls_head.parameters())
    with torch.no_grad():
        for p in m.backbone.parameters():
            p.add_(0.1)
    before = [p.clone() for p in m.teacher["backbone"].parameters()]
    mom = m.update_target(0, 10)
    assert mom == pytest.approx(0.995)                                       # cosine schedule starts at 0.995
    for t, s, b in zip(m.teacher["backbone"].parameters(), m.backbone.parameters(), before):
        assert torch.allclose(t, mom * b + (1 - mom) * s, atol=1e-6)
    assert m.update_target(10, 10) == pytest.approx(1.0)            # and ends at 1
    assert m.encoder() is m.teacher["backbone"]


def test_ablations_switch_off_one_branch():
    cls_only = small_method(["method.mpm_weight=0"])
    mpm_only = small_method(["method.cls_weight=0"])
    b = cls_only.make_batch(clouds(), torch.Generator().manual_seed(0))
    assert "mpm_loss" not in cls_only.loss(b) and "cls_loss" not in mpm_only.loss(b)
    assert all(cls_only.predictor is not m for m in cls_only.trainable_modules())
    with pytest.raises(UserError):
        small_method(["method.mpm_weight=0", "method.cls_weight=0"])


def test_patch_set_is_invariant_to_point_order():
    x = clouds(3, 64, seed=2)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(3))
    a, b = group_points(x, 8, 8), group_points(x[:, perm], 8, 8)
    assert torch.equal(a.centres, b.centres)
    # the same points in each patch (the order inside a patch may differ only among equal distances)
    assert torch.allclose(a.patches.sort(2).values, b.patches.sort(2).values)
    m = small_method().eval()
    assert torch.allclose(m.embed(x), m.embed(x[:, perm]), atol=1e-5)


def test_crops_are_local_and_normalised():
    x = clouds(4, 64)
    c = crop_cloud(x, torch.Generator().manual_seed(0), 20)
    assert c.shape == (4, 20, 3)
    assert torch.allclose(c.norm(dim=-1).amax(1), torch.ones(4), atol=1e-5)
    assert torch.allclose(c.mean(1), torch.zeros(4, 3), atol=1e-5)


def test_bad_clouds_give_one_line_user_errors():
    m = small_method()
    x = clouds()
    x[1, 3, 0] = float("nan")
    with pytest.raises(UserError, match="NaN") as e:
        m.make_batch(x, torch.Generator())
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="fewer than") as e:
        m.make_batch(clouds(2, 5), torch.Generator())
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="fewer than"):
        build_method(pj.load_recipe("asymdsd-modelnet10", SMALL + ["tokenizer.n_groups=80"]), (64, 3), 0, {})


def test_pretrain_runs_end_to_end(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    pts = rng.normal(size=(32, 64, 3)).astype(np.float32)
    pts[::2] /= np.linalg.norm(pts[::2], axis=-1, keepdims=True)
    np.savez(tmp_path / "s.npz", points=pts, labels=np.arange(32) % 2)
    s = pj.pretrain("asymdsd-modelnet10", data=str(tmp_path / "s.npz"), out=str(tmp_path / "run"), progress=False,
                    echo=lambda *a: None, overrides=SMALL + ["train.batch_size=8", "train.max_steps=3",
                                                             "eval.monitor_samples=16", "eval.baselines=false"])
    assert s["steps"] == 3 and math.isfinite(s["probe"]["linear"]["accuracy"])

"""Point-cloud parts: FPS, kNN, sequencer, maskers, tokenizer, predictors, the method."""
import numpy as np
import pytest
import torch

from polyjepa.errors import UserError
from polyjepa.models.encoder import TransformerEncoder
from polyjepa.models.transformer import gather_tokens
from polyjepa.points import (ContextInjectedPredictor, PointBackbone, PointGroups, PointGroupTokenizer, PointPredictor,
                             SequenceBlockMasker, SpatialBlockMasker, farthest_point_sample, group_points, knn,
                             nearest_neighbour_order)


def clouds(B=4, P=200, seed=0):
    return torch.randn(B, P, 3, generator=torch.Generator().manual_seed(seed))


def test_fps_is_greedy_max_min_and_distinct():
    x = clouds()
    idx = farthest_point_sample(x, 24)
    xn = x.numpy()
    for b in range(len(x)):
        ids = idx[b].tolist()
        assert len(set(ids)) == 24
        # first pick: farthest from the centroid; then each pick maximises the distance to those before (brute force)
        assert ids[0] == int(np.linalg.norm(xn[b] - xn[b].mean(0), axis=1).argmax())
        for i in range(1, 24):
            d = np.linalg.norm(xn[b][:, None] - xn[b][ids[:i]][None], axis=-1).min(1)
            assert d[ids[i]] == pytest.approx(d.max(), rel=1e-5)


def test_fps_covers_the_cloud_within_twice_the_best_radius():
    x = clouds(B=2, P=150, seed=1)
    n = 10
    idx = farthest_point_sample(x, n)
    for b in range(2):
        p = x[b].numpy()
        cover = np.linalg.norm(p[:, None] - p[idx[b].numpy()][None], axis=-1).min(1)
        r = cover.max()
        # the n centres and the farthest remaining point are pairwise >= r apart, so no n centres
        # can cover the cloud with a radius below r / 2 (pigeonhole): FPS is within 2x of optimal.
        s = p[np.append(idx[b].numpy(), cover.argmax())]
        pair = np.linalg.norm(s[:, None] - s[None], axis=-1) + np.eye(n + 1) * 1e9
        assert pair.min() >= r - 1e-6
        rng = np.random.default_rng(b)
        for _ in range(200):  # any other choice of n centres covers no better than r / 2
            other = p[rng.choice(len(p), n, replace=False)]
            assert np.linalg.norm(p[:, None] - other[None], axis=-1).min(1).max() >= r / 2 - 1e-6


def test_knn_matches_brute_force():
    x = clouds(B=3, P=120, seed=2)
    q = x[:, :7] + 0.01
    idx = knn(q, x, 9)
    assert idx.shape == (3, 7, 9)
    for b in range(3):
        d = np.linalg.norm(q[b].numpy()[:, None] - x[b].numpy()[None], axis=-1)
        want = np.sort(d, axis=1)[:, :9]
        got = np.take_along_axis(d, idx[b].numpy(), axis=1)
        assert np.allclose(got, want, atol=1e-6)  # same distances, nearest first


def test_sequencer_is_a_greedy_permutation_that_keeps_neighbours_close():
    c = torch.rand(5, 40, 3, generator=torch.Generator().manual_seed(3))
    order = nearest_neighbour_order(c)
    for b in range(5):
        o = order[b].tolist()
        assert sorted(o) == list(range(40))
        cb = c[b].numpy()
        assert o[0] == int(cb.sum(1).argmin())
        for i in range(1, 40):  # each step goes to the nearest centre not yet visited
            rest = [j for j in range(40) if j not in o[:i]]
            d = np.linalg.norm(cb[rest] - cb[o[i - 1]], axis=1)
            assert np.linalg.norm(cb[o[i]] - cb[o[i - 1]]) == pytest.approx(d.min(), rel=1e-5)
    seq = torch.gather(c, 1, order[..., None].expand(-1, -1, 3))
    step = (seq[:, 1:] - seq[:, :-1]).norm(dim=-1).mean()
    rand = (c[:, 1:] - c[:, :-1]).norm(dim=-1).mean()
    assert step < 0.5 * rand


@pytest.mark.parametrize("targets", ["contiguous", "random"])
def test_sequence_block_masker_invariants(targets):
    N = 64
    m = SequenceBlockMasker(grid=(N,), targets=targets)
    for seed in range(15):
        ctx, tgt = m(16, torch.Generator().manual_seed(seed))
        B, M, Nt = tgt.shape
        assert B == 16 and M == 4 and int(N * 0.15) <= Nt <= int(N * 0.2)
        assert ctx.min() >= 0 and ctx.max() < N and tgt.min() >= 0 and tgt.max() < N
        for b in range(B):
            t = set(tgt[b].flatten().tolist())
            c = ctx[b].tolist()
            assert not t & set(c) and len(set(c)) == len(c)
            rest = [i for i in range(N) if i not in t]
            rank = [rest.index(i) for i in c]  # context = a run of consecutive remaining tokens
            assert rank == list(range(rank[0], rank[0] + len(c)))
            assert len(c) >= int(0.4 * (N - 4 * Nt)) - 1
            for blk in tgt[b].tolist():
                assert len(set(blk)) == Nt
                if targets == "contiguous":
                    assert blk == list(range(blk[0], blk[0] + Nt))
    a = m(8, torch.Generator().manual_seed(1))
    b = m(8, torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_random_targets_are_not_runs():
    m = SequenceBlockMasker(grid=(64,), targets="random")
    _, tgt = m(32, torch.Generator().manual_seed(0))
    runs = ((tgt[..., 1:] - tgt[..., :-1]) == 1).all(-1)
    assert runs.float().mean() < 0.1


def test_spatial_block_masker_invariants():
    N = 32
    c = torch.rand(8, N, 3, generator=torch.Generator().manual_seed(4))
    m = SpatialBlockMasker(grid=(N,))
    ctx, tgt = m(8, torch.Generator().manual_seed(0), centres=c)
    B, M, Nt = tgt.shape
    assert M == 4 and Nt == int(N * 0.15) or Nt == int(N * 0.2) or int(N * 0.15) <= Nt <= int(N * 0.2)
    for b in range(B):
        cb = c[b].numpy()
        assert not set(ctx[b].tolist()) & set(tgt[b].flatten().tolist())
        assert len(set(ctx[b].tolist())) == ctx.shape[1]
        for blk in tgt[b].tolist():
            # a target is the Nt patches nearest one of its members (its seed)
            ok = any(set(np.argsort(np.linalg.norm(cb - cb[s], axis=1), kind="stable")[:Nt].tolist()) == set(blk)
                     for s in blk)
            assert ok
    with pytest.raises(ValueError, match="centres have shape"):
        m(4, torch.Generator(), centres=c)
    with pytest.raises(ValueError, match="leave no context"):
        SpatialBlockMasker(grid=(8,), n_targets=8, target_scale=(0.15, 0.2))


def tiny_backbone(dim=32, groups=8, size=8):
    tok = PointGroupTokenizer(dim=dim, n_groups=groups, group_size=size, widths=(16, 16, 32))
    return PointBackbone(tok, TransformerEncoder(dim=dim, depth=1, heads=2))


def test_tokenizer_is_invariant_to_point_order():
    torch.manual_seed(0)
    bb = tiny_backbone()
    x = clouds(B=3, P=100, seed=5)
    perm = torch.randperm(100)
    a, b = bb.tokenizer(x), bb.tokenizer(x[:, perm])
    assert a.shape == (3, 8, 32)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(bb.embed(x), bb.embed(x[:, perm]), atol=1e-4)


def test_grouping_and_bad_clouds():
    x = clouds(B=2, P=50)
    g = group_points(x, 8, 6)
    assert g.centres.shape == (2, 8, 3) and g.patches.shape == (2, 8, 6, 3)
    assert torch.allclose(g.patches[:, :, 0], torch.zeros(2, 8, 3))  # each centre is its own nearest point
    with pytest.raises(UserError, match="fewer than the 16"):
        group_points(x[:, :10], 16, 4)
    bad = x.clone()
    bad[1, 3, 0] = float("nan")
    with pytest.raises(UserError, match="NaN or inf coordinates in 1 clouds"):
        group_points(bad, 8, 6)
    with pytest.raises(UserError, match=r"must be \(clouds, points, 3\)"):
        group_points(torch.randn(2, 50, 2), 8, 6)


def test_backbone_embeds_only_kept_patches_and_pools():
    torch.manual_seed(0)
    bb = tiny_backbone()
    x = clouds(B=2, P=60)
    g = bb.tokenizer.group(x)
    keep = torch.tensor([[0, 3, 5], [1, 2, 7]])
    want = bb.encoder(gather_tokens(bb.tokenizer(g), keep))
    assert torch.allclose(bb(g, keep_idx=keep), want, atol=1e-5)
    assert bb.embed(x, pool="mean+max").shape == (2, 64) and bb.embed(x, pool="mean").shape == (2, 32)
    with pytest.raises(ValueError, match="unknown pool"):
        bb.embed(x, pool="grid:2")


def test_cell_pool_averages_the_tokens_whose_centres_share_a_cell():
    from polyjepa.points.backbone import cell_pool

    torch.manual_seed(0)
    B, G, D, k = 3, 20, 5, 2
    h, centres = torch.randn(B, G, D), torch.rand(B, G, 3) * 2.4 - 1.2          # some centres outside the cube
    got = cell_pool(h, centres, k).reshape(B, k ** 3, D)
    for b in range(B):                                                           # a direct loop over the cells
        for i in range(k):
            for j in range(k):
                for m in range(k):
                    c = centres[b]
                    inside = [((c[:, a] >= -1 + 2 * t / k) if t else torch.ones(G, dtype=torch.bool))
                              & ((c[:, a] < -1 + 2 * (t + 1) / k) if t < k - 1 else torch.ones(G, dtype=torch.bool))
                              for a, t in enumerate((i, j, m))]
                    sel = inside[0] & inside[1] & inside[2]
                    want = h[b, sel].mean(0) if sel.any() else torch.zeros(D)
                    assert torch.allclose(got[b, (i * k + j) * k + m], want, atol=1e-6)
    one = cell_pool(h, centres, 1)                                               # one cell: the mean token
    assert torch.allclose(one, h.mean(1), atol=1e-6)


def test_backbone_cells_read_out_and_its_errors():
    torch.manual_seed(0)
    bb = tiny_backbone()
    x = clouds(B=2, P=60)
    both = bb.embed(x, pool="mean+max+cells:2")
    assert both.shape == (2, 64 + 8 * 32)
    assert torch.allclose(both[:, :64], bb.embed(x, pool="mean+max"), atol=1e-6)
    assert torch.allclose(both[:, 64:], bb.embed(x, pool="cells:2"), atol=1e-6)
    perm = torch.randperm(60)                                                    # point order does not matter
    assert torch.allclose(bb.embed(x[:, perm], pool="cells:2"), both[:, 64:], atol=1e-4)
    for bad in ("cells:0", "cells:x", "median+cells:2"):
        with pytest.raises(ValueError, match="cells:K"):
            bb.embed(x, pool=bad)


@pytest.mark.parametrize("cls", [PointPredictor, ContextInjectedPredictor])
def test_predictors_isolate_target_blocks(cls):
    torch.manual_seed(0)
    pred = cls(in_dim=32, dim=16, depth=2, heads=2)
    z, cc = torch.randn(2, 5, 32), torch.randn(2, 5, 3)
    tc = torch.randn(2, 3, 4, 3)
    out = pred(z, cc, tc)
    assert out.shape == (2, 3, 4, 32)
    tc2 = tc.clone()
    tc2[:, 1] += 1.0  # moving block 1 changes block 1 only
    out2 = pred(z, cc, tc2)
    assert torch.allclose(out[:, [0, 2]], out2[:, [0, 2]], atol=1e-5)
    assert not torch.allclose(out[:, 1], out2[:, 1], atol=1e-3)
    single = pred(z, cc, tc[:, 2:3])  # equals a pass with that block alone
    assert torch.allclose(single[:, 0], out[:, 2], atol=1e-5)


def test_context_injected_predictor_uses_context_at_every_layer():
    torch.manual_seed(0)
    pred = ContextInjectedPredictor(in_dim=8, dim=8, depth=3, heads=2)
    z, cc, tc = torch.randn(1, 4, 8), torch.randn(1, 4, 3), torch.randn(1, 1, 2, 3)
    seen = []
    hooks = [blk.norm_ctx.register_forward_hook(lambda m, i, o: seen.append(i[0])) for blk in pred.blocks]
    pred(z, cc, tc)
    for h in hooks:
        h.remove()
    assert len(seen) == 3 and all(torch.equal(s, seen[0]) for s in seen)  # the same encoder context each layer


def build(recipe, overrides=()):
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    small = ["tokenizer.n_groups=8", "tokenizer.group_size=8", "tokenizer.widths=[16,16,32]", "encoder.dim=32",
             "encoder.depth=1", "encoder.heads=2", "predictor.dim=16", "predictor.depth=1", "predictor.heads=2",
             "masker.n_targets=2", "masker.target_scale=[0.2,0.25]"]
    return build_method(load_recipe(recipe, small + list(overrides)), (64, 3), seed=0)


@pytest.mark.parametrize("recipe", ["pointjepa", "jepa3d"])
def test_method_gradients_and_pregrouped_batches(recipe):
    m = build(recipe)
    x = clouds(B=6, P=64)
    batch = m.make_batch(x, torch.Generator().manual_seed(0))
    assert batch["centres"].shape == (6, 8, 3) and batch["patches"].shape == (6, 8, 8, 3)
    out = m(batch)
    out["loss"].backward()
    for name, p in m.named_parameters():
        if name.startswith("target."):
            assert p.grad is None, name
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    no_groups = {k: batch[k] for k in ("x", "context_idx", "target_idx")}
    assert torch.allclose(m(no_groups)["loss"], out["loss"], atol=1e-5)
    assert m.embed(x).shape == (6, 64)


def test_assembler_rejects_non_point_data():
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    with pytest.raises(UserError, match="need point clouds"):
        build_method(load_recipe("pointjepa"), (1, 8, 8))
    with pytest.raises(UserError, match="fewer than the tokenizer's 32"):
        build_method(load_recipe("pointjepa"), (20, 3))


def test_chamfer_matches_brute_force_and_ignores_point_order():
    from polyjepa.points.method import chamfer_l2

    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(4, 6, 3, generator=g), torch.randn(4, 5, 3, generator=g)
    want = np.mean([np.linalg.norm(p[:, None] - q[None], axis=-1).__pow__(2).min(1).mean()
                    + np.linalg.norm(p[:, None] - q[None], axis=-1).__pow__(2).min(0).mean()
                    for p, q in zip(a.numpy(), b.numpy())])
    assert chamfer_l2(a, b).item() == pytest.approx(want, rel=1e-5)
    assert chamfer_l2(a, a[:, torch.randperm(6, generator=g)]).item() == pytest.approx(0.0, abs=1e-7)


def test_shape_targets_do_not_depend_on_the_centres():
    m = build("pointjepa", ["method.target_tokens=shape"])
    g = m.backbone.tokenizer.group(clouds(B=3, P=64))
    moved = PointGroups(g.centres + torch.randn_like(g.centres), g.patches)
    assert torch.allclose(m.targets(g), m.targets(moved), atol=1e-6)
    assert not torch.allclose(m.targets(g), m.targets(PointGroups(g.centres, g.patches * 1.5)), atol=1e-3)
    full = build("pointjepa")  # the default does depend on them
    assert not torch.allclose(full.targets(g), full.targets(moved), atol=1e-3)


def test_residual_targets_remove_the_centres_only_tokens():
    m = build("pointjepa", ["method.target_tokens=residual"])
    g = m.backbone.tokenizer.group(clouds(B=3, P=64))
    h = m.targets(g)
    assert h.shape == (3, 8, 32) and torch.isfinite(h).all()
    assert torch.allclose(h.mean(-1), torch.zeros(3, 8), atol=1e-5)          # layer-normalised again
    flat = m.targets(PointGroups(g.centres, torch.zeros_like(g.patches)))      # no shapes: nothing left
    assert flat.abs().max() < 1e-3
    with pytest.raises(ValueError, match="target_tokens must be one of"):
        build("pointjepa", ["method.target_tokens=bogus"])


def test_target_view_is_seeded_and_differs_from_the_context_view():
    m = build("pointjepa", ["method.target_view={rotate: true, max_angle: 180, scale: null}"])
    x = clouds(B=4, P=64)
    a, b = (m.make_batch(x, torch.Generator().manual_seed(5)) for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = m.make_batch(x, torch.Generator().manual_seed(6))
    assert not torch.allclose(a["target_centres"], c["target_centres"])
    assert not torch.allclose(a["target_centres"], a["centres"], atol=1e-3)
    # a rotation about the up axis (z): heights and in-plane radii kept, for centres and re-centred points
    for key, ref in (("target_centres", "centres"), ("target_patches", "patches")):
        assert torch.allclose(a[key][..., 2], a[ref][..., 2], atol=1e-5)
        assert torch.allclose(a[key][..., :2].norm(dim=-1), a[ref][..., :2].norm(dim=-1), atol=1e-5)
    # the masks and the context view are those of the plain method (the second draw comes last)
    plain = build("pointjepa").make_batch(x, torch.Generator().manual_seed(5))
    assert all(torch.equal(plain[k], a[k]) for k in plain)
    out = m(a)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and all(p.grad is not None for p in m.backbone.parameters())
    # the target branch sees the second view
    h_view = m.targets(PointGroups(a["target_centres"], a["target_patches"]))
    assert not torch.allclose(h_view, m.targets(PointGroups(a["centres"], a["patches"])), atol=1e-3)


def test_reconstruction_head_is_trained_and_adds_the_chamfer_loss():
    m = build("pointjepa", ["method.reconstruct=0.5"])
    assert m.patch_head in m.trainable_modules() and m.patch_head.out_features == 8 * 3
    batch = m.make_batch(clouds(B=6, P=64), torch.Generator().manual_seed(0))
    out = m(batch)
    plain = build("pointjepa")
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("patch_head.")})
    assert out["chamfer"] > 0
    assert out["loss"].item() == pytest.approx(plain(batch)["loss"].item() + 0.5 * out["chamfer"].item(), rel=1e-5)
    out["loss"].backward()
    assert torch.isfinite(m.patch_head.weight.grad).all() and m.patch_head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.target.parameters())
    assert build("pointjepa").patch_head is None


def test_invariance_views_and_loss_equal_an_independent_vicreg():
    from polyjepa.objectives.vicreg import vicreg_loss

    m = build("pointjepa", ["invariance.name=point_vicreg", "invariance.weight=0.5", "invariance.hidden=32",
                            "invariance.out_dim=16"])
    x = clouds(B=6, P=64)
    batch = m.make_batch(x, torch.Generator().manual_seed(1))
    again = m.make_batch(x, torch.Generator().manual_seed(1))
    assert all(torch.equal(batch[k], again[k]) for k in batch)               # seeded: the same after a resume
    assert batch["x2_centres"].shape == batch["centres"].shape and batch["x2_patches"].shape == batch["patches"].shape
    assert not torch.allclose(batch["x"], x, atol=1e-3)                       # the JEPA sees the first view
    # both views are x moved by a rotation about z, a per-axis scale and a shift: heights are only scaled
    # and shifted, so a cloud's z-extent ratio between the views is a scale ratio within [0.8/1.2, 1.2/0.8]
    ext = lambda p: p[..., 2].amax(-1) - p[..., 2].amin(-1)                   # noqa: E731
    ratio = ext(batch["x"]) / ext(x)
    assert ((ratio > 0.8 - 1e-5) & (ratio < 1.2 + 1e-5)).all()
    assert not torch.allclose(batch["x2_centres"], batch["centres"], atol=1e-3)
    out = m(batch)
    inv, m.invariance = m.invariance, None
    base = m(batch)
    z = m.backbone(PointGroups(batch["centres"], batch["patches"]), keep_idx=batch["context_idx"]).mean(1)
    z2 = m.backbone(PointGroups(batch["x2_centres"], batch["x2_patches"])).mean(1)
    want = vicreg_loss(inv.projector(z), inv.projector(z2))
    assert out["loss"].item() == pytest.approx(base["loss"].item() + 0.5 * want["loss"].item(), rel=1e-5)
    m.invariance = inv
    out["loss"].backward()
    for name, p in m.named_parameters():
        assert (p.grad is None) == name.startswith("target."), name
    assert all(torch.isfinite(p.grad).all() for n, p in m.named_parameters() if not n.startswith("target."))
    with pytest.raises(ValueError, match="make_batch"):
        m({k: batch[k] for k in ("x", "context_idx", "target_idx")})


def test_invariance_on_the_whole_first_view():
    from polyjepa.objectives.vicreg import vicreg_loss

    m = build("pointjepa", ["invariance.name=point_vicreg", "invariance.first=whole", "invariance.hidden=32",
                            "invariance.out_dim=16"])
    batch = m.make_batch(clouds(B=6, P=64), torch.Generator().manual_seed(2))
    out = m(batch)
    inv, m.invariance = m.invariance, None
    base = m(batch)
    z1 = m.backbone(PointGroups(batch["centres"], batch["patches"])).mean(1)  # every patch, not the context
    z2 = m.backbone(PointGroups(batch["x2_centres"], batch["x2_patches"])).mean(1)
    want = vicreg_loss(inv.projector(z1), inv.projector(z2))
    assert out["loss"].item() == pytest.approx(base["loss"].item() + want["loss"].item(), rel=1e-5)


def test_invariance_views_must_match_the_data():
    with pytest.raises(UserError, match="point_vicreg"):
        build("pointjepa", ["invariance.name=vicreg"])
    with pytest.raises(UserError, match="bogus"):
        build("pointjepa", ["invariance.name=point_vicreg", "invariance.bogus=1"])
    with pytest.raises(UserError, match="point clouds"):
        from polyjepa.build import build_method
        from polyjepa.config import load_recipe

        build_method(load_recipe("ijepa-digits", ["invariance.name=point_vicreg"]), (1, 8, 8))

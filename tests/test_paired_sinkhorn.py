"""Multi-assignment Sinkhorn-Knopp: marginals, reduction to plain SK, an independent numpy reference, the structure
loss, the objective inside the two-tower method, and the kNN-overlap measure."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polyjepa.paired.retrieval import knn_overlap
from polyjepa.paired.sinkhorn import MultiSinkhornContrastive, multi_sinkhorn, sinkhorn_knopp, structure_loss


def _scores(b, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, 16, generator=g), dim=1) @ F.normalize(torch.randn(k, 16, generator=g), dim=1).T


def test_sinkhorn_marginals_within_1e_4():
    q = sinkhorn_knopp(_scores(96, 12), eps=0.1, iters=60)
    assert torch.allclose(q.sum(1), torch.ones(96), atol=1e-4)
    assert torch.allclose(q.sum(0), torch.full((12,), 96 / 12), atol=1e-4)
    assert torch.allclose(sinkhorn_knopp(torch.zeros(8, 4), iters=1), torch.full((8, 4), 0.25))  # constant: uniform


def test_multi_sinkhorn_plan_meets_all_three_marginals_within_1e_4():
    b, k = 40, 8
    plan = multi_sinkhorn(_scores(b, k, 1), eps=0.2, iters=60, return_plan=True)      # (M = K, B, K)
    assert plan.shape == (k, b, k)
    assert (plan.sum(1) - b / k).abs().max() < 1e-4                # every (copy, anchor) column: B / K
    assert (plan.sum(0) - 1).abs().max() < 1e-4                     # every (item, anchor) over the copies: 1
    assert (plan.sum(2) - 1).abs().max() < 1e-4                     # every (copy, item) over the anchors: 1
    t = multi_sinkhorn(_scores(b, k, 1))
    assert torch.allclose(t.amax(1), torch.ones(b)) and torch.allclose(t.amin(1), torch.zeros(b))


def test_one_copy_at_full_weight_is_plain_sinkhorn():
    s = _scores(30, 6, 2)
    plan = multi_sinkhorn(s, copies=1, full=1, eps=0.05, iters=3, return_plan=True)[0]
    assert torch.allclose(plan, sinkhorn_knopp(s, eps=0.05, iters=3), atol=1e-6)


def _numpy_multi_sinkhorn(s, m, r, low, eps, iters):
    """Direct (not log-domain) reference in float64."""
    b, k = s.shape
    f = np.full(m, low)
    f[m - r:] = 1.0
    a = np.exp(f[:, None, None] * s[None] / eps)
    a /= a.sum()
    for _ in range(iters):
        a = a / a.sum(1, keepdims=True) * (b / k)
        a = a / a.sum(0, keepdims=True)
        a = a / a.sum(2, keepdims=True)
    t = a[m - r:].sum(0)
    return (t - t.min(1, keepdims=True)) / (t.max(1, keepdims=True) - t.min(1, keepdims=True))


def test_multi_sinkhorn_matches_an_independent_numpy_computation_and_is_equivariant():
    s = _scores(24, 6, 3)
    for m, r in ((6, 3), (6, 2), (6, 1)):
        got = multi_sinkhorn(s, copies=m, full=r, eps=0.1, iters=20)
        ref = _numpy_multi_sinkhorn(s.double().numpy(), m, r, 0.25, 0.1, 20)
        assert np.allclose(got.numpy(), ref, atol=1e-5)
    perm_b, perm_k = torch.randperm(24), torch.randperm(6)
    t = multi_sinkhorn(s, eps=0.1)
    assert torch.allclose(multi_sinkhorn(s[perm_b][:, perm_k], eps=0.1), t[perm_b][:, perm_k], atol=1e-5)
    # an item equidistant from two anchors whose columns are otherwise mirror images gets equal weights
    sym = torch.tensor([[0.5, 0.5, 0.0], [0.9, 0.1, 0.2], [0.1, 0.9, 0.2], [0.3, 0.3, 0.8]])
    t = multi_sinkhorn(sym, copies=3, full=2, eps=0.1)
    assert t[0, 0] == pytest.approx(float(t[0, 1]), abs=1e-6)


def test_structure_loss_is_the_crosswise_bce_of_the_two_assignments():
    g = torch.Generator().manual_seed(4)
    h, z = torch.randn(20, 12, generator=g), torch.randn(20, 8, generator=g)
    ah, az = torch.randn(6, 12, generator=g), torch.randn(6, 8, generator=g)
    got = structure_loss(h, z, ah, az, temperature=0.2, eps=0.1, iters=20)
    s_h, s_z = F.normalize(h, dim=1) @ F.normalize(ah, dim=1).T, F.normalize(z, dim=1) @ F.normalize(az, dim=1).T
    t_h = torch.as_tensor(_numpy_multi_sinkhorn(s_h.double().numpy(), 6, 3, 0.25, 0.1, 20), dtype=torch.float32)
    t_z = torch.as_tensor(_numpy_multi_sinkhorn(s_z.double().numpy(), 6, 3, 0.25, 0.1, 20), dtype=torch.float32)

    def bce(logit, t):
        p = torch.sigmoid(logit)
        return -(t * p.log() + (1 - t) * (1 - p).log()).mean()

    want = (bce(s_h / 0.2, t_z) + bce(s_z / 0.2, t_h)) / 2
    assert float(got) == pytest.approx(float(want), rel=1e-4)


def test_the_objective_trains_inside_the_two_tower_method():
    from polyjepa.paired.method import TwoTower
    from polyjepa.paired.towers import MLPTower

    torch.manual_seed(0)
    crit = MultiSinkhornContrastive(anchors=8, weight=1.0)
    m = TwoTower(tower_a=MLPTower(input_shape=(10,)), tower_b=MLPTower(input_shape=(7,)), criterion=crit, proj_dim=16)
    batch = {"a": torch.randn(32, 10), "b": torch.randn(32, 7)}
    out = m.loss(batch)
    assert {"loss", "infonce", "structure"} <= set(out) and torch.isfinite(out["loss"])
    assert float(out["loss"].detach()) == pytest.approx(float(out["infonce"] + out["structure"]), rel=1e-6)
    out["loss"].backward()
    for name, p in m.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # detach_towers: the tower-space side is a fixed reference (its anchors learn, no gradient reaches h);
    # without it the structure term trains the towers through h as well
    for detach in (True, False):
        crit.detach_towers = detach
        m.zero_grad()
        h_a, h_b = (torch.randn(32, crit.anchors[k].shape[-1], requires_grad=True) for k in ("h_a", "h_b"))
        z_a, z_b = (torch.nn.functional.normalize(torch.randn(32, 16), dim=-1) for _ in range(2))
        crit(z_a, z_b, h_a=h_a, h_b=h_b)["loss"].backward()          # InfoNCE + the structure term
        assert crit.anchors["h_a"].grad.abs().sum() > 0 and crit.anchors["z_a"].grad.abs().sum() > 0
        if detach:
            assert h_a.grad is None and h_b.grad is None
        else:
            assert h_a.grad is not None and h_a.grad.abs().sum() > 0


def test_knn_overlap_against_brute_force_sets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    assert knn_overlap(x, x * 3.0, k=5) == 1.0                    # same directions: same neighbours
    y = rng.normal(size=(30, 5))
    got = knn_overlap(x, y, k=4)

    def nn(e):
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        s = e @ e.T
        return [set(sorted((j for j in range(30) if j != i), key=lambda j: -s[i, j])[:4]) for i in range(30)]

    want = np.mean([len(a & b) / 4 for a, b in zip(nn(x), nn(y))])
    assert got == pytest.approx(want)
    assert 0.0 <= got < 0.5
    assert math.isclose(knn_overlap(x, x, k=29), 1.0)


def _ddp_worker(rank, world, store, out_dir, state, za, zb, ha, hb):
    import os

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    crit = MultiSinkhornContrastive(anchors=6, weight=1.0, detach_towers=False)
    crit.bind(ha.shape[1], hb.shape[1], za.shape[1])
    crit.load_state_dict(state)
    n = len(za) // world
    part = [x[rank * n:(rank + 1) * n].clone().requires_grad_() for x in (za, zb, ha, hb)]
    out = crit(part[0], part[1], h_a=part[2], h_b=part[3])
    out["loss"].backward()
    torch.save({"loss": out["loss"].detach(), "structure": out["structure"],
                "grads": [p.grad / world for p in part],                   # DDP averages over the ranks
                "anchors": {k: v.grad.clone() for k, v in crit.anchors.items()}},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)


def test_ddp_two_processes_equal_one_process_on_the_concatenated_batch(tmp_path):
    """The Sinkhorn assignment runs over the gathered batch: value and gradients match one process."""
    import torch.multiprocessing as mp

    world, n = 2, 12
    g = torch.Generator().manual_seed(3)
    za, zb, ha, hb = (torch.randn(n, d, generator=g) for d in (5, 5, 7, 4))
    torch.manual_seed(0)
    crit = MultiSinkhornContrastive(anchors=6, weight=1.0, detach_towers=False)
    crit.bind(7, 4, 5)
    state = {k: v.clone() for k, v in crit.state_dict().items()}
    mp.spawn(_ddp_worker, args=(world, str(tmp_path / "store"), str(tmp_path), state, za, zb, ha, hb),
             nprocs=world, join=True)
    full = [x.clone().requires_grad_() for x in (za, zb, ha, hb)]
    out = crit(full[0], full[1], h_a=full[2], h_b=full[3])
    out["loss"].backward()
    # per-process halves give another structure value: the check below can tell the two apart
    halves = [crit(za[i:i + n // 2], zb[i:i + n // 2], h_a=ha[i:i + n // 2], h_b=hb[i:i + n // 2])["structure"]
              for i in (0, n // 2)]
    assert abs(float(sum(halves)) / 2 - float(out["structure"])) > 1e-4
    for r in range(world):
        res = torch.load(tmp_path / f"rank{r}.pt")
        assert res["loss"].item() == pytest.approx(out["loss"].item(), rel=1e-6)
        assert res["structure"].item() == pytest.approx(out["structure"].item(), rel=1e-6)
        for got, x in zip(res["grads"], full):
            assert torch.allclose(got, x.grad[r * n // 2:(r + 1) * n // 2], atol=1e-6)
        for k, v in crit.anchors.items():
            assert torch.allclose(res["anchors"][k], v.grad, atol=1e-6), k

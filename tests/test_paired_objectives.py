"""The paired family's objectives and metrics against independent computations."""
import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from polyjepa.paired.objectives import (PairedContrastive, gather_ids, graph_soft_targets, mutual_similarity,
                                        symmetric_infonce)
from polyjepa.paired.retrieval import retrieval_metrics


def _direct_loss(za, zb, scale, t_ab=None, t_ba=None):
    """Float64 loops: -sum_j t_ij log softmax_j(s * cos(a_i, b_j)), averaged over rows, for both directions."""
    a = za.double().numpy()
    b = zb.double().numpy()
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    n = len(a)
    t_ab = np.eye(n) if t_ab is None else t_ab.double().numpy()
    t_ba = np.eye(n) if t_ba is None else t_ba.double().numpy()
    total = 0.0
    for logits, t in ((scale * a @ b.T, t_ab), (scale * b @ a.T, t_ba)):
        for i in range(n):
            row = logits[i]
            log_p = row - (row.max() + math.log(np.exp(row - row.max()).sum()))
            total += -(t[i] * log_p).sum() / n
    return total / 2


def test_infonce_equals_direct_log_softmax():
    g = torch.Generator().manual_seed(0)
    za, zb = torch.randn(9, 5, generator=g), torch.randn(9, 5, generator=g)
    out = symmetric_infonce(za, zb, torch.tensor(math.log(7.0)))
    assert out["loss"].item() == pytest.approx(_direct_loss(za, zb, 7.0), rel=1e-5)
    assert out["scale"].item() == pytest.approx(7.0, rel=1e-6)
    # symmetric in the sides, chance level for a tiny scale, near zero for aligned pairs and a large scale
    assert symmetric_infonce(zb, za, torch.tensor(math.log(7.0)))["loss"].item() == pytest.approx(out["loss"].item(), rel=1e-6)
    assert symmetric_infonce(za, zb, torch.tensor(-20.0))["loss"].item() == pytest.approx(math.log(9), rel=1e-4)
    eye = torch.eye(9)
    assert symmetric_infonce(eye, eye, torch.tensor(math.log(100.0)))["loss"].item() < 1e-3


def test_soft_targets_equal_direct_computation_and_sum_to_one():
    g = torch.Generator().manual_seed(1)
    za, zb = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g)
    sim = torch.rand(7, 7, generator=g)
    t_ab, t_ba = graph_soft_targets(sim, alpha=0.3)
    assert torch.allclose(t_ab.sum(1), torch.ones(7)) and torch.allclose(t_ba.sum(1), torch.ones(7))
    # the target of row i: 0.7 on i, 0.3 spread over the others in proportion to sim_ij - min_{k != i} sim_ik
    s = sim.double().numpy()
    for i in range(7):
        off = [j for j in range(7) if j != i]
        shifted = s[i, off] - s[i, off].min()
        want = np.zeros(7)
        want[off] = 0.3 * shifted / shifted.sum()
        want[i] = 0.7
        assert np.allclose(t_ab[i].numpy(), want, atol=1e-6)
    out = symmetric_infonce(za, zb, torch.tensor(2.0), targets_ab=t_ab, targets_ba=t_ba)
    assert out["loss"].item() == pytest.approx(_direct_loss(za, zb, math.exp(2.0), t_ab, t_ba), rel=1e-5)


def test_exp_rank_weights_equal_a_sorted_loop():
    sim = torch.tensor([[0.0, 0.9, 0.2, 0.5], [0.9, 0.0, 0.4, 0.1], [0.2, 0.4, 0.0, 0.8], [0.5, 0.1, 0.8, 0.0]])
    t_ab, _ = graph_soft_targets(sim, alpha=1.0, weights="exp")
    for i in range(4):
        off = [j for j in range(4) if j != i]
        vals = sim[i, off].double().numpy()
        order = np.argsort(-vals, kind="stable")
        w = np.empty(3)
        w[order] = vals[order] * np.exp(-np.arange(3))
        w = w - w.min()
        want = np.zeros(4)
        want[off] = w / w.sum()
        assert np.allclose(t_ab[i].numpy(), want, atol=1e-6)


def test_graph_term_reduces_to_plain_infonce():
    g = torch.Generator().manual_seed(2)
    za, zb = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    plain = PairedContrastive(alpha=0.0)(za, zb)["loss"]
    sim = torch.rand(6, 6, generator=g)
    assert PairedContrastive(alpha=0.0)(za, zb, sim)["loss"].item() == plain.item()       # alpha = 0
    empty = torch.zeros(6, 6)                                                              # a graph with no edges
    for weights in ("identity", "exp", "exp_thick_tail"):
        assert PairedContrastive(alpha=0.5, weights=weights)(za, zb, empty)["loss"].item() == pytest.approx(
            plain.item(), abs=1e-7)
    assert PairedContrastive(alpha=0.5)(za, zb, sim)["loss"].item() != pytest.approx(plain.item(), abs=1e-4)


def test_soft_ce_minimum_is_the_target_entropy():
    sim = torch.rand(5, 5, generator=torch.Generator().manual_seed(3))
    sim = (sim + sim.T) / 2
    t, _ = graph_soft_targets(sim, alpha=0.2)
    entropy = -(t * t.clamp_min(1e-30).log()).sum(1).mean()
    logits = t.clamp_min(1e-30).log()                       # log-softmax equal to the log targets
    ce = torch.nn.functional.cross_entropy(logits, t)
    assert ce.item() == pytest.approx(entropy.item(), rel=1e-5)


def test_mutual_similarity_equals_dense_computation():
    edges = np.array([[0, 0, 1, 3], [1, 2, 2, 4]])
    m_hat = mutual_similarity(edges, 6)
    a = np.zeros((6, 6))
    a[edges[0], edges[1]] = a[edges[1], edges[0]] = 1
    m = a @ a.T
    for i in range(6):
        norm = np.linalg.norm(m[i])
        assert np.allclose(m_hat[i], m[i] / norm if norm else 0.0, atol=1e-6)
    assert not m_hat[5].any()                                # an isolated node has no profile


def test_learned_scale_gets_a_gradient_and_is_clamped():
    crit = PairedContrastive(init_log_scale=math.log(200.0))
    za, zb = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    out = crit(za, zb)
    assert out["scale"].item() == pytest.approx(100.0)
    crit2 = PairedContrastive()
    crit2(za, zb)["loss"].backward()
    assert crit2.log_scale.grad is not None and torch.isfinite(crit2.log_scale.grad)
    with pytest.raises(ValueError):
        PairedContrastive(alpha=0.3)(za, zb)                 # the graph term without a similarity


def test_retrieval_metrics_on_a_hand_made_matrix():
    # a->b: a0 finds b0 first; a1 ranks b1 third; a2 ties b2 with b0 (a tie counts against it: rank 2)
    sim = np.array([[0.9, 0.1, 0.2],
                    [0.8, 0.3, 0.5],
                    [0.7, 0.0, 0.7]])
    m = retrieval_metrics(sim, ks=(1, 2))
    assert m["a2b_r1"] == pytest.approx(1 / 3) and m["a2b_r2"] == pytest.approx(2 / 3) and m["a2b_medr"] == 2
    # b->a (columns): b0 ranks a0 first (0.9); b1: a1 (0.3) first; b2: a2 (0.7) first
    assert m["b2a_r1"] == 1.0 and m["b2a_medr"] == 1
    # two texts per item: item 0 owns b0, b1; item 1 owns b2, b3
    sim2 = np.array([[0.1, 0.8, 0.9, 0.0],
                     [0.5, 0.2, 0.3, 0.4]])
    m2 = retrieval_metrics(sim2, owner=np.array([0, 0, 1, 1]), ks=(1, 2))
    assert m2["a2b_r1"] == 0.0 and m2["a2b_r2"] == 1.0      # a0's best own (0.8) is 2nd; a1's best own 0.4 is 2nd
    assert m2["a2b_medr"] == 2.0
    # b0 -> a1 wins (0.5 > 0.1): rank 2; b1 -> a0 rank 1; b2 -> a0 wins: rank 2; b3 -> a1 rank 1
    assert m2["b2a_r1"] == 0.5 and m2["b2a_medr"] == 1.5


def _ddp_worker(rank, world, store, out_dir, za, zb, ids, graph_sim):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    n = len(za) // world
    results = {}
    for alpha in (0.0, 0.4):
        crit = PairedContrastive(alpha=alpha, weights="exp_thick_tail").double()
        a = za[rank * n:(rank + 1) * n].clone().requires_grad_()
        b = zb[rank * n:(rank + 1) * n].clone().requires_grad_()
        gids = gather_ids(ids[rank * n:(rank + 1) * n])
        sim = graph_sim[gids] @ graph_sim[gids].T
        out = crit(a, b, sim)
        out["loss"].backward()
        # every rank's gradient of the identical loss is summed into each shard; DDP then averages over ranks
        results[alpha] = {"loss": out["loss"].detach(), "ga": a.grad / world, "gb": b.grad / world,
                          "gs": crit.log_scale.grad.clone(), "ids": gids}
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)


def test_ddp_gather_parity_value_and_gradient(tmp_path):
    world = 2
    g = torch.Generator().manual_seed(4)
    za, zb = torch.randn(8, 5, generator=g, dtype=torch.float64), torch.randn(8, 5, generator=g, dtype=torch.float64)
    ids = torch.tensor([3, 0, 7, 1, 5, 2, 6, 4])
    edges = np.array([[0, 0, 1, 2, 3, 5, 6], [1, 2, 3, 4, 4, 6, 7]])
    graph_sim = torch.from_numpy(mutual_similarity(edges, 8)).double()
    mp.spawn(_ddp_worker, args=(world, str(tmp_path / "store"), str(tmp_path), za, zb, ids, graph_sim),
             nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    for alpha in (0.0, 0.4):
        crit = PairedContrastive(alpha=alpha, weights="exp_thick_tail").double()
        a, b = za.clone().requires_grad_(), zb.clone().requires_grad_()
        out = crit(a, b, graph_sim[ids] @ graph_sim[ids].T)
        out["loss"].backward()
        for r, res in enumerate(ranks):
            assert torch.equal(res[alpha]["ids"], ids)
            assert res[alpha]["loss"].item() == pytest.approx(out["loss"].item(), rel=1e-6)
            assert torch.allclose(res[alpha]["ga"], a.grad[r * 4:(r + 1) * 4], atol=1e-6)
            assert torch.allclose(res[alpha]["gb"], b.grad[r * 4:(r + 1) * 4], atol=1e-6)
        # the scale's gradient: DDP averages the ranks' (identical, full-batch) gradients
        mean_gs = sum(res[alpha]["gs"] for res in ranks) / world
        assert mean_gs.item() == pytest.approx(crit.log_scale.grad.item(), rel=1e-6)

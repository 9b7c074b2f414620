"""The semi-supervised paired objective: cross-modal SupCon against a direct loop, its reduction to InfoNCE,
2-process DDP parity (value and gradient), and the objective inside the two-tower method."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from polyjepa.paired.objectives import symmetric_infonce
from polyjepa.paired.semisup import SemiSupervisedContrastive, cross_supcon, labelled_subset


def _direct(za, zb, y, t):
    a = za.double().numpy()
    b = zb.double().numpy()
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    y = y.numpy()
    parts = []
    for x, w in ((a, b), (b, a)):
        rows = []
        for i in range(len(x)):
            if y[i] < 0:
                continue
            logits = x[i] @ w.T / t
            log_p = logits - (logits.max() + math.log(np.exp(logits - logits.max()).sum()))
            pos = [j for j in range(len(w)) if y[j] == y[i]]
            rows.append(-np.mean([log_p[j] for j in pos]))
        parts.append(np.mean(rows))
    return float(np.mean(parts))


def test_cross_supcon_matches_a_direct_loop_with_unlabelled_pairs():
    g = torch.Generator().manual_seed(0)
    za, zb = torch.randn(10, 6, generator=g), torch.randn(10, 6, generator=g)
    y = torch.tensor([0, 1, -1, 0, 2, -1, 1, 0, -1, 2])
    assert float(cross_supcon(za, zb, y, temperature=0.2)) == pytest.approx(_direct(za, zb, y, 0.2), rel=1e-5)
    assert float(cross_supcon(za, zb, torch.full((10,), -1))) == 0.0


def test_distinct_labels_reduce_to_symmetric_infonce():
    g = torch.Generator().manual_seed(1)
    za, zb = torch.randn(12, 5, generator=g), torch.randn(12, 5, generator=g)
    got = cross_supcon(za, zb, torch.arange(12), temperature=0.1)
    want = symmetric_infonce(za, zb, torch.tensor(math.log(10.0)))["loss"]
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def _ddp_worker(rank, world, store, out_dir, za, zb, y):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    n = len(za) // world
    a = za[rank * n:(rank + 1) * n].clone().requires_grad_()
    b = zb[rank * n:(rank + 1) * n].clone().requires_grad_()
    loss = cross_supcon(a, b, y[rank * n:(rank + 1) * n], temperature=0.3)
    loss.backward()
    torch.save({"loss": loss.detach(), "ga": a.grad / world, "gb": b.grad / world},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)


def test_ddp_gather_parity_value_and_gradient(tmp_path):
    world = 2
    g = torch.Generator().manual_seed(2)
    za, zb = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    y = torch.tensor([0, 1, -1, 1, 0, 2, -1, 0])
    mp.spawn(_ddp_worker, args=(world, str(tmp_path / "store"), str(tmp_path), za, zb, y), nprocs=world, join=True)
    a, b = za.clone().requires_grad_(), zb.clone().requires_grad_()
    loss = cross_supcon(a, b, y, temperature=0.3)
    loss.backward()
    for r in range(world):
        res = torch.load(tmp_path / f"rank{r}.pt")
        assert res["loss"].item() == pytest.approx(loss.item(), rel=1e-6)
        assert torch.allclose(res["ga"], a.grad[r * 4:(r + 1) * 4], atol=1e-6)
        assert torch.allclose(res["gb"], b.grad[r * 4:(r + 1) * 4], atol=1e-6)


def test_the_objective_inside_the_two_tower_method():
    from polyjepa.paired.method import TwoTower
    from polyjepa.paired.towers import MLPTower

    torch.manual_seed(0)
    crit = SemiSupervisedContrastive(weight=0.5, label_fraction=0.5)
    m = TwoTower(tower_a=MLPTower(input_shape=(10,)), tower_b=MLPTower(input_shape=(7,)), criterion=crit, proj_dim=16)
    n = 40
    m.attach(np.random.randn(n, 10).astype(np.float32), np.random.randn(n, 1, 7).astype(np.float32), np.arange(n),
             np.arange(n) % 4)
    assert int((m._y >= 0).sum()) == 20 and torch.equal(m._y >= 0, labelled_subset(n, 0.5, 0))
    batch = m.make_batch(torch.arange(32, dtype=torch.float32)[:, None], torch.Generator().manual_seed(0), 0.0)
    out = m.loss(batch)
    assert float(out["loss"].detach()) == pytest.approx(float(out["infonce"] + 0.5 * out["supcon"]), rel=1e-6)
    out["loss"].backward()
    for name, p in m.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    x = torch.randn(5, 10)
    assert torch.equal(m.embed(x, side="a", alpha=0.0), m.embed(x, side="a"))       # alpha 0: the pairing head
    z1 = m.embed(x, side="a", alpha=1.0)
    assert torch.allclose(z1, torch.nn.functional.normalize(crit.sup_a(m.tower_a(x)), dim=-1), atol=1e-6)
    # in between: the normalised sum of the two unit vectors, weighted (1 - alpha) and alpha
    norm = torch.nn.functional.normalize
    pair, sup = norm(m.head_a(m.tower_a(x)), dim=-1), norm(crit.sup_a(m.tower_a(x)), dim=-1)
    assert torch.allclose(m.embed(x, side="a", alpha=0.25), norm(0.75 * pair + 0.25 * sup, dim=-1), atol=1e-6)
    assert not torch.allclose(m.embed(x, side="a", alpha=0.25), m.embed(x, side="a"), atol=1e-3)
    with pytest.raises(ValueError, match="labelled"):
        TwoTower(tower_a=MLPTower(input_shape=(3,)), tower_b=MLPTower(input_shape=(3,)),
                 criterion=SemiSupervisedContrastive()).attach(np.zeros((4, 3)), np.zeros((4, 1, 3)), np.arange(4))

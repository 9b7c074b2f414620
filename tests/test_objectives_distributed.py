"""Every joint-embedding objective under 2-process gloo DDP equals the single-process computation on the
concatenated batch, in value and in gradient (one spawn for all objectives)."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from polyjepa.objectives import (barlow_twins_loss, dino_loss, intl_loss, koleo_loss, lejepa_loss, nt_xent_loss,
                                 sigreg_loss, tico_loss, vicreg_loss)

N, D, K = 16, 6, 5

# name -> (inputs as (tensor, batch axis), loss function). The same step seed draws SIGReg's directions on every rank.
CASES = {
    "nt_xent": (((N, D), 0), ((N, D), 0)), "barlow": (((N, D), 0), ((N, D), 0)),
    "vicreg": (((N, D), 0), ((N, D), 0)), "tico": (((N, D), 0), ((N, D), 0)),
    "intl": (((N, D), 0), ((N, D), 0), ((N, D), 0)), "sigreg": (((3, N, D), 1),),
    "lejepa": (((4, N, D), 1),), "dino": (((3, N, K), 1), ((2, N, K), 1)), "koleo": (((N, D), 0),),
}


def loss_of(name, t):
    if name == "nt_xent":
        return nt_xent_loss(*t, temperature=0.2)
    if name == "barlow":
        return barlow_twins_loss(*t, lambd=0.05)
    if name == "vicreg":
        return vicreg_loss(*t)
    if name == "tico":
        return tico_loss(*t, torch.eye(D) * 0.05)
    if name == "intl":
        return intl_loss(list(t), axis=0)
    if name == "sigreg":
        return sigreg_loss(t[0], num_slices=32, seed=11)
    if name == "lejepa":
        return lejepa_loss(t[0], n_global=2, num_slices=32, seed=11)
    if name == "dino":
        return dino_loss(t[0], t[1], torch.linspace(-0.1, 0.1, K), centering="center", teacher_temp=0.07)
    if name == "koleo":
        return koleo_loss(t[0])
    raise KeyError(name)


def full_inputs(name):
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    return [torch.randn(*shape, generator=g, dtype=torch.float64) for shape, _ in CASES[name]]


def shard(x, axis, rank, world):
    n = x.shape[axis] // world
    return x.narrow(axis, rank * n, n)


def _worker(rank, world, store, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    results = {}
    for name, spec in CASES.items():
        inputs = [shard(x, axis, rank, world).clone().requires_grad_() for x, (_, axis) in zip(full_inputs(name), spec)]
        out = loss_of(name, inputs)
        out["loss"].backward()
        # The autograd all_gather sums every rank's gradient of the (identical) loss into each shard;
        # DDP then averages over ranks: the effective gradient is grad / world.
        results[name] = {"values": {k: v.detach().clone() for k, v in out.items()},
                         "grads": [None if x.grad is None else x.grad / world for x in inputs]}
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)


def test_every_objective_ddp_value_and_gradient_equal_single_process(tmp_path):
    world = 2
    mp.spawn(_worker, args=(world, str(tmp_path / "store"), str(tmp_path)), nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    for name, spec in CASES.items():
        inputs = [x.clone().requires_grad_() for x in full_inputs(name)]
        out = loss_of(name, inputs)
        out["loss"].backward()
        for r in range(world):
            for k, v in out.items():
                assert torch.allclose(ranks[r][name]["values"][k], v.detach(), rtol=1e-6, atol=1e-9), (name, k, r)
            for x, (_, axis), g in zip(inputs, spec, ranks[r][name]["grads"]):
                if x.grad is None:  # DINO's teacher logits are constants
                    assert name == "dino" and g is None
                    continue
                expect = shard(x.grad, axis, r, world)
                assert torch.allclose(g, expect, rtol=1e-5, atol=1e-9), (name, r)

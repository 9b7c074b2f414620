"""Every multi-view recipe under 2-process gloo DDP: one training step's loss and gradient equal the
single-process step on the concatenated batch (projector BatchNorm statistics included), one spawn for all;
and a multi-view recipe trains end to end with Fabric DDP on two processes."""
import json
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from polyjepa.build import build_method
from polyjepa.config import load_recipe
from polyjepa.multiview.heads import GlobalBatchNorm1d

RECIPES = ["simclr-mnist", "barlow-mnist", "vicreg-mnist", "tico-mnist", "intl-mnist", "lejepa-mnist", "dino-mnist"]
SMALL = ["encoder.size=micro", "encoder.depth=1", "projector.hidden=32"]
B, SHAPE = 16, (1, 16, 16)


def full_batch(recipe):
    """The method (seed 0) and one batch of views made on the whole batch, so both runs see the same views."""
    method = build_method(load_recipe(recipe, SMALL), SHAPE, seed=0)
    x = torch.randn(B, *SHAPE, generator=torch.Generator().manual_seed(0))
    return method, method.make_batch(x, torch.Generator().manual_seed(1), 0.0)


def shard(batch, rank, world):
    n = B // world
    out = {}
    for key, v in batch.items():
        axis = 0 if key == "x" else 1          # views are (V, B, ...)
        out[key] = v.narrow(axis, rank * n, n)
    return out


def _worker(rank, world, store, path):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    results = {}
    for recipe in RECIPES:
        method, batch = full_batch(recipe)
        ddp = torch.nn.parallel.DistributedDataParallel(method)
        loss = ddp(shard(batch, rank, world))["loss"]
        loss.backward()
        results[recipe] = {"loss": loss.detach().clone(),
                           "grads": {k: p.grad.clone() for k, p in method.named_parameters() if p.grad is not None}}
    if rank == 0:
        torch.save(results, path)
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)  # skip gloo's static teardown (see test_distributed.py)


def test_every_multiview_recipe_ddp_step_equals_single_process(tmp_path):
    path = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(path)), nprocs=2, join=True)
    ddp = torch.load(path)
    for recipe in RECIPES:
        method, batch = full_batch(recipe)
        loss = method(batch)["loss"]
        loss.backward()
        # Every rank computes the loss of the gathered batch, so rank 0's loss is the global one.
        assert torch.allclose(ddp[recipe]["loss"], loss.detach(), rtol=1e-5, atol=1e-6), recipe
        grads = {k: p.grad for k, p in method.named_parameters() if p.grad is not None}
        assert grads.keys() == ddp[recipe]["grads"].keys(), recipe
        # Tolerance relative to the recipe's largest gradient: Barlow Twins' reach ~30, where summation
        # order alone moves single elements near zero by ~1e-4.
        scale = max(float(g.abs().max()) for g in grads.values())
        for name, g in grads.items():
            err = float((ddp[recipe]["grads"][name] - g).abs().max())
            assert err <= 1e-4 * scale, (recipe, name, err, scale)


def test_global_batchnorm_is_batchnorm_in_one_process():
    torch.manual_seed(0)
    x = torch.randn(12, 5)
    ours, ref = GlobalBatchNorm1d(5), torch.nn.BatchNorm1d(5)
    assert torch.equal(ours(x), ref(x))
    assert torch.equal(ours.running_mean, ref.running_mean) and torch.equal(ours.running_var, ref.running_var)
    assert ours.state_dict().keys() == ref.state_dict().keys()


def test_fabric_ddp_trains_a_multiview_recipe(tmp_path):
    from polyjepa.runner import pretrain

    s = pretrain("vicreg-mnist", data="digits", out=str(tmp_path / "run"),
                 overrides=SMALL + ["train.devices=2", "train.accelerator=cpu", "train.batch_size=32",
                                    "train.max_steps=6", "train.log_every=2", "train.monitor_every=3",
                                    "train.checkpoint_every=3", "data.max_samples=400", "eval.monitor_samples=128",
                                    "data.test_size=100"],
                 progress=False, echo=lambda *_: None)
    assert s["world_size"] == 2 and s["steps"] == 6
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["probe"]["linear"]["accuracy"] > 0.3

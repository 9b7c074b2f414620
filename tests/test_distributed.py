"""DDP on CPU (gloo): two processes give the single-process loss and gradient; Fabric DDP trains end to end."""
import json
import os
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from polyjepa.build import build_method
from polyjepa.config import load_recipe
from polyjepa.data import MaskedBatches

OVERRIDES = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2"]


def make_batch():
    # The regulariser, batch-standardised targets and the invariance term (VICReg, projector BatchNorm)
    # use statistics of the whole (global) batch.
    cfg = load_recipe("ijepa-digits", OVERRIDES + ["regularizer.name=vcr", "target.batch_standardize=true",
                                                   "invariance.name=vicreg", "invariance.hidden=64"])
    method = build_method(cfg, (1, 8, 8), seed=0)
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    batch = MaskedBatches(x, batch_size=16, make_batch=method.make_batch)[0]
    # float64: the parity then holds to ~1e-12; in float32 summation order alone left up to 2.4e-4 of the
    # largest gradient in the projector's first layer on one machine (BatchNorm cancellations), 1e-5 on another.
    return cfg, {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}


def _worker(rank, world, store, path):
    # A file store (no port to race for); a barrier before teardown so no rank exits mid-collective.
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    cfg, batch = make_batch()
    method = build_method(cfg, (1, 8, 8), seed=0).double()
    ddp = torch.nn.parallel.DistributedDataParallel(method)
    n = len(batch["x"]) // world
    shard = {k: v[rank * n:(rank + 1) * n] for k, v in batch.items()}
    loss = ddp(shard)["loss"]
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    if rank == 0:
        grads = {k: p.grad.clone() for k, p in method.named_parameters() if p.requires_grad}
        torch.save({"loss": mean_loss / world, "grads": grads}, path)
    dist.barrier()
    dist.destroy_process_group()
    # Skip C++ static teardown: gloo's threads can abort the interpreter's exit ("terminate called
    # without an active exception") after all the work is done and saved, failing spawn's exit check.
    os._exit(0)


def test_ddp_loss_and_gradient_equal_single_process(tmp_path):
    path = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(path)), nprocs=2, join=True)
    ddp = torch.load(path)
    cfg, batch = make_batch()
    method = build_method(cfg, (1, 8, 8), seed=0).double()
    loss = method(batch)["loss"]
    loss.backward()
    assert torch.allclose(ddp["loss"], loss.detach(), rtol=1e-10, atol=1e-12)
    # Tolerance relative to the largest gradient: the projector's BatchNorm cancels a shift of its input
    # exactly, so gradients such as the final LayerNorm's bias are sums that cancel to ~0.
    scale = max(float(p.grad.abs().max()) for p in method.parameters() if p.requires_grad)
    for name, p in method.named_parameters():
        if p.requires_grad:
            err = float((ddp["grads"][name] - p.grad).abs().max())
            assert err <= 1e-9 * scale, (name, err, scale)


def test_fabric_ddp_two_processes_train(tmp_path, tiny_overrides):
    from polyjepa.runner import pretrain

    s = pretrain("ijepa-digits", out=str(tmp_path / "run"), overrides=tiny_overrides + ["train.devices=2",
                                                                                         "train.accelerator=cpu"],
                 progress=False, echo=lambda *_: None)
    assert s["world_size"] == 2 and s["steps"] == 8
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["probe"]["linear"]["accuracy"] > 0.3

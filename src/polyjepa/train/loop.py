"""The training loop on Lightning Fabric: one process or DDP, resumable, with a time budget."""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import TrainConfig
from ..errors import UserError
from ..models.transformer import set_grad_checkpoint
from .checkpoint import latest_checkpoint, load_latest_checkpoint, load_model_state, save_checkpoint
from .metrics import MetricsCSV
from .precision import resolve_precision
from .schedules import apply_schedules, stage_starts
from .tensorboard import TensorBoardWriter


class TrainingDiverged(UserError):
    """The loss became NaN or inf; the last good checkpoint is kept."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


@dataclass
class TrainJob:
    """Everything a (possibly spawned) training process needs; picklable."""

    build: Callable[[], torch.nn.Module]        # builds the method, same weights on every rank
    x_train: np.ndarray                         # or a lazy source such as data.stream.ImageFolderStream
    train: TrainConfig
    run_dir: str
    seed: int = 0
    augment: Callable | None = None
    monitor: Callable | None = None             # monitor(method) -> dict of scalars (rank 0 only)
    resume: bool = False
    progress: bool = True
    replan: bool = False                        # with resume: the length (max_steps/max_epochs) was changed
    model_width: int | None = None              # the transformer's width, for precision 'auto' (None: build to see)


def param_groups(modules: list[torch.nn.Module]) -> list[dict]:
    """Weight decay on matrices only; biases, norms, mask tokens and positions are not decayed."""
    decay, no_decay = [], []
    for module in modules:
        for name, p in module.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 or "token" in name or "pos" in name else decay).append(p)
    return [{"params": decay, "apply_wd": True}, {"params": no_decay, "weight_decay": 0.0, "apply_wd": False}]


def adamw(groups: list[dict], **kwargs) -> torch.optim.AdamW:
    """AdamW over ``groups``, in PyTorch's fused kernel where every parameter allows it (float tensors on a CPU
    or GPU, FSDP's sharded ones included: one pass over each parameter instead of a dozen element-wise ones,
    about 5% of the ViT-Tiny I-JEPA step on a CPU); the per-parameter loop on other devices."""
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, fused=fused or None, **kwargs)


def discard_checkpoint_of_step(ckpt_dir: Path, step: int) -> Path | None:
    """The newest checkpoint before ``step`` after removing the one at ``step``, whose weights gave a non-finite
    loss (finite weights can still overflow in the forward pass); ``latest.json`` is pointed back to it."""
    import json
    import shutil

    from .checkpoint import atomic_write_text, checkpoints_newest_first

    shutil.rmtree(ckpt_dir / f"step-{step:07d}", ignore_errors=True)
    remaining = checkpoints_newest_first(ckpt_dir)
    if remaining:
        name = remaining[0].name
        atomic_write_text(ckpt_dir / "latest.json", json.dumps({"checkpoint": name, "step": int(name.split("-")[1])}))
        return remaining[0]
    (ckpt_dir / "latest.json").unlink(missing_ok=True)
    return None


def fit(job: TrainJob) -> dict:
    """Train ``job.build()`` and return the run's training record (rank 0's)."""
    tc = job.train
    strategy = tc.strategy
    if tc.devices > 1 and strategy == "auto":
        strategy = "ddp_spawn"  # a function launcher: works from a CLI, a notebook or a test alike
    precision = resolve_precision(tc.precision, tc.accelerator, job.build, job.model_width)
    if str(strategy).startswith("fsdp"):
        strategy = fsdp_strategy(tc)
    fabric = make_fabric(tc, strategy, precision)
    from ..runner import fabric_cli_used

    # fabric run has started the processes already (Fabric refuses launch() then): each runs the worker itself
    record = _worker(fabric, job) if fabric_cli_used() else fabric.launch(_worker, job)
    return {**record, "precision": precision}


def shard_blocks(model: torch.nn.Module, mesh) -> torch.nn.Module:
    """FSDP2 (``fully_shard``) over the data-parallel ranks: each transformer block is its own unit (its
    parameters are gathered just before it runs and freed after), the rest of the model one more unit."""
    from torch.distributed.fsdp import fully_shard

    from ..models.transformer import Block

    dp = mesh["data_parallel"]
    for module in model.modules():
        if isinstance(module, Block):
            fully_shard(module, mesh=dp)
    fully_shard(model, mesh=dp)
    return model


def fsdp_strategy(tc: TrainConfig):
    """``train.strategy=fsdp``: Lightning Fabric's ModelParallelStrategy with data parallelism only, sharding by
    :func:`shard_blocks`; on GPUs (nccl) and on CPUs (gloo) alike."""
    from lightning_fabric.strategies import ModelParallelStrategy

    return ModelParallelStrategy(shard_blocks, data_parallel_size=tc.devices * tc.num_nodes, tensor_parallel_size=1)


def full_state(model: torch.nn.Module, optimizer) -> tuple[dict, dict]:
    """The whole (unsharded) model and optimizer state of a sharded model, on the CPU, in the layout of a plain
    ``state_dict()`` (the optimizer's parameters numbered in group order), on rank 0 (the other ranks get
    empty dicts). Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True, flatten_optimizer_state_dict=False)
    model_state = get_model_state_dict(model, options=opts)
    named = get_optimizer_state_dict(model, optimizer, options=opts)
    if "param_groups" not in named:   # gathered onto rank 0 only (cpu_offload): the other ranks get nothing
        return model_state, {}
    index = {fqn: i for i, fqn in enumerate(_optimizer_fqns(model, optimizer))}
    groups = [{**g, "params": [index[f] for f in g["params"]]} for g in named["param_groups"]]
    return model_state, {"state": {index[f]: v for f, v in named["state"].items()}, "param_groups": groups}


def _optimizer_fqns(model: torch.nn.Module, optimizer) -> list[str]:
    """The names of the optimizer's parameters in its group order: the numbering of a plain ``state_dict()``."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def load_full_optimizer_state(model: torch.nn.Module, optimizer, state: dict) -> None:
    """Load a plain-layout optimizer state (as :func:`full_state` or an unsharded run writes it) into the
    optimizer of a sharded model. Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    fqns = _optimizer_fqns(model, optimizer)
    if len(fqns) != sum(len(g["params"]) for g in state["param_groups"]):
        raise UserError("the checkpoint's optimizer state belongs to a different model: resume with the recipe "
                        "and overrides the run was started with")
    named = {"state": {fqns[int(i)]: v for i, v in state["state"].items()},
             "param_groups": [{**g, "params": [fqns[int(i)] for i in g["params"]]} for g in state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, named,
                             options=StateDictOptions(full_state_dict=True, flatten_optimizer_state_dict=False))


def single_threaded_blas() -> None:
    """Limit numpy's and scipy's BLAS (not torch's) to one thread for the rest of this process; the loop calls it
    before it forks DataLoader workers. OpenBLAS 0.3.30, the build numpy and scipy ship, can deadlock a process
    that has forked in a threaded LAPACK routine: a paired recipe's evaluation hung in scipy's LU (``dgetrf``,
    called by randomized SVD) after ``train.num_workers=1``; one thread takes a path without the lock. The probes
    are no slower for it (:func:`polyjepa.eval.probes.linear_probe` fits on one thread: the BLAS threads contend
    with torch's)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def check_launch(tc: TrainConfig) -> None:
    """UserError for settings this launch cannot run: several nodes without a launcher on each, or sharding
    combined with gradient accumulation."""
    from ..runner import launch_rank

    if tc.num_nodes > 1 and launch_rank() is None:
        raise UserError("train.num_nodes > 1: a run over several machines is started by a launcher on each "
                        "(torchrun --nnodes=N ... -m polyjepa pretrain; see docs/scale.md)")
    if str(tc.strategy).startswith("fsdp") and tc.accumulate > 1:
        raise UserError(f"train.strategy={tc.strategy} does not combine with train.accumulate={tc.accumulate}: "
                        f"shard the model or accumulate, not both (train.accumulate=1)")


def make_fabric(tc: TrainConfig, strategy: str, precision: str):
    """Lightning Fabric for the run's settings; a combination it refuses is one line naming the settings."""
    from lightning_fabric import Fabric

    from ..runner import fabric_cli_used

    check_launch(tc)
    devices, cli_options = tc.devices, {}
    if fabric_cli_used():
        # Under fabric run, Fabric reads the command's options from LT_* variables and refuses other values. The
        # runner took --accelerator, --precision and --strategy into train.* (fabric_cli_train_config), so Fabric
        # is given those from here; --devices stays as typed (it may name devices, e.g. 2,3).
        devices = os.environ.get("LT_DEVICES", devices)
        cli_options = {k: os.environ.pop(k) for k in ("LT_ACCELERATOR", "LT_PRECISION", "LT_STRATEGY") if k in os.environ}
    try:
        return Fabric(accelerator=tc.accelerator, devices=devices, num_nodes=tc.num_nodes, strategy=strategy,
                      precision=precision)
    except (ValueError, RuntimeError, TypeError) as e:
        raise UserError(f"cannot train with train.accelerator={tc.accelerator}, train.devices={tc.devices}, "
                        f"train.strategy={tc.strategy}, precision {precision}: {' '.join(str(e).split())}") from None
    finally:
        os.environ.update(cli_options)


def _worker(fabric, job: TrainJob) -> dict:
    from torch.utils.data import DataLoader

    from ..data.batches import MaskedBatches, check_accumulate, split_batch
    from ..data.stream import as_source

    tc, run_dir = job.train, Path(job.run_dir)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    rank0 = fabric.global_rank == 0
    method = job.build()
    if tc.grad_checkpoint and not set_grad_checkpoint(method, True):
        raise UserError("train.grad_checkpoint=true, but no part of this method can recompute its blocks (the "
                        "transformer encoders and predictors can): drop the option")
    fit_targets = getattr(method, "fit_targets", None)
    if fit_targets is not None and not job.resume:
        # targets fitted to the training data once (e.g. a quantiser's codebooks); a resume restores them instead
        fit_targets(job.x_train, seed=job.seed)
    # A sharded model's optimizer is made after the sharding, over the sharded parameters.
    sharded = type(fabric.strategy).__name__ == "ModelParallelStrategy"
    if sharded and getattr(job.build, "shares_module", False):
        import copy

        method = copy.deepcopy(method)   # sharding changes a module in place: leave the caller's one whole
    new_optimizer = lambda: adamw(param_groups(method.trainable_modules()), lr=tc.start_lr, betas=tc.betas)  # noqa: E731
    optimizer = None if sharded else new_optimizer()

    check_accumulate(method, tc.accumulate)
    make_batch = getattr(method, "make_batch", None)
    batches = MaskedBatches(as_source(job.x_train), batch_size=tc.batch_size,
                            masker=None if make_batch else method.masker, make_batch=make_batch,
                            augment=job.augment, seed=job.seed, rank=fabric.global_rank, world_size=fabric.world_size)
    total = tc.max_steps if tc.max_steps is not None else tc.max_epochs * batches.steps_per_epoch
    state = {"step": 0, "total_steps": total, "train_seconds": 0.0, "samples": 0}
    ckpt_dir = run_dir / "checkpoints"
    if job.resume:
        found = load_latest_checkpoint(ckpt_dir)
        if found is None:
            raise UserError(f"no checkpoint in {ckpt_dir} to resume from: start a new run instead")
        path, model_state, optim_state, meta = found
        load_model_state(method, model_state, path)
        if optim_state is not None and not sharded:
            optimizer.load_state_dict(optim_state)
        state.update({k: meta[k] for k in state if k in meta})
        if job.replan:  # a resume that changed the length: the new one replaces the checkpoint's
            if total <= state["step"]:
                raise UserError(f"the run has already trained {state['step']} steps, and the new length is {total}: "
                                f"raise train.max_steps / --max-epochs above that")
            state["total_steps"] = total
    resume_step = state["step"] if job.resume else None
    also = (TensorBoardWriter(run_dir, resume_step),) if rank0 and tc.logger == "tensorboard" else ()
    metrics = MetricsCSV(run_dir / "metrics.csv", resume_step=resume_step, also=also) if rank0 else None

    inner = method
    if sharded:
        method = fabric.setup_module(method)
        optimizer = fabric.setup_optimizers(new_optimizer())
        if job.resume and optim_state is not None:
            load_full_optimizer_state(inner, optimizer, optim_state)
    else:
        method, optimizer = fabric.setup(method, optimizer)
    budget = tc.max_minutes * 60 if tc.max_minutes else math.inf
    start_step, seconds_before = state["step"], state["train_seconds"]

    def checkpoint():
        # Never store weights that a step has already broken: a finite loss can precede inf weights.
        finite = all(torch.isfinite(getattr(p, "to_local", lambda: p)()).all() for p in inner.parameters())
        if sharded:   # each rank holds a shard: all must be finite
            finite = bool(fabric.all_reduce(torch.tensor(float(finite)), reduce_op="min") > 0)
        if not finite:
            raise TrainingDiverged(f"weights became non-finite by step {state['step']}; the last good checkpoint is "
                                   f"{latest_checkpoint(ckpt_dir)}: resume it with a lower train.lr (or a higher "
                                   f"train.warmup, a lower train.grad_clip), e.g. --resume RUN_DIR train.lr=1e-4",
                                   step=state["step"])
        if sharded:   # every rank takes part in gathering the shards; rank 0 writes them
            model_state, optim_state = full_state(inner, optimizer)
        if rank0:
            if not sharded:
                model_state, optim_state = inner.state_dict(), optimizer.state_dict()
            save_checkpoint(ckpt_dir, state["step"], model_state, optim_state, {**state, "seed": job.seed},
                            keep=tc.keep_checkpoints)
        fabric.barrier()

    def run_monitor():
        # A sharded model runs forward only with every rank: the monitor (rank 0's) is off while training.
        if rank0 and job.monitor is not None and not sharded:
            # A monitor that keeps a record in the run directory (the spectrum) is told where and when.
            extra = {"step": state["step"], "run_dir": run_dir} if getattr(job.monitor, "uses_step", False) else {}
            values = job.monitor(inner, **extra)
            metrics.log(state["step"], values)
            return values
        return {}

    bar = None
    if rank0 and job.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=state["total_steps"], initial=state["step"], desc="pretrain", unit="step",
                   dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 15.0)
    if state["step"] == 0 and rank0:
        run_monitor()

    window_s, window_n = 0.0, 0
    t_last = time.perf_counter()
    sps = float("nan")
    stop_reason = "completed"
    method.train()
    if tc.num_workers > 0:
        single_threaded_blas()   # before DataLoader workers fork, and for the evaluation after training
    while state["step"] < state["total_steps"]:
        batches.total_steps = state["total_steps"]
        loader = DataLoader(batches, sampler=range(state["step"], state["total_steps"]), batch_size=None,
                            num_workers=tc.num_workers, persistent_workers=False)
        replan = False
        for batch in loader:
            step, total = state["step"], state["total_steps"]
            batch = fabric.to_device(batch)
            lr, wd = apply_schedules(optimizer, step, total, tc, stage_starts=stage_starts(inner, total))
            # forward and backward (per micro-batch with train.accumulate > 1; one pass over the batch otherwise)
            out, loss = accumulate_backward(fabric, method, split_batch(batch, tc.accumulate))
            diverged = not bool(torch.isfinite(loss))
            elapsed = state["train_seconds"] + time.perf_counter() - t_last
            if fabric.world_size > 1:
                # One exchange per step keeps the processes' decisions equal: a loss that is not finite in any
                # process stops all of them (rather than one, leaving the others waiting in the next collective),
                # and the time budget is read from the slowest process.
                agreed = fabric.all_reduce(torch.tensor([float(diverged), elapsed], device=fabric.device),
                                           reduce_op="max")
                diverged, elapsed = bool(agreed[0] > 0), float(agreed[1])
            if diverged:
                if bar:
                    bar.close()
                last = discard_checkpoint_of_step(ckpt_dir, step) if rank0 else latest_checkpoint(ckpt_dir)
                value = loss.item() if not torch.isfinite(loss) else "non-finite in another process"
                raise TrainingDiverged(
                    f"loss became {value} at step {step}; the last good checkpoint is "
                    f"{last if last else 'none (none was written yet)'}: resume with a lower train.lr (or a higher "
                    f"train.warmup, a lower train.grad_clip), e.g. --resume RUN_DIR train.lr=1e-4",
                    step=step)
            if tc.grad_clip:
                fabric.clip_gradients(method, optimizer, max_norm=tc.grad_clip, error_if_nonfinite=False)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            momentum = inner.update_target(step, total)
            state["step"] = step = step + 1
            n_batch = len(batch["x"]) * fabric.world_size
            state["samples"] += n_batch
            now = time.perf_counter()  # step time includes loading the batch (masks, augmentation)
            state["train_seconds"] += now - t_last
            window_s, window_n, t_last = window_s + now - t_last, window_n + n_batch, now

            log_now = step % tc.log_every == 0 or step == total
            if log_now:   # the global batch's loss and terms: each process's, averaged over the processes
                logged = {"loss": loss.detach(), **{k: v.detach() for k, v in out.items() if k != "loss"}}
                if fabric.world_size > 1:
                    means = fabric.all_reduce(torch.stack([v.float().reshape(()) for v in logged.values()]),
                                              reduce_op="mean")
                    logged = dict(zip(logged, means))
            if rank0 and log_now:
                sps = window_n / max(window_s, 1e-9)
                window_s, window_n = 0.0, 0
                row = {"epoch": step / batches.steps_per_epoch, "loss": float(logged.pop("loss")), "lr": lr,
                       "weight_decay": wd, "samples_per_second": sps}
                if momentum is not None:          # None: the method has no teacher to move
                    row["momentum"] = momentum
                row.update({k: float(v) for k, v in logged.items()})
                metrics.log(step, row)
                if bar:
                    bar.set_postfix(loss=f"{row['loss']:.4f}", samples_s=f"{sps:.0f}", lr=f"{lr:.1e}", refresh=False)
            if bar:
                bar.update(1)
            if tc.monitor_every and step % tc.monitor_every == 0 and step < total:
                values = run_monitor()
                if bar and values:
                    bar.write("  step {}: {}".format(step, ", ".join(f"{k} {v:.3f}" for k, v in values.items())))
                t_last = time.perf_counter()
            if tc.checkpoint_every and step % tc.checkpoint_every == 0 and step < total:
                checkpoint()
                t_last = time.perf_counter()
            if budget < math.inf:
                if step - start_step == 20 and not job.resume:
                    # Fit the schedule to the budget, from the measured step time (first steps excluded).
                    per_step = state["train_seconds"] / (step - start_step)
                    fitted = step + int((budget - state["train_seconds"]) / per_step)
                    if fabric.world_size > 1:   # every process takes the slowest one's length
                        fitted = int(fabric.all_reduce(torch.tensor(float(fitted), device=fabric.device),
                                                       reduce_op="min"))
                    if fitted < total:
                        state["total_steps"], replan = max(fitted, step + 1), True
                        if bar:
                            bar.total = state["total_steps"]
                        break
                if (state["train_seconds"] if fabric.world_size == 1 else elapsed) >= budget:
                    stop_reason = "time budget"
                    break
        if stop_reason == "time budget" or not replan:
            break

    checkpoint()   # ends with a barrier: every rank is past its last collective
    if fabric.world_size > 1:
        release_process_group()
    final_monitor = run_monitor() if rank0 else {}
    if bar:
        bar.close()
    if metrics:
        metrics.close()
    return {"steps": state["step"], "total_steps": state["total_steps"], "samples": state["samples"],
            "train_seconds": state["train_seconds"], "train_seconds_before": seconds_before, "stop_reason": stop_reason,
            "samples_per_second": state["samples"] / max(state["train_seconds"], 1e-9),
            "monitor": final_monitor, "world_size": fabric.world_size}


def release_process_group(settle: float = 0.2) -> None:
    """Take this process out of the run's process group once every rank is past its last collective.

    gloo's worker threads free a finished collective's tensors after the caller has seen it complete, and a
    tensor that Python made needs the GIL to be freed. Left to interpreter exit, that free raced the
    finalisation and a spawned rank aborted ("terminate called without an active exception"); dropping the
    group while holding the GIL deadlocked instead. So the threads get ``settle`` seconds with the GIL free
    first, and the group is then destroyed here; nothing after training talks to the other ranks."""
    import time

    if not torch.distributed.is_initialized():
        return
    time.sleep(settle)
    torch.distributed.destroy_process_group()


def accumulate_backward(fabric, method, micro: list[dict]) -> tuple[dict, torch.Tensor]:
    """The training step's forward and backward: each micro-batch (one: the whole batch) with its loss divided
    by their number, so the summed gradients are those of the mean loss over the whole batch (exactly, for a loss that averages over samples; a term
    computed from batch statistics sees each micro-batch's). Gradients are all-reduced across processes on
    the last micro-batch only. Returns the micro-batches' mean outputs and loss (detached)."""
    import contextlib

    k = len(micro)
    sums: dict[str, torch.Tensor] = {}
    for i, part in enumerate(micro):
        with fabric.no_backward_sync(method) if i < k - 1 else contextlib.nullcontext():
            out = method(part)
            fabric.backward(out["loss"] / k)
        for name, v in out.items():
            v = v.detach()
            sums[name] = sums[name] + v if name in sums else v
    mean = {name: v / k for name, v in sums.items()}
    return mean, mean["loss"]

"""Train a method on in-memory arrays in this process: the core loop's step without the engine or files."""
from __future__ import annotations

import numpy as np
import torch

from ..config import TrainConfig
from ..errors import UserError


def fit_in_memory(method, x: np.ndarray, train: TrainConfig, *, seed: int = 0, stop=None) -> dict:
    """The same optimisation as ``polyjepa.train_method`` on one process (same batches, masks, AdamW,
    schedules, clipping and EMA, so the same weights), without Fabric, checkpoints or metrics files:
    what a scikit-learn estimator's ``fit`` needs. ``stop(losses) -> bool``, asked after every step,
    ends training early (the schedules keep the planned length). Returns {"steps", "final_loss",
    "losses", "stopped_early"}.
    """
    from ..data.batches import MaskedBatches
    from .loop import adamw, param_groups
    from .schedules import apply_schedules, stage_starts

    tc = train
    optimizer = adamw(param_groups(method.trainable_modules()), lr=tc.start_lr, betas=tc.betas)
    make_batch = getattr(method, "make_batch", None)
    batches = MaskedBatches(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), batch_size=tc.batch_size,
                            masker=None if make_batch else method.masker, make_batch=make_batch, seed=seed)
    total = tc.max_steps if tc.max_steps is not None else tc.max_epochs * batches.steps_per_epoch
    batches.total_steps = total
    starts = stage_starts(method, total)
    # clipped in the optimizer's order, as Fabric clips: the norm's summation order then matches to the last bit
    params = [p for g in optimizer.param_groups for p in g["params"]]
    method.train()
    losses, stopped = [], False
    for step in range(total):
        batch = batches[step]
        apply_schedules(optimizer, step, total, tc, stage_starts=starts)
        loss = method(batch)["loss"]
        if not torch.isfinite(loss):
            raise UserError(f"the loss became {loss.item()} at step {step}: lower the learning rate or raise "
                            f"the warm-up")
        loss.backward()
        if tc.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        method.update_target(step, total)
        losses.append(float(loss.detach()))
        if stop is not None and step + 1 < total and stop(losses):
            stopped = True
            break
    method.eval()
    return {"steps": len(losses), "final_loss": losses[-1] if losses else float("nan"), "losses": losses,
            "stopped_early": stopped}

"""Learning-rate and weight-decay schedules as plain functions of the step."""
from __future__ import annotations

import math
from collections.abc import Sequence


def warmup_cosine(step: int, total_steps: int, *, start: float, peak: float, final: float, warmup_steps: int) -> float:
    """Linear warm-up start -> peak over ``warmup_steps``, then cosine peak -> final (I-JEPA's schedule)."""
    if step < warmup_steps:
        return start + (peak - start) * step / max(warmup_steps, 1)
    t = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return final + (peak - final) * 0.5 * (1 + math.cos(math.pi * t))


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """The learning-rate factor of the small runners (codec, Lie-PDE, volume clustering): (step + 1) / warm-up
    during ``warmup_steps`` (never 0), then a cosine from 1 to 0 at ``total_steps``."""
    w = max(1, warmup_steps)
    if step < w:
        return (step + 1) / w
    return 0.5 * (1 + math.cos(math.pi * min((step - w) / max(1, total_steps - w), 1.0)))


def set_lr(optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def cosine(step: int, total_steps: int, *, start: float, end: float) -> float:
    """Cosine ramp start -> end over ``total_steps`` (I-JEPA's weight-decay schedule rises 0.04 -> 0.4)."""
    t = min(step / max(total_steps, 1), 1.0)
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * t))


def stage_starts(method, total_steps: int) -> list[int]:
    """The first steps of ``method``'s training stages over ``total_steps``: ``method.schedule_stages(total_steps)``
    where the method trains in stages (Concerto: its 2-D teacher, then the 3-D student), else [0]."""
    stages = getattr(method, "schedule_stages", None)
    return [0] if stages is None else sorted({0, *(int(s) for s in stages(total_steps) if 0 <= s < total_steps)})


def apply_schedules(optimizer, step: int, total_steps: int, train, *,
                    stage_starts: Sequence[int] = (0,)) -> tuple[float, float]:
    """Set this step's learning rate (all groups) and weight decay (groups with ``apply_wd``) from a
    ``TrainConfig``; returns (lr, weight decay).

    Each stage (steps ``stage_starts[i]`` to the next start, the last one to ``total_steps``) has its own
    schedule over its own steps: a warm-up over ``train.warmup`` of them, then the cosine; one stage by default.
    """
    first = max(s for s in stage_starts if s <= step)
    end = min([s for s in stage_starts if s > step] + [total_steps])
    step, total_steps = step - first, end - first
    lr = warmup_cosine(step, total_steps, start=train.start_lr, peak=train.lr, final=train.final_lr,
                       warmup_steps=int(train.warmup * total_steps))
    wd = cosine(step, total_steps, start=train.weight_decay[0], end=train.weight_decay[1])
    for group in optimizer.param_groups:
        group["lr"] = lr
        if group.get("apply_wd"):
            group["weight_decay"] = wd
    return lr, wd

"""Deterministic training batches with masks made in the data-loading step."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset
from ..errors import UserError


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, step, rank): batches are reproducible after a resume."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + rank)


def check_batch(n: int, batch_size: int, world_size: int = 1) -> None:
    """UserError unless ``n`` samples fill one global batch that splits evenly over ``world_size`` processes,
    at least 2 samples to each."""
    if batch_size % world_size:
        raise UserError(f"batch size {batch_size} is not divisible by {world_size} processes: set "
                        f"train.batch_size to a multiple of train.devices")
    if batch_size // world_size < 2:  # regularisers, variance terms and mixtures use statistics over the batch
        raise UserError(f"train.batch_size={batch_size} leaves {batch_size // world_size} sample(s) per process: "
                        f"training needs at least 2 (batch statistics): set train.batch_size to {2 * world_size} "
                        f"or more")
    if n < batch_size:
        raise UserError(f"{n} training samples are fewer than one batch of {batch_size}: "
                        f"lower train.batch_size (or use more data)")


class MaskedBatches(Dataset):
    """Training batch ``step`` (an index) -> {"x", "context_idx", "target_idx"} (or ``make_batch``'s dict).

    The order of samples is a permutation drawn from (seed, epoch); augmentation and masks are drawn
    from (seed, step, rank). Each of ``world_size`` ranks takes an equal share of the global batch. Without
    augmentation, and with a masker that does not look at the data, every rank draws the masks of the whole
    global batch from (seed, step) and keeps its own rows, so that a run over several processes takes the
    steps of one process with the same global batch.
    Use with ``DataLoader(batches, sampler=range(start, stop), batch_size=None, num_workers=k)``:
    the masks are built vectorised in the loader (in worker processes when k > 0), never in the step.

    Args:
        x: (n, ...) training inputs (a tensor held in memory).
        batch_size: global batch size (a multiple of world_size); the last partial batch is dropped.
        masker: ``masker(batch_size, generator) -> (context_idx, target_idx)``. A masker with
            ``uses_progress = True`` is called with ``progress=`` (training progress in [0, 1], for
            curricula); one with ``uses_input = True`` also gets ``x=`` (the batch, for data-dependent masks).
        make_batch: instead of a masker, ``make_batch(x, generator, progress) -> dict`` with at least
            "x" (e.g. a multi-view method's views).
        augment: optional ``augment(x_batch, generator) -> x_batch``.
        total_steps: the length of training, for ``progress``; the trainer keeps it current.
    """

    def __init__(self, x: torch.Tensor, *, batch_size: int, masker=None, make_batch=None, augment=None,
                 seed: int = 0, rank: int = 0, world_size: int = 1, total_steps: int | None = None):
        if (masker is None) == (make_batch is None):
            raise ValueError("give exactly one of masker and make_batch")
        check_batch(len(x), batch_size, world_size)
        self.x, self.batch_size, self.masker, self.make_batch, self.augment = x, batch_size, masker, make_batch, augment
        self.total_steps = total_steps
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.steps_per_epoch = len(x) // batch_size
        self._perm_epoch, self._perm = -1, None

    def __len__(self) -> int:  # unbounded stream; the sampler decides how many steps
        return 2**62

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.x), generator=g), epoch
        return self._perm

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        epoch, i = divmod(step, self.steps_per_epoch)
        idx = self._order(epoch)[i * self.batch_size:(i + 1) * self.batch_size][self.rank::self.world_size]
        progress = min(step / self.total_steps, 1.0) if self.total_steps else 0.0
        x = self.x[idx]
        if self.world_size > 1 and self._global_masks():
            # every rank draws the masks of the whole global batch, as one process would, and keeps its rows:
            # the run takes the single process's steps (the same masks, the same equal-length cut)
            context_idx, target_idx = draw_masks(self.masker, None, step_generator(self.seed, step), progress,
                                                 size=self.batch_size)
            keep = slice(self.rank, None, self.world_size)
            return {"x": x, "context_idx": context_idx[keep], "target_idx": target_idx[keep]}
        g = step_generator(self.seed, step, self.rank)
        if self.augment is not None:
            x = self.augment(x, g)
        if self.make_batch is not None:
            return self.make_batch(x, g, progress)
        context_idx, target_idx = draw_masks(self.masker, x, g, progress)
        return {"x": x, "context_idx": context_idx, "target_idx": target_idx}

    def _global_masks(self) -> bool:
        """Whether the masks can be drawn for the global batch on every rank: a masker that does not look at
        the data, and no augmentation (which would draw from the same generator, per rank)."""
        return self.masker is not None and self.augment is None and not getattr(self.masker, "uses_input", False)


def draw_masks(masker, x: torch.Tensor | None, generator: torch.Generator, progress: float = 0.0,
               size: int | None = None):
    """``masker``'s (context_idx, target_idx) for the batch ``x`` (or for ``size`` samples, for a masker that
    does not look at them), passing ``progress`` and ``x`` to the maskers that declare ``uses_progress`` /
    ``uses_input``."""
    kwargs = {}
    if getattr(masker, "uses_progress", False):
        kwargs["progress"] = progress
    if getattr(masker, "uses_input", False):
        kwargs["x"] = x
    return masker(len(x) if size is None else size, generator, **kwargs)


def check_accumulate(method, parts: int) -> None:
    """UserError unless ``method``'s training batches can be cut into ``parts`` micro-batches: a masked-token
    method's batches always can; a method that makes its own batches (views, sequences, pairs) lays them out
    its own way and cannot."""
    if parts > 1 and getattr(method, "make_batch", None) is not None:
        raise UserError(f"train.accumulate={parts} is not supported by method {type(method).__name__}, whose "
                        f"batches are not laid out one row per sample: set train.accumulate=1 (and a smaller "
                        f"train.batch_size if memory is short)")


def split_batch(batch: dict, parts: int) -> list[dict]:
    """A training batch cut into ``parts`` equal micro-batches along the sample axis (gradient accumulation).

    Every entry must be a tensor whose first axis is the batch's samples, as the masked batches' ``x``,
    ``context_idx`` and ``target_idx`` are; masks and augmentations were drawn for the whole batch, so the
    micro-batches together hold exactly the samples, masks and views of the full one.
    """
    if parts == 1:
        return [batch]
    n = len(batch["x"]) if isinstance(batch.get("x"), torch.Tensor) else None
    odd = [k for k, v in batch.items() if not (isinstance(v, torch.Tensor) and v.ndim and len(v) == n)]
    if n is None or odd:
        raise UserError(f"train.accumulate={parts} needs a batch of per-sample tensors, but this method's batch "
                        f"entries {odd or ['x']} are not split by sample: set train.accumulate=1 for this method")
    if n % parts:
        raise UserError(f"each process's batch of {n} samples does not split into train.accumulate={parts} equal "
                        f"micro-batches: choose train.accumulate dividing {n} (or adjust train.batch_size)")
    return [{k: v.chunk(parts)[i] for k, v in batch.items()} for i in range(parts)]

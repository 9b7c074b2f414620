"""Deterministic training batches with masks made in the data-loading step."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, step, rank): batches are reproducible after a resume."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + rank)


class MaskedBatches(Dataset):
    """Training batch ``step`` (an index) -> {"x", "context_idx", "target_idx"}.

    The order of samples is a permutation drawn from (seed, epoch); augmentation and masks are drawn
    from (seed, step, rank). Each of ``world_size`` ranks takes an equal share of the global batch.
    Use with ``DataLoader(batches, sampler=range(start, stop), batch_size=None, num_workers=k)``:
    the masks are built vectorised in the loader (in worker processes when k > 0), never in the step.

    Args:
        x: (n, ...) training inputs (a tensor held in memory).
        batch_size: global batch size (a multiple of world_size); the last partial batch is dropped.
        masker: ``masker(batch_size, generator) -> (context_idx, target_idx)``.
        augment: optional ``augment(x_batch, generator) -> x_batch``.
    """

    def __init__(self, x: torch.Tensor, *, batch_size: int, masker, augment=None, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {world_size} processes")
        if len(x) < batch_size:
            raise ValueError(f"{len(x)} training samples are fewer than one batch of {batch_size}: "
                             f"lower train.batch_size")
        self.x, self.batch_size, self.masker, self.augment = x, batch_size, masker, augment
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
        g = step_generator(self.seed, step, self.rank)
        x = self.x[idx]
        if self.augment is not None:
            x = self.augment(x, g)
        context_idx, target_idx = self.masker(len(idx), g)
        return {"x": x, "context_idx": context_idx, "target_idx": target_idx}

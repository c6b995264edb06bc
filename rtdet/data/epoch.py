"""The epoch a training data set draws its randomness from, shared with the loader's workers.

Every task's training pipeline seeds its augmentation with ``(seed, epoch, index)``,
so a run (and a resumed run) sees the same images whatever the number of workers.
The epoch lives in a shared-memory tensor: ``set_epoch`` in the main process
reaches persistent worker processes too.
"""

from __future__ import annotations

import torch


class EpochDataset(torch.utils.data.Dataset):
    """A Dataset with ``set_epoch(epoch)`` / ``epoch`` kept in shared memory (see the module docstring)."""

    def __init__(self) -> None:
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose randomness the next samples draw from."""
        self._epoch[0] = epoch

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

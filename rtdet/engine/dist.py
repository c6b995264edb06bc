"""torch.distributed helpers: set-up from torchrun's environment, rank-0 logging, gathering.

``torchrun --nproc_per_node=N -m rtdet train ...`` sets RANK, LOCAL_RANK and
WORLD_SIZE (and MASTER_ADDR/MASTER_PORT, or the rendezvous flags for several
nodes). :func:`init_distributed` reads them; without them every helper here
behaves as a single process (rank 0 of 1), so the same code runs both ways.

W processes with batch b train as one process with batch W*b: every run draws its
batches from the same per-epoch permutation (:func:`train_sampler`), the trainer
accumulates to the same nominal batch, and a loss normalised by a batch statistic
sums it over ranks (:func:`sum_over_ranks`). The final weights then agree up to
float rounding (tested through ``torchrun ... -m rtdet train``) when the data set
size is a multiple of W and nothing depends on the per-rank batch alone:
BatchNorm statistics (use ``norm=gn``, or ``sync_bn`` on CUDA) and ``multi_scale``
(its size is drawn per batch).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sized

import torch
import torch.distributed as torch_dist
from torch.utils.data import DistributedSampler, Sampler

LOGGER = logging.getLogger("rtdet")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_distributed() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_rank() -> int:
    return torch_dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return torch_dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return get_rank() == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment variables, if any.

    The backend defaults to NCCL when CUDA is available and Gloo otherwise. Each
    process on a GPU machine is pinned to ``cuda:LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1 or is_distributed():
        return DistInfo(get_rank(), local_rank if is_distributed() else 0, get_world_size())
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    torch_dist.init_process_group(backend=backend)
    return DistInfo(torch_dist.get_rank(), local_rank, torch_dist.get_world_size())


def cleanup() -> None:
    if is_distributed():
        torch_dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        torch_dist.barrier()


def log_info(message: str) -> None:
    """Log on rank 0 only, so N processes do not print N copies."""
    if is_main():
        LOGGER.info(message)


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (any picklable value), in rank order, on every rank."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    torch_dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """The mean over ranks of each value (float64 so ranks agree to the last bit)."""
    if not is_distributed() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    torch_dist.all_reduce(t)
    t /= get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The sum of a tensor over ranks (a copy of it without a process group); no gradient flows through.

    A loss normalised by a batch statistic (e.g. the number of positives) uses it so
    that W ranks x batch b compute the gradient of one process with batch W*b.
    """
    value = value.detach().clone()
    if is_distributed():
        torch_dist.all_reduce(value)
    return value


def train_sampler(dataset: Sized, shuffle: bool = True, seed: int = 0) -> DistributedSampler:
    """The training sampler: each rank reads a disjoint share of a per-epoch permutation.

    Used in single-process runs too (as rank 0 of 1), so the data order depends only
    on ``seed`` and the epoch (the trainer calls ``set_epoch``), never on hidden state,
    and W ranks with batch b read, batch for batch, the same images as one process
    with batch W*b (rank r takes items r, r+W, ... of the permutation): the global
    batches of both runs are the same sets when the data set size is a multiple of W.
    """
    return DistributedSampler(dataset, num_replicas=get_world_size(), rank=get_rank(), shuffle=shuffle,
                              seed=seed, drop_last=False)


class ShardSampler(Sampler[int]):
    """Evaluation sampler: rank r reads items r, r+W, r+2W, ... with no padding.

    DistributedSampler pads with repeated items so shards have equal length; for
    evaluation that would count some images twice, so this sampler does not pad.
    """

    def __init__(self, dataset: Sized, rank: int | None = None, world_size: int | None = None) -> None:
        self.n = len(dataset)
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))

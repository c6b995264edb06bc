"""Run by tests/engine/test_dist.py under ``torchrun``: checks set-up from torchrun's environment."""

import json
import sys

import torch

from rtdet.engine.dist import (ShardSampler, all_gather_object, all_reduce_mean, cleanup, init_distributed,
                               sum_over_ranks, train_sampler)

if __name__ == "__main__":
    info = init_distributed()
    try:
        shards = all_gather_object(list(ShardSampler(range(7))))
        train = all_gather_object(list(train_sampler(range(8), shuffle=True, seed=3)))
        mean = all_reduce_mean({"x": float(info.rank)})
        y = torch.tensor(info.rank + 1.0, requires_grad=True) * 2
        total = sum_over_ranks(y)
        summed = [float(total), total.requires_grad, float(y)]  # the input is left as it was
        if info.is_main:
            out = {"world": info.world_size, "shards": shards, "train": train, "mean": mean, "sum": summed}
            with open(sys.argv[1], "w") as f:
                json.dump(out, f)
    finally:
        cleanup()

"""Run by tests/engine/test_dist.py under ``torchrun``: checks set-up from torchrun's environment."""

import json
import sys

from rtdet.engine.dist import (ShardSampler, all_gather_object, all_reduce_mean, cleanup, init_distributed,
                               train_sampler)

if __name__ == "__main__":
    info = init_distributed()
    try:
        shards = all_gather_object(list(ShardSampler(range(7))))
        train = all_gather_object(list(train_sampler(range(8), shuffle=True, seed=3)))
        mean = all_reduce_mean({"x": float(info.rank)})
        if info.is_main:
            out = {"world": info.world_size, "shards": shards, "train": train, "mean": mean}
            with open(sys.argv[1], "w") as f:
                json.dump(out, f)
    finally:
        cleanup()

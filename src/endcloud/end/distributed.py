"""Multi-process training: `endcloud end train` under `torchrun` or `accelerate launch`.

    torchrun --nproc_per_node 2 -m endcloud end train --config configs/train-ddp.yaml
    accelerate launch --multi_gpu --num_processes 2 -m endcloud end train --config ...   # GPUs

(On CPU, `accelerate launch --cpu --num_processes 2` starts a single process unless MPI is set up;
torchrun is the CPU launcher, and the one the test uses.)

Both launchers set RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; with WORLD_SIZE > 1
the recipe joins the process group (gloo on CPU, NCCL on GPUs, one GPU per LOCAL_RANK) and trains
with DistributedDataParallel. The global batch stays what the config says: each optimizer step
sees `batch_size x grad_accum` examples, the same draw indices as one process, rank r taking every
WORLD_SIZE-th example of each micro-batch (so `batch_size` must be a multiple of the process
count). Rank 0 alone writes the run folder, the log, checkpoints and the final adapter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from endcloud.errors import ConfigError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    joined_here: bool = False  # we initialised the process group (and so tear it down)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self) -> str:
        import torch

        if not torch.cuda.is_available():
            return "cpu"
        return f"cuda:{self.local_rank}" if self.world > 1 else "cuda"

    def shard(self, batch_size: int) -> range:
        """This rank's positions in a micro-batch of `batch_size` draws."""
        if batch_size % self.world:
            raise ConfigError(f"batch_size: {batch_size} is not a multiple of the {self.world} "
                              "training processes (each takes an equal share of every micro-batch)")
        return range(self.rank, batch_size, self.world)

    def share(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def total(self, *values: float) -> list[float]:
        """Each value summed over the ranks."""
        if self.world == 1:
            return list(values)
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device())  # NCCL: CUDA tensors only
        dist.all_reduce(t)
        return t.cpu().tolist()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.joined_here:
            import torch.distributed as dist

            dist.destroy_process_group()


def setup() -> Dist:
    """Join the process group the launcher describes (one process: nothing to join)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    joined = False
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        joined = True
    return Dist(dist.get_rank(), dist.get_world_size(), local, joined)

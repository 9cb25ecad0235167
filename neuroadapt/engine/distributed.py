"""Data-parallel training with ``torchrun`` (``torch.distributed`` + DistributedDataParallel).

Launched as ``torchrun --nproc_per_node=N -m neuroadapt.cli train RECIPE ...``, every process sees
``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in its environment; :func:`setup` then joins the process
group (gloo on CPU, nccl on CUDA). Every rank draws the same global batch (same permutation, same
spike-encoding generator) and keeps its shard ``rank::world_size`` of it. The loss each rank
back-propagates is ``sum_of_its_sample_losses * world_size / global_batch_size``; DDP averages the
gradients over ranks, which gives exactly the gradient of the mean loss over the global batch --
whatever the shard sizes. Only rank 0 writes the run directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["DistInfo", "setup", "teardown", "shard", "all_reduce_sum", "barrier", "wrap"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def setup(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun; a single-process :class:`DistInfo` otherwise."""
    if not launched_by_torchrun():
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def teardown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def shard(index: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's part of a global batch of sample positions."""
    return index[info.rank :: info.world_size] if info.enabled else index


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sum a few numbers over ranks (loss sums, correct counts)."""
    if not info.enabled:
        return list(values)
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when distributed, ``model`` itself otherwise."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


"""Multi-process training under ``torchrun --nproc-per-node N``: DistributedDataParallel, NCCL on GPUs and
gloo on CPU. A single process (no ``WORLD_SIZE`` in the environment) needs none of this and runs as is.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from usvid.errors import InputError, MissingDependencyError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: its rank among ``world_size`` and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error, not a silent CPU run."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise MissingDependencyError("--device cuda: no CUDA device is available here; use --device cpu")
        return torch.device("cuda", local_rank)
    if name == "cpu":
        return torch.device("cpu")
    raise InputError(f"--device: expected cpu, cuda or auto, got '{name}'")


def init_distributed(device: str) -> DistContext:
    """Join the process group torchrun set up (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``), or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(device=dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
    ctx = DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=dev)
    log.info("distributed: rank %d of %d on %s", ctx.rank, ctx.world_size, dev)
    return ctx


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP over the parameters that currently require grad (stage 1 freezes the classifier)."""
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def mean_across(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Average a small tensor over processes (loss values for logging and the NaN check agree everywhere)."""
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= ctx.world_size
    return values


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank (e.g. an error raised only where validation runs)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's ``obj``, in rank order, on every rank (per-rank RNG states for exact resume)."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BN running statistics) to every rank, as DDP does before each forward, so the
    replicas are identical at epoch boundaries (validation, checkpoints, teachers)."""
    if ctx.distributed:
        for buf in unwrap(model).buffers():
            dist.broadcast(buf, src=0)

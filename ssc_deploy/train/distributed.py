"""This process's place in a ``torchrun`` data-parallel group (a group of one without it), its
device, and the check that every rank ends with the same weights."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ssc_deploy.errors import SscDeployError


@dataclass
class Dist:
    """This process's place in the (possibly 1-process) data-parallel group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> Dist:
    """The initialised process group's rank, size and backend; a group of one when there is none."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_backend())
    return Dist()


def resolve_device(device: str | None, d: Dist) -> torch.device:
    """``--device`` (cuda when available by default; this rank's GPU when distributed); one-line error otherwise."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SscDeployError("--device cuda: no CUDA device is available here")
        return torch.device("cuda", d.local_rank) if d.enabled else torch.device(device)
    if device != "cpu":
        raise SscDeployError(f"unknown --device '{device}' (use cpu or cuda)")
    return torch.device("cpu")


def params_sha256(model: torch.nn.Module) -> str:
    """Digest of every parameter's bytes, in order (to prove ranks hold identical weights)."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def agree_on_weights(model: torch.nn.Module, d: Dist) -> dict[str, Any]:
    """Every rank's parameter digest (gathered) and rank 0's BatchNorm statistics (broadcast, as DDP
    keeps them): what the checkpoint's provenance records as ``distributed``."""
    digests: list[str] = [""] * d.world_size
    dist.all_gather_object(digests, params_sha256(model))
    for buf in model.buffers():
        dist.broadcast(buf, src=0)
    return {"backend": d.backend, "world_size": d.world_size, "rank_params_sha256": digests}

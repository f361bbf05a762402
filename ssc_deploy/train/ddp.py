"""Data-parallel training entry point for ``torchrun`` (gloo on CPU, nccl on CUDA).

Run it directly::

    torchrun --standalone --nproc_per_node 2 -m ssc_deploy.train.ddp \\
        --model ssc-net-3-9 --data cifar10:PATH --out ckpt.pt

or let ``ssc-deploy train ... --nproc 2`` launch it. Every rank loads the data, takes its
shard of each epoch and averages gradients; ``--batch-size`` is the global batch; only
rank 0 writes the checkpoint, which records each rank's parameter digest.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import sys

from .config import TrainConfig
from .config import build_parser as _config_parser


def build_parser() -> argparse.ArgumentParser:
    """The options of ``ssc-deploy train``: one flag a :class:`TrainConfig` field, ``--out`` required."""
    return _config_parser(prog="python -m ssc_deploy.train.ddp", description=__doc__.splitlines()[0],
                          required=("out",))


def main(argv: list[str] | None = None) -> int:
    """Join the process group that ``torchrun`` set up, train, and leave it."""
    import torch
    import torch.distributed as dist

    from ssc_deploy.errors import SscDeployError

    from .trainer import train_model

    cfg = TrainConfig.from_argv(argv, build_parser())
    use_cuda = torch.cuda.is_available() and (cfg.device or "cuda").startswith("cuda")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        import os

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(minutes=10))
    try:
        train_model(dataclasses.replace(cfg, device="cuda" if use_cuda else "cpu"))
    except SscDeployError as err:
        print(f"error: [rank {dist.get_rank()}] {err}", file=sys.stderr)
        return err.exit_code
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import datetime as _dt
import sys


def build_parser() -> argparse.ArgumentParser:
    """The options, mirroring ``ssc-deploy train``."""
    p = argparse.ArgumentParser(prog="python -m ssc_deploy.train.ddp", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--data", default="digits")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", default=None)
    p.add_argument("--init", default=None)
    p.add_argument("--in-size", type=int, default=32)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--max-batches", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--eval-limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--force", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Join the process group that ``torchrun`` set up, train, and leave it."""
    import torch
    import torch.distributed as dist

    from ssc_deploy.errors import SscDeployError

    from .trainer import train_model

    args = build_parser().parse_args(argv)
    use_cuda = torch.cuda.is_available() and (args.device or "cuda").startswith("cuda")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        import os

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(minutes=10))
    try:
        train_model(
            args.model, data=args.data, epochs=args.epochs, out=args.out, batch_size=args.batch_size, lr=args.lr,
            weight_decay=args.weight_decay, seed=args.seed, resume=args.resume, init=args.init, in_size=args.in_size,
            progress=not args.no_progress, num_workers=args.num_workers, max_batches=args.max_batches,
            eval_every=args.eval_every, eval_limit=args.eval_limit, threads=args.threads, device="cuda" if use_cuda else "cpu", force=args.force,
        )
    except SscDeployError as err:
        print(f"error: [rank {dist.get_rank()}] {err}", file=sys.stderr)
        return err.exit_code
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One quickstart model trained in its own process: ``python -m ssc_deploy.pipeline.train_worker FLAGS``.

The flags are a :class:`~ssc_deploy.train.TrainConfig`'s (``TrainConfig.to_argv``), as for
``ssc-deploy train``; the parent reads the one line a finished epoch this prints on stdout.
"""

from __future__ import annotations

import sys

from ssc_deploy.train.config import TrainConfig, build_parser


def main(argv: list[str] | None = None) -> int:
    """Train the config the flags describe; an :class:`SscDeployError` is one ``error:`` line."""
    from ssc_deploy.errors import SscDeployError
    from ssc_deploy.train import train_model

    cfg = TrainConfig.from_argv(argv, build_parser(prog="python -m ssc_deploy.pipeline.train_worker"))
    try:
        ckpt = train_model(cfg)
    except SscDeployError as err:
        print(f"error: {err}", flush=True)
        return err.exit_code
    print(f"test top-1 {100 * ckpt.metrics['test_top1']:.1f} %", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time training steps of one model in its own process: ``python -m ssc_deploy.pipeline.probe_worker MODEL DATA``.

The quickstart starts one of these a model, all at once, to measure what a training step
costs while the models train side by side (one thread each); prints ``{"seconds": s}`` as JSON.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Print the median seconds of a 1-thread training step of ``MODEL`` on a batch of ``DATA``."""
    import torch

    from .plan import sample_batch
    from ssc_deploy.train.threads import time_threads

    model_name, data = (argv if argv is not None else sys.argv[1:])[:2]
    torch.set_num_threads(1)
    model, batch, _ = sample_batch(model_name, data)
    print(json.dumps({"seconds": time_threads(model, batch, [1])[1]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

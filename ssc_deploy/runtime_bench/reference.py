"""PyTorch reference logits: what every artifact's outputs are compared with."""

from __future__ import annotations

import numpy as np

from .model_under_test import Model


def reference_logits(model: Model, x: np.ndarray) -> np.ndarray:
    """PyTorch logits of the model's net on ``x`` (batches of 64): the net in memory, else its checkpoint's."""
    import torch

    net = model.module
    if net is None:
        from ssc_deploy.checkpoint import load_checkpoint

        net = load_checkpoint(model.checkpoint).build_model()
    net = net.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, x.shape[0], 64):
            outs.append(net(torch.from_numpy(x[i : i + 64])).float().numpy())
    return np.concatenate(outs).astype(np.float32)

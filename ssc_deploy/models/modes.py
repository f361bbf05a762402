"""Train/eval mode for a stretch of code: the one place a module's training flag is set and put back."""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in eval mode for the duration; its training flag is restored afterwards (also on error)."""
    with kept_mode(net):
        net.eval()
        yield net


@contextlib.contextmanager
def kept_mode(net: nn.Module) -> Iterator[nn.Module]:
    """``net``'s training flag as it was on entry, restored afterwards whatever the body set it to."""
    was_training = net.training
    try:
        yield net
    finally:
        net.train(was_training)

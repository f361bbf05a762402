"""Export step 2, rewrite: the lowering each target gets, its deployment net, and that net's parity
with the original on the verification images."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ssc_deploy.errors import SscDeployError
from ssc_deploy.models.modes import eval_mode

from ssc_deploy.export.foreign import ForeignReport, foreign_rewrite
from ssc_deploy.export.lowerings.selection.choice import choose_lowerings
from ssc_deploy.export.rewrite import deployment_rewrite
from ssc_deploy.export.verify import compare

REWRITE_ATOL = 1e-5  # the rewrite (BN folding, lowering) is exact up to float rounding
# Images the rewritten net is checked on before export. PyTorch runs some lowered forms slowly on CPU
# (dwconv nets of SSC-Net-3-9: ~0.4 s CPU an image), and every artifact is verified on all images anyway.
REWRITE_CHECK_IMAGES = 4


@dataclass(frozen=True)
class LoweredNets:
    """The deployment nets of one export and what every artifact is verified against."""

    images: np.ndarray  # (N, 3, S, S) real test images
    data: str  # their data spec
    reference: np.ndarray  # the original module's logits on them
    lowerings: dict[str, str]  # target -> lowering
    nets: dict[str, nn.Module]  # lowering -> deployment net
    rewrite_diff: dict[str, float]  # lowering -> max abs diff of its net vs the original
    foreign: ForeignReport | None = None  # what the graph rewrite found (None: a zoo net)
    reasons: dict[str, str] = field(default_factory=dict)  # target -> why it got its lowering

    def net_for(self, target: str) -> nn.Module:
        """The deployment net ``target`` exports."""
        return self.nets[self.lowerings[target]]


def rewrite_for_targets(model: nn.Module, images: np.ndarray, data: str, targets: Sequence[str], lowering: str,
                        atol: float, arm_profile: str | None = None) -> LoweredNets:
    """Choose each target's lowering (:func:`~ssc_deploy.export.lowerings.selection.choice.choose_lowerings`: ``"fast"``
    measured once per machine, ``"auto"`` on this net; ``arm_profile``: for that emulated ARM profile) and rewrite ``model`` once per lowering.

    A module the zoo did not build is first traced and its SSC kernels and written-out shifts
    rewritten (:func:`~ssc_deploy.export.foreign.foreign_rewrite`); parity is always against ``model``.
    Raises the one-line error (exit code 3) when a rewrite changes the outputs beyond float rounding
    on the first :data:`REWRITE_CHECK_IMAGES` images (``rewrite_diff``).
    """
    x = torch.from_numpy(images)
    with torch.no_grad(), eval_mode(model):
        reference = model(x).numpy()
        found = foreign_rewrite(model, x[:1])
        choices = choose_lowerings(found.module, lowering, targets, images, arm_profile=arm_profile, atol=atol)
        chosen = {t: c.lowering for t, c in choices.items()}
        nets, diffs = {}, {}
        for low in dict.fromkeys(chosen.values()):
            nets[low] = deployment_rewrite(found.module, low)
            # Artifacts are compared with the original net; this check only says when the rewrite is to blame.
            n = REWRITE_CHECK_IMAGES
            parity = compare(reference[:n], nets[low](x[:n]).numpy(), max(atol, REWRITE_ATOL), data)
            if not parity.passed:
                raise SscDeployError(
                    f"deployment rewrite ({low}) changed the outputs by {parity.max_abs_diff:.3g} "
                    f"(> {parity.atol:g}); nothing was exported", exit_code=3)
            diffs[low] = parity.max_abs_diff
    return LoweredNets(images, data, reference, chosen, nets, diffs, found.report,
                       {t: c.reason for t, c in choices.items()})

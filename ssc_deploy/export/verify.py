"""Parity of an exported artifact with the PyTorch net it came from, on real images."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ssc_deploy.errors import SscDeployError


@dataclass
class Parity:
    """How closely a runtime's logits match PyTorch's on the same images."""

    data: str
    n_images: int
    max_abs_diff: float
    top1_agreement: float
    atol: float
    passed: bool

    def as_dict(self) -> dict:
        return asdict(self)


def compare(reference: np.ndarray, candidate: np.ndarray, atol: float, data: str) -> Parity:
    """Max abs diff and top-1 agreement of ``candidate`` logits against ``reference``."""
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    if reference.shape != candidate.shape:
        raise SscDeployError(f"output shape {candidate.shape} differs from PyTorch's {reference.shape}")
    diff = float(np.abs(reference - candidate).max()) if reference.size else 0.0
    if not np.isfinite(candidate).all():
        diff = float("inf")
    agree = float((reference.argmax(1) == candidate.argmax(1)).mean()) if len(reference) else 1.0
    return Parity(data=data, n_images=int(len(reference)), max_abs_diff=diff, top1_agreement=agree,
                  atol=float(atol), passed=bool(diff <= atol))


def require_parity(parity: Parity, target: str, output_name: str) -> None:
    """Raise the one-line export failure when ``parity`` is beyond tolerance."""
    if not parity.passed:
        raise SscDeployError(
            f"{target}: output '{output_name}' differs from PyTorch by {parity.max_abs_diff:.3g} "
            f"(> atol {parity.atol:g}) on {parity.n_images} {parity.data} images "
            f"(top-1 agreement {parity.top1_agreement:.1%}); no artifact was written",
            exit_code=3,
        )

"""Parity of an exported artifact with the PyTorch net it came from, on real images."""

from __future__ import annotations

import numpy as np

from ssc_deploy.errors import SscDeployError

from ssc_deploy.export.manifest import Parity

__all__ = ["Parity", "compare", "require_parity", "verification_images"]


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


def verification_images(mean, std, in_size: int, n: int, data: str | None = None,
                        source_data: str | None = None) -> tuple[np.ndarray, str]:
    """The first ``n`` real test images (normalized NCHW float32) an export is verified on, and their spec.

    ``data`` when given; else the data the weights were trained on (``source_data``), falling
    back to the default data when that set is not on this machine; else the default data.
    """
    from ssc_deploy.data import DEFAULT_DATA, eval_batch

    spec = data or source_data or DEFAULT_DATA
    try:
        images, _ = eval_batch(spec, n, mean, std, in_size)
    except SscDeployError:
        if data is not None or spec == DEFAULT_DATA:
            raise
        spec = DEFAULT_DATA
        images, _ = eval_batch(spec, n, mean, std, in_size)
    return images, spec

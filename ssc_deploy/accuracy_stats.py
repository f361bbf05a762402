"""Accuracy with its uncertainty: the 95 % Wilson score interval of a top-1, the flips between two
classifiers on the same images, the exact McNemar test of those flips, and the accuracy gate's rule.

Numpy and the standard library only (the bench's store and report use it without torch or scipy);
the McNemar p-value is exact integer arithmetic (``math.comb``), not a normal approximation.

- **Wilson score interval** (Wilson 1927), 95 %, z = 1.959964: never outside [0, 1], and not
  zero-width at 0 % or 100 % (unlike the Wald interval p +- z sqrt(p(1-p)/n)).
- **Flips** of B against A (A the reference: PyTorch fp32, the fp32 file, the baseline, the first
  device): ``right_to_wrong`` images A classifies right and B wrong, ``wrong_to_right`` the reverse,
  ``changed`` images whose predicted class differs at all (wrong -> another wrong class too).
- **Exact McNemar** two-sided p-value of the discordant counts b, c: the binomial test of
  min(b, c) in b + c trials at p = 1/2, doubled and capped at 1; 1.0 when b + c = 0.
- **Paired difference interval** (Newcombe 1998, "method 10": the Wilson intervals of both top-1s
  combined with the phi correlation of the paired outcomes): the 95 % interval of a top-1 delta
  measured on the same images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ssc_deploy.errors import SscDeployError

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
ALPHA = 0.05  # a delta with McNemar p below this is called significant


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The 95 % Wilson score interval (fractions) of ``correct`` right out of ``n`` images."""
    if isinstance(correct, bool) or isinstance(n, bool) or n < 1 or not 0 <= correct <= n:
        raise SscDeployError(f"a top-1 interval needs 0 <= correct <= n and n >= 1, got {correct} of {n}")
    p = correct / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # exact ends at 0 and n, where rounding could leave 1e-17 of the wrong sign
    return (0.0 if correct == 0 else max(0.0, centre - half)), (1.0 if correct == n else min(1.0, centre + half))


def top1_interval(top1: float | None, n: int | None) -> tuple[float | None, float | None]:
    """:func:`wilson_interval` of a top-1 fraction measured on ``n`` images; (None, None) without one."""
    if top1 is None or not n:
        return None, None
    return wilson_interval(int(round(top1 * n)), int(n))


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value of the discordant counts ``b`` and ``c`` (1.0 when both are 0)."""
    if isinstance(b, bool) or isinstance(c, bool) or b < 0 or c < 0:
        raise SscDeployError(f"McNemar's test needs counts >= 0, got {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)  # int / int: correctly rounded even for thousands of trials


def significant(p: float | None, alpha: float = ALPHA) -> bool:
    """Whether a McNemar p-value says the two classifiers differ (p < ``alpha``)."""
    return p is not None and p < alpha


@dataclass(frozen=True)
class Flips:
    """How B's predictions differ from reference A's on the same ``n`` labelled images."""

    n: int
    both_right: int
    right_to_wrong: int  # A right, B wrong
    wrong_to_right: int  # A wrong, B right
    both_wrong: int
    changed: int  # predicted class differs (includes one wrong class -> another)

    @property
    def p(self) -> float:
        """Exact McNemar p-value of the two discordant counts."""
        return mcnemar_p(self.right_to_wrong, self.wrong_to_right)

    @property
    def delta(self) -> float:
        """B's top-1 minus A's (a fraction)."""
        return (self.wrong_to_right - self.right_to_wrong) / self.n if self.n else 0.0

    def delta_interval(self) -> tuple[float, float]:
        """The 95 % interval of :attr:`delta` (paired, Newcombe's method 10), as fractions."""
        lo, hi = paired_interval(self.both_right, self.wrong_to_right, self.right_to_wrong, self.both_wrong)
        return lo, hi

    def to_dict(self, prefix: str) -> dict[str, float | int]:
        """The row columns ``<prefix>right_to_wrong``, ``<prefix>wrong_to_right``, ``<prefix>changed``, ``<prefix>p``."""
        return {f"{prefix}right_to_wrong": self.right_to_wrong, f"{prefix}wrong_to_right": self.wrong_to_right,
                f"{prefix}changed": self.changed, f"{prefix}p": self.p}


def flips(labels, reference, other) -> Flips:
    """The flips of predictions ``other`` against ``reference`` (class indices) given ``labels``."""
    y, a, b = (np.asarray(v, dtype=np.int64).reshape(-1) for v in (labels, reference, other))
    if not len(y) == len(a) == len(b):
        raise SscDeployError(f"flips need predictions on the same images: {len(y)} labels, {len(a)} and {len(b)} "
                             "predictions")
    ra, rb = a == y, b == y
    return Flips(n=int(len(y)), both_right=int(np.sum(ra & rb)), right_to_wrong=int(np.sum(ra & ~rb)),
                 wrong_to_right=int(np.sum(~ra & rb)), both_wrong=int(np.sum(~ra & ~rb)), changed=int(np.sum(a != b)))


def paired_interval(both_right: int, b_only: int, a_only: int, both_wrong: int, z: float = Z95) -> tuple[float, float]:
    """95 % interval of top-1(B) - top-1(A) on the same images (Newcombe 1998, method 10, no continuity
    correction): ``b_only`` images only B gets right, ``a_only`` only A."""
    n = both_right + b_only + a_only + both_wrong
    if n < 1:
        raise SscDeployError("a paired interval needs at least one image")
    pb, pa = (both_right + b_only) / n, (both_right + a_only) / n
    lb, ub = wilson_interval(both_right + b_only, n, z)
    la, ua = wilson_interval(both_right + a_only, n, z)
    margins = (both_right + b_only) * (a_only + both_wrong) * (both_right + a_only) * (b_only + both_wrong)
    phi = (both_right * both_wrong - b_only * a_only) / math.sqrt(margins) if margins else 0.0
    d = pb - pa
    lower = math.sqrt(max(0.0, (pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2))
    upper = math.sqrt(max(0.0, (ub - pb) ** 2 - 2 * phi * (ub - pb) * (pa - la) + (pa - la) ** 2))
    return max(-1.0, d - lower), min(1.0, d + upper)


def gate_fails(drop_points: float, max_drop: float, p: float | None, alpha: float = ALPHA) -> bool:
    """The int8/fp16 accuracy gate's rule: the drop exceeds ``max_drop`` points AND McNemar says it is real.

    A drop within noise (p >= ``alpha``, e.g. 4 images of 360 lost and none gained: p = 0.125) passes
    with the figures stated; ``alpha`` 1 makes the drop alone decide (p < 1 whenever anything dropped).
    """
    return drop_points > max_drop and (alpha >= 1 or p is None or p < alpha)


def describe_flips(right_to_wrong: int, wrong_to_right: int, alpha: float = ALPHA) -> str:
    """``4 right->wrong, 0 wrong->right, McNemar p = 0.125 (not significant)``."""
    p = mcnemar_p(right_to_wrong, wrong_to_right)
    verdict = "significant" if significant(p, alpha) else "not significant"
    return f"{right_to_wrong} right->wrong, {wrong_to_right} wrong->right, McNemar p = {format_p(p)} ({verdict})"


def format_p(p: float | None) -> str:
    """A p-value in three significant digits (``-`` for none)."""
    return "-" if p is None else (f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}")

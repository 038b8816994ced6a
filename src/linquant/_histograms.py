"""Histograms of |x| with power-of-two bin widths (SPEC §10), merged exactly.

A histogram is ``(exponent, counts)``: ``2 * bins`` int64 counts, bin ``k`` of ``x >= 0`` at
``k`` and of ``x < 0`` at ``bins + k``, of width ``2**exponent`` (``None`` while only zeros,
which count in bin 0, were seen). Both backends' ``histogram`` kernels and
:class:`linquant.Observer` fold theirs together with :func:`merged`, which gives the
histogram of all their values whatever the order.
"""

from __future__ import annotations

import math

import numpy as np


def width_exponent(amax: float, log2_bins: int) -> int:
    """The least ``e`` with ``amax < 2**log2_bins * 2**e`` (``amax > 0``): with
    ``amax = m * 2**k``, ``1/2 <= m < 1``, it is ``k - log2_bins``."""
    return math.frexp(amax)[1] - log2_bins


def coarsened(counts: np.ndarray, shift: int) -> np.ndarray:
    """``counts`` by ``floor(a / w)`` as counts by ``floor(a / (w * 2**shift))``, each half
    on its own: the sums of neighbouring bins (``floor(floor(a / w) / 2**s) ==
    floor(a / (w * 2**s))``, exactly)."""
    bins = counts.size // 2
    coarse = np.zeros_like(counts)
    target = np.arange(bins) >> min(shift, 62)
    np.add.at(coarse, np.concatenate([target, bins + target]), counts)
    return coarse


def merged(
    first: tuple[int | None, np.ndarray], second: tuple[int | None, np.ndarray]
) -> tuple[int | None, np.ndarray]:
    """The histogram of the values of two histograms: the wider width, the other's counts
    coarsened to it, added."""
    (e1, c1), (e2, c2) = first, second
    if e1 is None or e2 is None:
        return (e2 if e1 is None else e1), c1 + c2  # zeros only in one: bin 0 of any width
    exponent = max(e1, e2)
    return exponent, coarsened(c1, exponent - e1) + coarsened(c2, exponent - e2)

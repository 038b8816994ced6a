"""Histograms of |x| with power-of-two bin widths (SPEC §10), merged exactly.

A histogram is ``(exponent, counts)``: ``2 * bins`` int64 counts, bin ``k`` of ``x >= 0`` at
``k`` and of ``x < 0`` at ``bins + k``, of width ``2**exponent`` (``NO_WIDTH`` while only
zeros, which count in bin 0, were seen). Functions take a stack of them, one a row (an
exponent a row, counts ``(rows, 2 * bins)``). The compiled backend's threads' histograms are
:func:`combined`, :class:`linquant.Observer`'s folded together with :func:`merged`: either
gives the histogram of all their values whatever the order.
"""

from __future__ import annotations

import numpy as np

NO_WIDTH = -(1 << 30)  # below every exponent of a float's width: a merge takes the other's


def width_exponents(amax: np.ndarray, log2_bins: int) -> np.ndarray:
    """The least ``e`` with ``amax < 2**log2_bins * 2**e`` for each ``amax`` (``NO_WIDTH``
    where it is 0): with ``amax = m * 2**k``, ``1/2 <= m < 1``, it is ``k - log2_bins``."""
    return np.where(amax > 0, np.frexp(amax)[1] - log2_bins, NO_WIDTH).astype(np.int64)


def row_histograms(rows: np.ndarray, log2_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The histogram of each row of a 2-D array of finite floats, each with its own width."""
    n, bins = rows.shape[0], 1 << log2_bins
    amax = np.max(np.abs(rows), axis=1, initial=0.0).astype(np.float64)
    exponents = width_exponents(amax, log2_bins)
    # |x| * 2**-e < bins, exact (a result below 1 may be rounded, staying below 1); a row of
    # zeros takes any width: its values fall in bin 0
    shifts = -np.where(exponents == NO_WIDTH, 0, exponents)
    index = np.ldexp(np.abs(rows, dtype=np.float64), shifts[:, None]).astype(np.int64)
    index += bins * (rows < 0) + (2 * bins * np.arange(n))[:, None]
    counts = np.bincount(index.reshape(-1), minlength=2 * bins * n).reshape(n, 2 * bins)
    return exponents, counts


def coarsened(counts: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Rows of counts by ``floor(a / w)`` as counts by ``floor(a / (w * 2**shift))``, each
    half on its own: the sums of neighbouring bins (``floor(floor(a / w) / 2**s) ==
    floor(a / (w * 2**s))``, exactly)."""
    rows = np.flatnonzero(shifts)
    if rows.size == 0:
        return counts
    n, bins = rows.size, counts.shape[1] // 2
    target = np.arange(bins) >> np.minimum(shifts[rows], 62)[:, None]
    index = np.concatenate([target, bins + target], axis=1) + (2 * bins * np.arange(n))[:, None]
    coarse = np.zeros(n * 2 * bins, np.int64)
    np.add.at(coarse, index.reshape(-1), counts[rows].reshape(-1))
    result: np.ndarray = counts.copy()
    result[rows] = coarse.reshape(n, 2 * bins)
    return result


def combined(exponents: np.ndarray, counts: np.ndarray) -> tuple[int, np.ndarray]:
    """The one histogram of the values of a stack of histograms (``exponents`` 1-D)."""
    wider = np.max(exponents)
    return int(wider), coarsened(counts, wider - exponents).sum(axis=0)


def merged(
    exponents: np.ndarray, counts: np.ndarray, other_exponents: np.ndarray, other_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The histograms of the values of two stacks of histograms, row by row: the wider
    width, the other's counts coarsened to it, added."""
    wider = np.maximum(exponents, other_exponents)
    return wider, coarsened(counts, wider - exponents) + coarsened(
        other_counts, wider - other_exponents
    )

"""Calibration (SPEC §10): a clipping range from the data, the same for any chunking.

An :class:`Observer` folds chunks into a histogram of ``|x|`` per sign whose bin width is a
power of two fixed by the largest ``|x|`` seen so far; a wider range doubles the width by
adding neighbouring bins, which is exact, so the histogram of the whole array does not
depend on how it was chunked or in which order chunks were merged. :func:`calibrate` is one
observer over the whole array. Each method reads its range off the histogram and the exact
minimum and maximum.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _backend, _checks
from ._api import dynamic_settings, minmax, range_params
from ._histograms import merged
from ._layout import as_float_input

METHODS = ("minmax", "percentile", "mse", "entropy")
HISTOGRAM_METHODS = ("percentile", "mse", "entropy")  # the methods that read the histogram
SEARCH_START = 16  # mse and entropy try thresholds from bin bins / 16 up (TensorRT: 128 of 2048)
DEFAULT_BINS = 2048  # TensorRT's and ONNX Runtime's histogram calibrators' default
DEFAULT_PERCENTILE = 99.99  # TensorRT's and ONNX Runtime's default


def _bins(value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"bins must be an int, got {type(value).__name__}")
    bins = int(value)
    if bins < 16 or bins > 1 << 24 or bins & (bins - 1):
        raise ValueError(f"bins must be a power of two from 16 to 2**24, got {bins}")
    return bins


def _percentile(value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"percentile must be a number, got {type(value).__name__}")
    p = float(value)
    if not 50.0 <= p <= 100.0:
        raise ValueError(f"percentile must be from 50 to 100, got {p}")
    return p


class Observer:
    """A calibration that streams: ``update`` with chunks (or ``merge`` observers of other
    chunks, in any order), then ``range()`` or ``params()``.

    The range is bit for bit that of :func:`calibrate` on the whole array, however the array
    was split and in whatever order the pieces were folded (SPEC §10). ``method`` is one of
    :attr:`METHODS`, as :func:`calibrate` says; ``bits``, ``scheme`` and ``include_zero`` are
    those of :func:`linquant.quantize`; ``percentile`` (default 99.99) and ``bins`` (default
    2048, a power of two) as TensorRT's and ONNX Runtime's histogram calibrators. Memory:
    two arrays of ``bins`` counts, whatever the data's size.

    >>> import numpy as np, linquant as lq
    >>> x = np.concatenate([np.linspace(-1, 1, 9999), [40.0]])
    >>> observer = lq.Observer("percentile", percentile=99.9)
    >>> for chunk in np.array_split(x, 7):
    ...     _ = observer.update(chunk)
    >>> observer.range() == lq.calibrate(x, "percentile", percentile=99.9)
    True
    >>> [round(float(v), 3) for v in observer.range()]
    [-1.0, 1.0]
    """

    METHODS = METHODS

    def __init__(
        self,
        method: str = "minmax",
        *,
        bits: int = 8,
        scheme: str = "asymmetric",
        include_zero: bool = True,
        percentile: float = DEFAULT_PERCENTILE,
        bins: int = DEFAULT_BINS,
    ) -> None:
        self.method = _checks._choice("method", method, METHODS)
        self.bits, self.signed, _, self.qmin, self.qmax = dynamic_settings(
            bits, scheme, "raise", include_zero, False
        )
        if self.bits == 1 and self.method in ("mse", "entropy"):
            raise ValueError(f"method={self.method!r} needs bits >= 2 (1-bit codes are signs)")
        self.include_zero = include_zero
        self.percentile = _percentile(percentile)
        self.bins = _bins(bins)
        self.log2_bins = self.bins.bit_length() - 1
        # the settings, as given: a fresh observer's, and what merging observers must share
        self._settings = (method, bits, scheme, include_zero, self.percentile, self.bins)
        self.count = 0  # values folded in
        self.dtype: np.dtype | None = None  # the working float, from the first chunk
        self.lo = math.inf  # exact bounds, as Python floats (every working float fits)
        self.hi = -math.inf
        # the histogram of |x| (SPEC §10): bin width 2**exponent (None while only zeros were
        # seen), counts of x >= 0 by bin, then of x < 0
        self.exponent: int | None = None
        self.counts = np.zeros(2 * self.bins, np.int64)

    def fresh(self) -> Observer:
        """A new observer of the same settings, that has seen nothing."""
        method, bits, scheme, include_zero, percentile, bins = self._settings
        return Observer(
            method,
            bits=bits,
            scheme=scheme,
            include_zero=include_zero,
            percentile=percentile,
            bins=bins,
        )

    def _same_settings(self, other: Observer) -> None:
        if self._settings != other._settings:
            raise ValueError("only observers of the same method and settings merge")
        if self.dtype is not None and other.dtype is not None and self.dtype != other.dtype:
            raise ValueError(f"observers of {self.dtype} and {other.dtype} data do not merge")

    def update(self, chunk: object) -> Observer:
        """Fold the values of ``chunk`` in; returns the observer. NaN raises ValueError
        naming the first (SPEC §5), as an infinity does (no finite range)."""
        arr = as_float_input(chunk)
        if self.dtype is not None and arr.dtype != self.dtype:
            raise ValueError(f"the observer holds {self.dtype} data, this chunk is {arr.dtype}")
        self.dtype = arr.dtype
        if arr.size == 0:
            return self
        if self.method in HISTOGRAM_METHODS:  # one pass: the range and the histogram
            lo, hi, status, exponent, counts = _backend.active().histogram(arr, self.log2_bins)
            if status == 1:
                minmax(arr)  # raises the NaN error, naming the first
        else:
            lo, hi = minmax(arr)  # NaN raises, naming the first
            status = 0 if np.isfinite(lo) and np.isfinite(hi) else 2
        if status:
            raise ValueError("the chunk holds an infinity: there is no finite range to clip")
        self.count += arr.size
        self.lo, self.hi = min(self.lo, float(lo)), max(self.hi, float(hi))
        if self.method in HISTOGRAM_METHODS:
            self.exponent, self.counts = merged((self.exponent, self.counts), (exponent, counts))
        return self

    def merge(self, other: Observer) -> Observer:
        """Fold in what ``other`` (of the same settings) has seen; returns this observer."""
        self._same_settings(other)
        if other.count == 0:
            return self
        self.dtype = other.dtype  # the same, or this observer had none
        self.count += other.count
        self.lo, self.hi = min(self.lo, other.lo), max(self.hi, other.hi)
        self.exponent, self.counts = merged(
            (self.exponent, self.counts), (other.exponent, other.counts)
        )
        return self

    def range(self) -> tuple[np.floating, np.floating]:
        """The clipping range ``(lo, hi)`` as working-float scalars (SPEC §10)."""
        if self.count == 0 or self.dtype is None:
            raise ValueError("the range of no values is undefined: update the observer first")
        wf = self.dtype.type
        lo, hi = self.lo, self.hi
        if self.method == "minmax" or self.exponent is None:  # (all zeros: nothing to clip)
            pass
        elif self.method == "percentile" and not self.signed:  # x's (100 - p)-th and p-th
            counts = np.concatenate([self._negative[::-1], self._positive])
            edges = self._width * np.arange(-self.bins, self.bins + 1, dtype=np.float64)
            hi = min(hi, _upper_bound(counts, edges, self.count, self.percentile))
            lo = max(lo, _lower_bound(counts, edges, self.count, 100.0 - self.percentile))
        else:
            lo, hi = self._clipped(self._threshold())
        return wf(lo) + wf(0.0), wf(hi) + wf(0.0)  # -0.0 made +0.0, as minmax does

    def _clipped(self, t: float) -> tuple[float, float]:
        """The range of a threshold ``t`` on |x| (at most max|x|): ``[-t, t]``, or the
        data's range clipped to it."""
        t = min(t, max(-self.lo, self.hi))
        return (-t, t) if self.signed else (max(self.lo, -t), min(self.hi, t))

    @property
    def _positive(self) -> np.ndarray:
        return self.counts[: self.bins]

    @property
    def _negative(self) -> np.ndarray:
        return self.counts[self.bins :]

    @property
    def _width(self) -> float:
        assert self.exponent is not None
        return math.ldexp(1.0, self.exponent)

    def _threshold(self) -> float:
        """The threshold on |x| of the percentile (symmetric), mse or entropy method."""
        magnitudes = self._positive + self._negative
        edges = self._width * np.arange(self.bins + 1, dtype=np.float64)
        if self.method == "percentile":
            return _upper_bound(magnitudes, edges, self.count, self.percentile)
        used = int(np.flatnonzero(magnitudes)[-1]) + 1  # bins up to the largest |x|'s
        start = min(self.bins // SEARCH_START, used)
        if self.method == "entropy":
            levels = 2 ** (self.bits - (self.signed or self.lo < 0))  # TensorRT's nbins
            return float(edges[_least_divergence(magnitudes[:used], start, levels)])
        return self._least_mse(edges, start, used)

    def _least_mse(self, edges: np.ndarray, start: int, used: int) -> float:
        """The bin centre t from bin ``start`` up whose range (:meth:`range` with that
        threshold) quantizes the bins' centres, weighted by their counts, with the least
        squared error; the first on ties."""
        centres = (edges[:-1] + edges[1:]) / 2
        halves = ((self._positive, 1.0), (self._negative, -1.0))
        values = np.concatenate([sign * centres[half > 0] for half, sign in halves])
        weights = np.concatenate([half[half > 0] for half, _ in halves])
        assert self.dtype is not None
        wf = self.dtype.type
        best, best_error = centres[start], math.inf
        for t in centres[start:used]:
            lo, hi = self._clipped(float(t))
            scale, zero_point = range_params(
                wf(lo), wf(hi), self.bits, self.signed, self.include_zero, None
            )
            codes = np.clip(np.rint(values / float(scale)) + int(zero_point), self.qmin, self.qmax)
            error = float(
                np.dot(weights, np.square(values - (codes - int(zero_point)) * float(scale)))
            )
            if error < best_error:
                best, best_error = t, error
        return float(best)

    def params(self) -> tuple[np.floating, np.int32]:
        """The scale and zero point of SPEC §4 for :meth:`range`."""
        lo, hi = self.range()
        scale, zero_point = range_params(lo, hi, self.bits, self.signed, self.include_zero, None)
        return scale, zero_point


def _least_divergence(counts: np.ndarray, start: int, levels: int) -> int:
    """TensorRT's entropy calibration: the number of bins i (from ``start`` up) whose
    clipped histogram (the counts past it added to its last bin) has the least KL divergence
    from its quantization to ``levels`` levels (each level's count spread evenly over its
    nonzero bins); the last on ties. Bin 0 counts as bin 1, as TensorRT's does."""
    counts = counts.astype(np.float64)
    if counts.size > 1:
        counts[0] = counts[1]
    divergences = []
    for i in range(start, counts.size + 1):
        reference = counts[:i].copy()
        reference[-1] += counts[i:].sum()
        level = np.digitize(np.arange(i), np.linspace(0, i, levels + 1)) - 1
        nonzero = counts[:i] > 0
        totals = np.bincount(level[nonzero], counts[:i][nonzero], levels)
        sizes = np.bincount(level[nonzero], minlength=levels)
        quantized = np.zeros(i)
        quantized[nonzero] = (totals / np.maximum(sizes, 1))[level[nonzero]]
        divergences.append(_kl_divergence(reference, quantized))
    return start + len(divergences) - 1 - int(np.argmin(divergences[::-1]))


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) of two histograms, each normalized (scipy.stats.entropy's definition):
    infinite where q is 0 and p is not."""
    p, q = p / p.sum(), q / q.sum() if q.sum() > 0 else q
    if np.any((q == 0) & (p > 0)):
        return math.inf
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _bin_of(counts: np.ndarray, rank: int) -> int:
    """The bin that holds the value of 0-based ``rank`` in the order ``counts`` run in."""
    return int(np.searchsorted(np.cumsum(counts), rank, side="right"))


def _upper_bound(counts: np.ndarray, edges: np.ndarray, count: int, percentile: float) -> float:
    """The upper edge of the bin that holds the ``percentile``'s upper order statistic."""
    return float(edges[_bin_of(counts, math.ceil((count - 1) * percentile / 100)) + 1])


def _lower_bound(counts: np.ndarray, edges: np.ndarray, count: int, percentile: float) -> float:
    """The lower edge of the bin that holds the ``percentile``'s lower order statistic."""
    return float(edges[_bin_of(counts, math.floor((count - 1) * percentile / 100))])


def calibrate(
    x: object,
    method: str = "minmax",
    *,
    bits: int = 8,
    scheme: str = "asymmetric",
    include_zero: bool = True,
    percentile: float = DEFAULT_PERCENTILE,
    bins: int = DEFAULT_BINS,
) -> tuple[np.floating, np.floating]:
    """The clipping range ``(lo, hi)`` of ``x`` by ``method`` (SPEC §10), as working floats.

    ``"minmax"``: the exact minimum and maximum. The others read a histogram of ``bins``
    bins (SPEC §10) and never go past the data's range. ``"percentile"``: with
    ``scheme="symmetric"``, ``[-t, t]`` for ``t`` the ``percentile``-th percentile of
    ``|x|``; else ``x``'s ``(100 - percentile)``-th and ``percentile``-th percentiles; each
    the edge of the bin that holds it, within a bin of ``np.percentile``. ``"mse"`` and
    ``"entropy"`` choose a threshold ``t`` on ``|x|``, the range then ``[-t, t]`` (symmetric)
    or the data's range clipped to it: ``"mse"`` the bin centre whose range quantizes the
    bins' centres (at ``bits`` and ``scheme``) with the least squared error, ``"entropy"``
    TensorRT's least KL divergence. An :class:`Observer` gives the same range chunk by
    chunk.

    >>> import numpy as np, linquant as lq
    >>> x = np.concatenate([np.random.default_rng(0).standard_normal(100_000), [40.0, -25.0]])
    >>> [round(float(v), 2) for v in lq.calibrate(x, "minmax")]
    [-25.0, 40.0]
    >>> [round(float(v), 2) for v in lq.calibrate(x, "percentile", scheme="symmetric")]
    [-3.97, 3.97]
    """
    observer = Observer(
        method,
        bits=bits,
        scheme=scheme,
        include_zero=include_zero,
        percentile=percentile,
        bins=bins,
    )
    return observer.update(x).range()


def params_from_range(
    lo: object,
    hi: object,
    bits: int = 8,
    scheme: str = "asymmetric",
    *,
    include_zero: bool = True,
) -> tuple[Any, Any]:
    """The scale and zero point of SPEC §4 for the range ``[lo, hi]`` (scalars), as
    :func:`linquant.quantize` computes them from the data's minimum and maximum.

    >>> import linquant as lq
    >>> lq.params_from_range(-1.0, 3.0, bits=8)
    (np.float64(0.01568627450980392), np.int32(64))
    """
    n_bits, signed, _, _, _ = dynamic_settings(bits, scheme, "raise", include_zero, False)
    return range_params(*checked_range(lo, hi), n_bits, signed, include_zero, None)


def checked_range(lo: object, hi: object) -> tuple[np.floating, np.floating]:
    """``lo`` and ``hi`` as floats (float64 for integers), finite with ``lo <= hi``."""
    bounds = np.asarray([lo, hi])
    if bounds.dtype.kind not in "fiu":
        raise TypeError(f"lo and hi must be real numbers, got {bounds.dtype}")
    wf = bounds.dtype.type if bounds.dtype.kind == "f" else np.float64
    low, high = wf(bounds[0]), wf(bounds[1])
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"lo and hi must be finite with lo <= hi, got {lo} and {hi}")
    return low, high

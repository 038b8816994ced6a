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
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _backend, _checks
from ._api import dynamic_settings, minmax, nan_error, range_of, range_params
from ._groups import Grouping, group_args, group_rows, grouping
from ._histograms import NO_WIDTH, merged, row_histograms
from ._layout import as_float_input
from ._params import params_per_slice
from ._rounding import checked_position

if TYPE_CHECKING:
    from ._fitted import QuantizationParams

METHODS = ("minmax", "percentile", "mse", "entropy")
HISTOGRAM_METHODS = ("percentile", "mse", "entropy")  # the methods that read the histogram
SEARCH_START = 16  # mse and entropy try thresholds from bin bins / 16 up (TensorRT: 128 of 2048)
DEFAULT_BINS = 2048  # TensorRT's and ONNX Runtime's histogram calibrators' default
DEFAULT_PERCENTILE = 99.99  # TensorRT's and ONNX Runtime's default
# per channel or block, an observer's histograms: beyond this, a call asks for fewer bins
HISTOGRAMS_MAX_BYTES = 1 << 30
# candidates a block of the mse and entropy searches: (candidates, values) float64
# temporaries of 2 MiB at most for 4096 bins
MSE_CANDIDATES_AT_ONCE = DIVERGENCES_AT_ONCE = 64
INFINITY = "the chunk holds an infinity: there is no finite range to clip"


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

    With ``axis`` (and ``block_size``), a range for each channel (block) as
    :func:`linquant.quantize` groups them, and two arrays of ``bins`` counts for each: a
    chunk is either a batch of the tensor (its own channels or blocks, the same number as
    the observer's) or, with ``position=(start, shape)``, the box of the whole array of
    ``shape`` that starts at ``start``.

    >>> import numpy as np, linquant as lq
    >>> x = np.concatenate([np.linspace(-1, 1, 9999), [40.0]])
    >>> observer = lq.Observer("percentile", percentile=99.9)
    >>> for chunk in np.array_split(x, 7):
    ...     _ = observer.update(chunk)
    >>> observer.range() == lq.calibrate(x, "percentile", percentile=99.9)
    True
    >>> [round(float(v), 3) for v in observer.range()]
    [-1.0, 1.0]
    >>> channels = lq.Observer("minmax", axis=1)
    >>> for batch in (np.array([[1.0, -2.0]]), np.array([[3.0, 0.5], [-1.0, 0.0]])):
    ...     _ = channels.update(batch)
    >>> channels.range()
    (array([-1., -2.]), array([3. , 0.5]))
    """

    METHODS = METHODS

    def __init__(
        self,
        method: str = "minmax",
        *,
        axis: int | None = None,
        block_size: int | None = None,
        bits: int = 8,
        scheme: str = "asymmetric",
        include_zero: bool = True,
        percentile: float = DEFAULT_PERCENTILE,
        bins: int = DEFAULT_BINS,
    ) -> None:
        self.method = _checks._choice("method", method, METHODS)
        self.axis, self.block_size = group_args(axis, block_size)
        self.bits, self.signed, _, self.qmin, self.qmax = dynamic_settings(
            bits, scheme, "raise", include_zero, False
        )
        if self.bits == 1 and self.method in ("mse", "entropy"):
            raise ValueError(f"method={self.method!r} needs bits >= 2 (1-bit codes are signs)")
        self.scheme = "symmetric" if self.signed else "asymmetric"
        self.include_zero = include_zero
        self.percentile = _percentile(percentile)
        self.bins = _bins(bins)
        self.log2_bins = self.bins.bit_length() - 1
        # the settings, as given: a fresh observer's, and what merging observers must share
        self._settings: dict[str, Any] = {
            "method": method,
            "axis": axis,
            "block_size": block_size,
            "bits": bits,
            "scheme": scheme,
            "include_zero": include_zero,
            "percentile": self.percentile,
            "bins": self.bins,
        }
        self.dtype: np.dtype | None = None  # the working float, from the first chunk
        # per channel or block: the grouping of the first chunk's array (its parameters' shape)
        self.groups: Grouping | None = None
        self._allocate(1)

    def _allocate(self, groups: int) -> None:
        """The state of ``groups`` groups that have seen nothing: each a count, the exact
        bounds (float64: every working float fits) and, for a histogram method, the histogram
        of ``|x|`` (SPEC §10, ``_histograms``)."""
        width = 2 * self.bins if self.method in HISTOGRAM_METHODS else 0
        if groups * width * 8 > HISTOGRAMS_MAX_BYTES:
            raise ValueError(
                f"{groups} histograms of {self.bins} bins would take "
                f"{groups * width * 8 / 2**30:.1f} GiB (at most {HISTOGRAMS_MAX_BYTES >> 30}): "
                "pass fewer bins="
            )
        self._count = np.zeros(groups, np.int64)
        self._lo = np.full(groups, np.inf)
        self._hi = np.full(groups, -np.inf)
        self._exponent = np.full(groups, NO_WIDTH, np.int64)
        self._counts = np.zeros((groups, width), np.int64)

    @property
    def count(self) -> int:
        """The number of values folded in."""
        return int(self._count.sum())

    def histogram(self, group: tuple[int, ...] = ()) -> tuple[int | None, np.ndarray]:
        """The histogram of ``|x|`` of a histogram method (SPEC §10), of the whole tensor or
        of the channel or block at index ``group`` of the parameters: the exponent ``e`` of
        the bins' width ``2**e`` (None while only zeros were seen) and ``2 * bins`` counts,
        those of ``x >= 0`` by bin, then those of ``x < 0``."""
        if self.method not in HISTOGRAM_METHODS:
            raise ValueError(f"method={self.method!r} keeps no histogram")
        index = 0 if self.groups is None else np.ravel_multi_index(group, self._param_shape)
        exponent = int(self._exponent[index])
        return (None if exponent == NO_WIDTH else exponent), self._counts[index].copy()

    @property
    def _param_shape(self) -> tuple[int, ...]:
        return () if self.groups is None else self.groups.param_shape

    def fresh(self) -> Observer:
        """A new observer of the same settings, that has seen nothing."""
        return Observer(**self._settings)

    def _same_settings(self, other: Observer) -> None:
        if self._settings != other._settings:
            raise ValueError("only observers of the same method and settings merge")
        if self.dtype is not None and other.dtype is not None and self.dtype != other.dtype:
            raise ValueError(f"observers of {self.dtype} and {other.dtype} data do not merge")

    def _set_groups(self, groups: Grouping) -> None:
        """The grouping of the first chunk, or a later one's checked against it."""
        if self.groups is None:
            self._allocate(math.prod(groups.param_shape))
            self.groups = groups
        elif (groups.axis, groups.param_shape) != (self.groups.axis, self.groups.param_shape):
            raise ValueError(
                f"the observer holds parameters of shape {self.groups.param_shape} along axis "
                f"{self.groups.axis}; this chunk's are {groups.param_shape} along axis "
                f"{groups.axis} (pass position= for a piece of a larger array)"
            )

    def update(self, chunk: object, position: object = None) -> Observer:
        """Fold the values of ``chunk`` in; returns the observer. NaN raises ValueError
        naming the first (SPEC §5), as an infinity does (no finite range). ``position``:
        ``(start, shape)`` where ``chunk`` is the box of an array of ``shape`` starting at
        ``start`` (what channels or blocks it holds)."""
        arr = as_float_input(chunk)
        if self.dtype is not None and arr.dtype != self.dtype:
            raise ValueError(f"the observer holds {self.dtype} data, this chunk is {arr.dtype}")
        start, whole = checked_position(position, arr.shape)
        groups = grouping(whole, self.axis, self.block_size)
        if groups is not None:
            self._set_groups(groups)
        self.dtype = arr.dtype
        if arr.size == 0:
            return self
        if groups is None:
            self._fold(np.zeros(1, np.intp), *self._summary(arr))
            return self
        lo, hi, nan_count, first = range_of(arr)
        if nan_count:  # named by its index in the whole array, and its group
            index = np.add(np.unravel_index(first, arr.shape), start)
            flat = int(np.ravel_multi_index(index, whole))
            raise nan_error(whole, nan_count, flat, hint=False, groups=groups)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(INFINITY)
        for group_ids, rows in group_rows(arr, start, groups):
            self._fold(group_ids, *self._row_summaries(rows))
        return self

    def _summary(self, arr: np.ndarray) -> tuple[np.ndarray, ...]:
        """The count, bounds and histogram of a whole chunk, a row each, from the backend."""
        exponent, counts = NO_WIDTH, np.zeros(0, np.int64)
        if self.method in HISTOGRAM_METHODS:  # one pass: the range and the histogram
            lo, hi, status, exponent, counts = _backend.active().histogram(arr, self.log2_bins)
            if status == 1:
                minmax(arr)  # raises the NaN error, naming the first
        else:
            lo, hi = minmax(arr)  # NaN raises, naming the first
            status = 0 if np.isfinite(lo) and np.isfinite(hi) else 2
        if status:
            raise ValueError(INFINITY)
        return (
            np.array([arr.size]),
            np.array([float(lo)]),
            np.array([float(hi)]),
            np.array([exponent]),
            counts.reshape(1, -1),
        )

    def _row_summaries(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """The count, bounds and histogram of each row of finite values (a group each)."""
        n = rows.shape[0]
        if self.method in HISTOGRAM_METHODS:
            exponents, counts = row_histograms(rows, self.log2_bins)
        else:
            exponents, counts = np.full(n, NO_WIDTH, np.int64), np.zeros((n, 0), np.int64)
        lo, hi = rows.min(axis=1).astype(np.float64), rows.max(axis=1).astype(np.float64)
        return np.full(n, rows.shape[1]), lo, hi, exponents, counts

    def _fold(
        self,
        ids: np.ndarray,
        count: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        exponent: np.ndarray,
        counts: np.ndarray,
    ) -> None:
        """Add the summaries of groups ``ids`` (distinct) to theirs."""
        self._count[ids] += count
        self._lo[ids] = np.minimum(self._lo[ids], lo)
        self._hi[ids] = np.maximum(self._hi[ids], hi)
        if self.method in HISTOGRAM_METHODS:
            self._exponent[ids], self._counts[ids] = merged(
                self._exponent[ids], self._counts[ids], exponent, counts
            )

    def merge(self, other: Observer) -> Observer:
        """Fold in what ``other`` (of the same settings) has seen; returns this observer."""
        self._same_settings(other)
        if other.count == 0:
            return self
        if other.groups is not None:
            self._set_groups(other.groups)
        self.dtype = other.dtype  # the same, or this observer had none
        ids = np.arange(other._count.size)
        self._fold(ids, other._count, other._lo, other._hi, other._exponent, other._counts)
        return self

    def range(self) -> tuple[Any, Any]:
        """The clipping range ``(lo, hi)`` as working-float scalars (SPEC §10), or arrays of
        the parameters' shape per channel or block."""
        if self.count == 0 or self.dtype is None:
            raise ValueError("the range of no values is undefined: update the observer first")
        wf, zero = self.dtype.type, self.dtype.type(0.0)
        if self.groups is None:
            lo, hi = self._group_range(0)
            return wf(lo) + zero, wf(hi) + zero  # -0.0 made +0.0, as minmax does
        empty = np.flatnonzero(self._count == 0)
        if empty.size:
            group = tuple(int(i) for i in np.unravel_index(empty[0], self._param_shape))
            raise ValueError(f"{self.groups.describe(group)} has no values: no range")
        if self.method == "minmax":
            los, his = self._lo, self._hi
        else:
            los, his = np.array([self._group_range(g) for g in range(self._count.size)]).T
        shape = self._param_shape
        return (los.astype(wf) + zero).reshape(shape), (his.astype(wf) + zero).reshape(shape)

    def _group_range(self, g: int) -> tuple[float, float]:
        """The range of group ``g`` by the method, as floats."""
        lo, hi, exponent = float(self._lo[g]), float(self._hi[g]), int(self._exponent[g])
        if self.method == "minmax" or exponent == NO_WIDTH:  # (all zeros: nothing to clip)
            return lo, hi
        bins, count = self.bins, int(self._count[g])
        positive, negative = self._counts[g, :bins], self._counts[g, bins:]
        width = math.ldexp(1.0, exponent)
        if self.method == "percentile" and not self.signed:  # x's (100 - p)-th and p-th
            counts = np.concatenate([negative[::-1], positive])
            edges = width * np.arange(-bins, bins + 1, dtype=np.float64)
            return (
                max(lo, _lower_bound(counts, edges, count, 100.0 - self.percentile)),
                min(hi, _upper_bound(counts, edges, count, self.percentile)),
            )
        magnitudes = positive + negative
        edges = width * np.arange(bins + 1, dtype=np.float64)
        if self.method == "percentile":
            return self._clipped(_upper_bound(magnitudes, edges, count, self.percentile), lo, hi)
        used = int(np.flatnonzero(magnitudes)[-1]) + 1  # bins up to the largest |x|'s
        start = min(bins // SEARCH_START, used)
        if self.method == "entropy":
            levels = 2 ** (self.bits - (self.signed or lo < 0))  # TensorRT's nbins
            t = float(edges[_least_divergence(magnitudes[:used], start, levels)])
        else:
            t = self._least_mse(positive, negative, edges, start, used, lo, hi)
        return self._clipped(t, lo, hi)

    def _clipped(self, t: Any, lo: float, hi: float) -> tuple[Any, Any]:
        """The range of a threshold ``t`` on |x| (at most max|x|; a float, or an array of
        candidates): ``[-t, t]``, or the data's range ``[lo, hi]`` clipped to it."""
        t = np.minimum(t, max(-lo, hi))
        return (-t, t) if self.signed else (np.maximum(lo, -t), np.minimum(hi, t))

    def _least_mse(
        self,
        positive: np.ndarray,
        negative: np.ndarray,
        edges: np.ndarray,
        start: int,
        used: int,
        lo: float,
        hi: float,
    ) -> float:
        """The bin centre t from bin ``start`` up whose range (:meth:`_clipped`) quantizes
        the bins' centres, weighted by their counts, with the least squared error; the
        first on ties. Every candidate's parameters at once (§4, element by element)."""
        centres = (edges[:-1] + edges[1:]) / 2
        halves = ((positive, 1.0), (negative, -1.0))
        values = np.concatenate([sign * centres[half > 0] for half, sign in halves])
        weights = np.concatenate([half[half > 0] for half, _ in halves]).astype(np.float64)
        candidates = centres[start:used]
        if candidates.size == 0:
            return float(centres[start])
        low, high = self._clipped(candidates, lo, hi)
        assert self.dtype is not None
        wf = self.dtype.type
        scales, zero_points = params_per_slice(
            low.astype(wf), high.astype(wf), self.bits, self.signed, self.include_zero, str
        )
        errors = np.empty(candidates.size)
        for first in range(0, candidates.size, MSE_CANDIDATES_AT_ONCE):  # bounded temporaries
            part = slice(first, first + MSE_CANDIDATES_AT_ONCE)
            scale = scales[part, None].astype(np.float64)
            zero_point = zero_points[part, None].astype(np.float64)
            codes = np.clip(np.rint(values / scale) + zero_point, self.qmin, self.qmax)
            errors[part] = np.square(values - (codes - zero_point) * scale) @ weights
        return float(candidates[np.argmin(errors)])  # the first of equal errors

    def params(self) -> QuantizationParams:
        """The parameters of SPEC §4 for :meth:`range`, as :class:`QuantizationParams`
        (``scale, zero_point = observer.params()`` unpacks them)."""
        from ._fitted import QuantizationParams  # here: _fitted's imports lead back here

        lo, hi = self.range()
        scale, zero_point = range_params(
            lo, hi, self.bits, self.signed, self.include_zero, self.groups
        )
        axis = None if self.groups is None else self.groups.axis
        return QuantizationParams(scale, zero_point, self.bits, self.scheme, axis, self.block_size)


def _least_divergence(counts: np.ndarray, start: int, levels: int) -> int:
    """TensorRT's entropy calibration: the number of bins i (from ``start`` up) whose
    clipped histogram (the counts past it added to its last bin) has the least KL divergence
    from its quantization to ``levels`` levels (each level's count spread evenly over its
    nonzero bins); the last on ties. Bin 0 counts as bin 1, as TensorRT's does.

    Only the nonzero bins hold terms of a divergence (``p log(p / q)`` with ``p > 0``), so
    each candidate costs its nonzero bins, not its bins; candidates are taken a block at a
    time as one array operation (see :func:`_divergences`)."""
    counts = counts.astype(np.float64)
    if counts.size > 1:
        counts[0] = counts[1]
    candidates = np.arange(start, counts.size + 1)
    divergences = np.concatenate(
        [
            _divergences(counts, candidates[first : first + DIVERGENCES_AT_ONCE], levels)
            for first in range(0, candidates.size, DIVERGENCES_AT_ONCE)
        ]
    )
    return int(candidates[candidates.size - 1 - np.argmin(divergences[::-1])])


def _divergences(counts: np.ndarray, candidates: np.ndarray, levels: int) -> np.ndarray:
    """The divergence of :func:`_least_divergence` for each candidate number of bins."""
    total = counts.sum()
    nonzero = np.flatnonzero(counts)
    bins, weights = nonzero.astype(np.float64), counts[nonzero]
    i = candidates[:, None].astype(np.float64)
    inside = bins < i  # (candidates, nonzero bins)
    # the level of bin j: np.digitize(j, np.linspace(0, i, levels + 1)) - 1, whose edges are
    # k * (i / levels) (and i itself, past every bin j < i): the largest k with k * step <= j
    step = i / levels
    level = np.clip(np.floor(bins / step), 0, levels - 1)
    for _ in range(2):  # the quotient's rounding moves it by one at most
        level -= (level * step > bins) & (level > 0)
        level += (level + 1 <= levels - 1) & ((level + 1) * step <= bins)
    row = np.arange(candidates.size)[:, None] * levels
    index = (row + level.astype(np.intp))[inside]
    size = candidates.size * levels
    level_totals = np.bincount(index, np.broadcast_to(weights, inside.shape)[inside], size)
    level_sizes = np.bincount(index, minlength=size)
    spread = np.zeros(inside.shape)
    spread[inside] = (level_totals / np.maximum(level_sizes, 1))[index]
    kept = np.where(inside, weights, 0.0).sum(axis=1)  # the counts of the first i bins
    last = (bins == i - 1) & inside  # the last bin, where the clipped counts go
    reference = np.where(inside, weights, 0.0) + np.where(last, (total - kept)[:, None], 0.0)
    p = reference / total
    q = spread / np.where(kept > 0, kept, 1.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(inside, p * np.log(p / q), 0.0)
    divergences: np.ndarray = terms.sum(axis=1)
    # the clipped counts in an empty last bin (or a histogram of none): q is 0 where p is not
    empty_last = counts[candidates.astype(np.intp) - 1] == 0
    divergences[(empty_last & (total > kept)) | (kept == 0)] = math.inf
    return divergences


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
    axis: int | None = None,
    block_size: int | None = None,
    bits: int = 8,
    scheme: str = "asymmetric",
    include_zero: bool = True,
    percentile: float = DEFAULT_PERCENTILE,
    bins: int = DEFAULT_BINS,
) -> tuple[Any, Any]:
    """The clipping range ``(lo, hi)`` of ``x`` by ``method`` (SPEC §10), as working floats.

    ``"minmax"``: the exact minimum and maximum. The others read a histogram of ``bins``
    bins (SPEC §10) and never go past the data's range. ``"percentile"``: with
    ``scheme="symmetric"``, ``[-t, t]`` for ``t`` the ``percentile``-th percentile of
    ``|x|``; else ``x``'s ``(100 - percentile)``-th and ``percentile``-th percentiles; each
    the edge of the bin that holds it, within a bin of ``np.percentile``. ``"mse"`` and
    ``"entropy"`` choose a threshold ``t`` on ``|x|``, the range then ``[-t, t]`` (symmetric)
    or the data's range clipped to it: ``"mse"`` the bin centre whose range quantizes the
    bins' centres (at ``bits`` and ``scheme``) with the least squared error, ``"entropy"``
    TensorRT's least KL divergence. With ``axis`` (and ``block_size``), arrays of the range
    of each channel (block), as :func:`linquant.quantize` groups them; each group's
    histogram takes ``2 * bins`` counts. An :class:`Observer` gives the same range chunk by
    chunk.

    >>> import numpy as np, linquant as lq
    >>> x = np.concatenate([np.random.default_rng(0).standard_normal(100_000), [40.0, -25.0]])
    >>> [round(float(v), 2) for v in lq.calibrate(x, "minmax")]
    [-25.0, 40.0]
    >>> [round(float(v), 2) for v in lq.calibrate(x, "percentile", scheme="symmetric")]
    [-3.97, 3.97]
    >>> lo, hi = lq.calibrate(x.reshape(2, -1), "percentile", axis=0, percentile=99.0)
    >>> np.round(hi, 2)
    array([2.34, 2.34])
    """
    observer = Observer(
        method,
        axis=axis,
        block_size=block_size,
        bits=bits,
        scheme=scheme,
        include_zero=include_zero,
        percentile=percentile,
        bins=bins,
    )
    return observer.update(x).range()


def observer_for(
    calibration: object,
    shape: tuple[int, ...],
    axis: int | None,
    block_size: int | None,
    bits: int,
    scheme: str,
    include_zero: bool,
) -> Observer:
    """A new observer for a quantization's ``calibration=``: a method's, with the call's
    settings and :func:`calibrate`'s defaults, or one of a given observer's settings (which
    must be the call's but for ``percentile`` and ``bins``)."""
    if not isinstance(calibration, Observer):
        return Observer(
            calibration,  # type: ignore[arg-type]  # a bad method: Observer's error
            axis=axis,
            block_size=block_size,
            bits=bits,
            scheme=scheme,
            include_zero=include_zero,
        )
    if calibration.count:
        raise ValueError("calibration= takes a method name or a new observer (no values yet)")
    ours = (grouping(shape, calibration.axis, calibration.block_size), calibration.bits)
    theirs = (grouping(shape, axis, block_size), bits)
    if ours != theirs or (calibration.scheme, calibration.include_zero) != (scheme, include_zero):
        raise ValueError(
            "calibration='s observer must have the call's axis, block_size, bits, scheme and "
            "include_zero"
        )
    return calibration.fresh()


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


def checked_range(lo: object, hi: object, shape: tuple[int, ...] = ()) -> tuple[Any, Any]:
    """``lo`` and ``hi`` as floats (float64 for integers), finite with ``lo <= hi``: scalars,
    or with ``shape`` arrays of it (each bound broadcast to it)."""
    low, high = np.asarray(lo), np.asarray(hi)
    if np.broadcast_shapes(low.shape, high.shape, shape) != shape:
        raise ValueError(
            f"lo and hi must be scalars or arrays of shape {shape} (the parameters'), got "
            f"shapes {low.shape} and {high.shape}"
        )
    bounds = np.array(np.broadcast_arrays(low, high, np.empty(shape))[:2])
    if bounds.dtype.kind not in "fiu":
        raise TypeError(f"lo and hi must be real numbers, got {bounds.dtype}")
    wf = bounds.dtype.type if bounds.dtype.kind == "f" else np.float64
    low, high = bounds.astype(wf)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))) or np.any(low > high):
        raise ValueError(f"lo and hi must be finite with lo <= hi, got {lo} and {hi}")
    return (low[()], high[()]) if not shape else (low, high)

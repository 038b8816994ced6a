"""Per-axis and per-block groupings (ONNX QuantizeLinear axis, opset 13; block_size, opset 21).

A grouping says which elements of ``x`` share a scale and zero point: along ``axis``, element
``i`` belongs to channel ``i`` (per-axis) or to block ``i // block_size`` (per-block, the last
block may be shorter). Per-axis parameters have shape ``(n,)`` for ``n = x.shape[axis]``;
per-block ones have ``x.shape`` with ``n`` replaced by ``ceil(n / block_size)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._layout import collapsed

# ONNX's block_size is an int64 attribute; beyond it no index type of the kernels holds it.
BLOCK_SIZE_MAX = 2**63 - 1


@dataclass(frozen=True)
class Grouping:
    """Per-axis (``block_size`` None) or per-block grouping of an array of ``shape``."""

    shape: tuple[int, ...]
    axis: int
    block_size: int | None

    @property
    def length(self) -> int:
        """The length of ``x`` along the axis."""
        return self.shape[self.axis]

    @property
    def param_shape(self) -> tuple[int, ...]:
        """The shape of the scale and zero point arrays."""
        if self.block_size is None:
            return (self.length,)
        blocks = -(-self.length // self.block_size)  # exact: a float quotient rounds past 2**53
        return (*self.shape[: self.axis], blocks, *self.shape[self.axis + 1 :])

    def expand(self, params: np.ndarray) -> np.ndarray:
        """``params`` repeated to (a shape broadcastable to) ``x.shape``, element by element."""
        if self.block_size is None:
            view_shape = [1] * len(self.shape)
            view_shape[self.axis] = self.length
            return params.reshape(view_shape)
        block_of_element = np.arange(self.length) // self.block_size
        return np.take(params, block_of_element, axis=self.axis)

    def reduce(self, x: np.ndarray, ufunc: np.ufunc, identity: float) -> np.ndarray:
        """``ufunc`` (np.fmin or np.fmax: NaN is ignored) over each group; ``identity`` if none."""
        wf = x.dtype.type
        if x.size == 0:
            return np.full(self.param_shape, identity, dtype=wf)
        if self.block_size is None:
            others = tuple(a for a in range(x.ndim) if a != self.axis)
            per_channel: np.ndarray = ufunc.reduce(x, axis=others, initial=wf(identity))
            return per_channel
        starts = np.arange(0, self.length, self.block_size)
        reduced = ufunc.reduceat(x, starts, axis=self.axis)
        return np.where(np.isnan(reduced), wf(identity), reduced)  # groups of NaN only

    @property
    def block(self) -> int:
        """Consecutive elements along the axis that share parameters: 1 per-axis.

        A ``block_size`` past the axis's length is one block of the whole axis: the kernels
        step by ``block``, and a step no longer than the axis cannot overflow an index.
        """
        if self.block_size is None:
            return 1
        return min(self.block_size, max(self.length, 1))

    def params_3d(self, params: np.ndarray, outer: int, inner: int) -> np.ndarray:
        """Parameters as an (outer, blocks, inner) view, zero strides where they are shared."""
        if self.block_size is None:
            return as_strided(params, (outer, self.length, inner), (0, params.strides[0], 0))
        view = as_3d(params, self.axis)
        assert view is not None  # parameters are contiguous or broadcast: they merge
        return view

    @property
    def run_length(self) -> int:
        """Elements of a group in one run, where :meth:`as_runs` applies: the block, or a
        channel's elements (those of the axes after ``axis``)."""
        if self.block_size is None:
            return math.prod(self.shape[self.axis + 1 :])
        return self.block

    def as_runs(self, a: np.ndarray) -> np.ndarray | None:
        """``a`` (of ``shape``) as a (rows, n) view in which each group is a run of
        ``run_length`` consecutive elements of a row, or None for other layouts.

        Blocks along the innermost axis are such runs; so are channels along an axis with
        nothing before it, where each channel's elements (more than one) are contiguous.
        """
        view = as_3d(a, self.axis)
        if view is None:
            return None
        outer, n, inner = view.shape
        if self.block_size is not None:
            return view[:, :, 0] if inner == 1 else None
        contiguous = view.strides[2] == a.itemsize and view.strides[1] == inner * a.itemsize
        if outer != 1 or inner < 2 or not contiguous:
            return None
        return as_strided(view, (1, n * inner), (0, a.itemsize), writeable=a.flags.writeable)

    def params_as_runs(self, params: np.ndarray) -> np.ndarray:
        """Parameters (of ``param_shape``, C-contiguous) as a (rows, groups) view that pairs
        with :meth:`as_runs`."""
        if self.block_size is None:
            return params.reshape(1, -1)
        view = as_3d(params, self.axis)
        assert view is not None  # C-contiguous: it merges
        return view[:, :, 0]

    def group_of(self, index: tuple[int, ...]) -> tuple[int, ...]:
        """The index in ``param_shape`` of the group of the element at ``index`` of ``x``."""
        if self.block_size is None:
            return (index[self.axis],)
        group = list(index)
        group[self.axis] //= self.block_size
        return tuple(group)

    def describe(self, group: tuple[int, ...]) -> str:
        """A group, by its index in ``param_shape``, in words."""
        if self.block_size is None:
            return f"channel {group[0]} along axis {self.axis}"
        return f"block {group} (axis {self.axis}, block_size {self.block_size})"


def group_rows(
    x: np.ndarray, start: tuple[int, ...], groups: Grouping
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The values of ``x``, the box of the array ``groups`` groups that starts at ``start``,
    as ``(ids, rows)``: a 2-D array whose rows are whole groups' values in ``x``, and their
    groups' flat indices in ``param_shape``; a piece of ``x`` along the axis at a time (of
    a channel, or of the part of a block ``x`` holds)."""
    axis = groups.axis
    if groups.block_size is None:
        channels = x.shape[axis]
        yield start[axis] + np.arange(channels), np.moveaxis(x, axis, 0).reshape(channels, -1)
        return
    # flat indices in param_shape of the box's other coordinates, in C order
    others = [a for a in range(x.ndim) if a != axis]
    strides = np.cumprod((1, *groups.param_shape[::-1]))[-2::-1]
    offsets = np.zeros([x.shape[a] for a in others], np.intp)
    for i, a in enumerate(others):
        coordinate = (start[a] + np.arange(x.shape[a])) * strides[a]
        offsets = offsets + coordinate.reshape([-1 if j == i else 1 for j in range(len(others))])
    offsets = offsets.reshape(-1)
    first = start[axis]
    cuts = range(first - first % groups.block_size, first + x.shape[axis], groups.block_size)
    for cut in cuts:
        begin, end = max(cut, first) - first, min(cut + groups.block_size, first + x.shape[axis])
        piece = x[(slice(None),) * axis + (slice(begin, end - first),)]
        rows = np.moveaxis(piece, axis, -1).reshape(-1, end - first - begin)
        yield offsets + cut // groups.block_size * strides[axis], rows


def group_args(axis: object, block_size: object) -> tuple[int | None, int | None]:
    """``axis`` and ``block_size`` checked as far as they can be without a shape."""
    if axis is None:
        if block_size is not None:
            raise ValueError("block_size needs an axis: pass axis= as well")
        return None, None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an int or None, got {axis!r}")
    if block_size is not None and (
        isinstance(block_size, bool)
        or not isinstance(block_size, (int, np.integer))
        or not 1 <= block_size <= BLOCK_SIZE_MAX
    ):
        raise ValueError(
            f"block_size must be a positive int up to 2**63 - 1, or None; got {block_size!r}"
        )
    return int(axis), None if block_size is None else int(block_size)


def grouping(shape: tuple[int, ...], axis: object, block_size: object) -> Grouping | None:
    """The grouping ``axis`` and ``block_size`` ask for, or None for per-tensor parameters."""
    checked_axis, checked_block_size = group_args(axis, block_size)
    if checked_axis is None:
        return None
    if not -len(shape) <= checked_axis < len(shape):
        raise ValueError(f"axis {axis} is out of range for an array of {len(shape)} dimensions")
    return Grouping(shape, checked_axis % len(shape), checked_block_size)


def _merged(shape: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, int] | None:
    """Size and stride of axes that step through memory as one axis, or None if they don't."""
    merged_shape, (merged_strides,) = collapsed(shape, [strides])
    if len(merged_shape) > 1:
        return None
    return (merged_shape[0], merged_strides[0]) if merged_shape else (1, 0)


def as_3d(a: np.ndarray, axis: int) -> np.ndarray | None:
    """``a`` as an (outer, a.shape[axis], inner) view, or None where its strides don't allow it.

    The axes before ``axis`` become one, and those after it another, when each group steps
    through memory evenly (always true of a C-contiguous or broadcast array).
    """
    if a.flags.c_contiguous:  # a reshape: cheaper than as_strided, which small calls feel
        return a.reshape(math.prod(a.shape[:axis]), a.shape[axis], math.prod(a.shape[axis + 1 :]))
    before = _merged(a.shape[:axis], a.strides[:axis])
    after = _merged(a.shape[axis + 1 :], a.strides[axis + 1 :])
    if before is None or after is None:
        return None
    shape = (before[0], a.shape[axis], after[0])
    view: np.ndarray = as_strided(
        a, shape, (before[1], a.strides[axis], after[1]), writeable=a.flags.writeable
    )
    return view

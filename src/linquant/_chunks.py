"""Chunks of an array: boxes of consecutive elements in C order, cut so that per-axis and
per-block parameters and packed rows (SPEC §8) slice cleanly with them.

A chunk is a range of indices along one axis ``s`` (the first axis whose trailing elements fit
in a chunk), every index of the axes after it, and one index of each axis before it. Along the
quantization axis a chunk is then one index, the whole axis, or (when it is ``s``) a range
that starts on a block boundary; along the last axis, the whole axis or a range that starts on
a multiple of ``align``, so that a chunk's packed codes are whole bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._groups import Grouping


@dataclass(frozen=True)
class Chunk:
    """A box of consecutive elements of a C-ordered array: ``slices`` of it, ``start`` the
    flat index of its first element, ``origin`` that element's index."""

    slices: tuple[slice, ...]
    start: int
    shape: tuple[int, ...]
    origin: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def chunks(
    shape: tuple[int, ...], groups: Grouping | None, max_elements: int, align: int = 1
) -> Iterator[Chunk]:
    """The chunks of a C-ordered array of ``shape``, in memory order, that cover it once.

    Each holds at most ``max_elements`` elements, or one block along the quantization axis
    (or ``align`` elements along the last axis) when that alone is larger. An empty array has
    none; a 0-d array one.
    """
    if 0 in shape:
        return
    trailing = [math.prod(shape[axis + 1 :]) for axis in range(len(shape))]
    split = next((axis for axis, n in enumerate(trailing) if n <= max_elements), None)
    if split is None:  # a 0-d array
        yield Chunk((), 0, (), ())
        return
    step = max(1, max_elements // trailing[split])
    unit = align if split == len(shape) - 1 else 1
    if groups is not None and groups.axis == split and groups.block_size is not None:
        unit = math.lcm(unit, groups.block_size)
    step = max(unit, step - step % unit)
    rest = (slice(None),) * (len(shape) - split - 1)
    for prefix in np.ndindex(*shape[:split]):
        for first in range(0, shape[split], step):
            last = min(first + step, shape[split])
            slices = (*(slice(i, i + 1) for i in prefix), slice(first, last), *rest)
            origin = (*prefix, first, *([0] * len(rest)))
            start = int(np.ravel_multi_index(origin, shape))
            shape_of = (*([1] * split), last - first, *shape[split + 1 :])
            yield Chunk(slices, start, shape_of, origin)


def param_slices(chunk: Chunk, groups: Grouping) -> tuple[slice, ...]:
    """The box of the parameter array that holds the channels or blocks of ``chunk``."""
    along = chunk.slices[groups.axis]
    first, last, _ = along.indices(groups.length)
    if groups.block_size is None:
        return (slice(first, last),)
    blocks = slice(first // groups.block_size, -(-last // groups.block_size))
    return (*chunk.slices[: groups.axis], blocks, *chunk.slices[groups.axis + 1 :])


def params_of(
    chunk: Chunk, groups: Grouping | None, scale: Any, zero_point: Any
) -> tuple[Any, Any]:
    """The scale and zero point of ``chunk``: those of the array per tensor, else the box of
    the parameter arrays that holds its channels or blocks."""
    if groups is None:
        return scale, zero_point
    box = param_slices(chunk, groups)
    return scale[box], zero_point[box]

"""Rounding modes (SPEC §2.1): which one a call asks for, and where its elements lie.

A :class:`Rounding` travels from the API to the backends with every quantize call. Stochastic
rounding draws element ``i``'s random number from ``SplitMix64(seed, i)``, where ``i`` is the
element's flat index in C order of the whole array; a call on a piece of a larger array carries
the map from the piece's own indices to the whole array's (``index_base`` and
``index_strides``), so that the piece rounds as it would in the whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MODES = ("half_even", "half_away", "half_up", "floor", "ceil", "trunc", "stochastic")
DEFAULT = "half_even"
# Flat indices of the whole array and the sums that reach them are int64 in the kernels.
INDEX_LIMIT = 2**63
SEED_LIMIT = 2**64


@dataclass(frozen=True)
class Rounding:
    """A rounding mode, with stochastic rounding's seed and index map.

    Element ``m`` (a multi-index of ``x``) has the stochastic index
    ``index_base + sum(m[k] * index_strides[k])``; ``index_strides`` None means C order of
    ``x`` itself.
    """

    mode: str = DEFAULT
    seed: int = 0
    index_base: int = 0
    index_strides: tuple[int, ...] | None = None

    @property
    def stochastic(self) -> bool:
        return self.mode == "stochastic"

    def strides_for(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The index strides of an array of ``shape``: C order unless given."""
        if self.index_strides is not None:
            return self.index_strides
        return c_strides(shape)

    def indices(self, shape: tuple[int, ...]) -> np.ndarray:
        """Each element's stochastic index, as a uint64 array of ``shape``."""
        index = np.full(shape, self.index_base, np.uint64)
        for axis, (n, stride) in enumerate(zip(shape, self.strides_for(shape), strict=True)):
            along = np.arange(n, dtype=np.uint64) * np.uint64(stride)
            index += along.reshape([n if k == axis else 1 for k in range(len(shape))])
        return index

    def moved(self, start: tuple[int, ...], shape: tuple[int, ...]) -> Rounding:
        """The rounding of the box of a call's array (of ``shape``) that starts at ``start``."""
        if not self.stochastic:
            return self
        strides = self.strides_for(shape)
        base = self.index_base + sum(s * k for s, k in zip(strides, start, strict=True))
        return Rounding(self.mode, self.seed, base, strides)

    def transposed(self, shape: tuple[int, ...]) -> Rounding:
        """The rounding of the transpose of a call's array (of ``shape``), whose elements keep
        their indices (a Fortran-ordered file read as its C-ordered transpose)."""
        if not self.stochastic:
            return self
        return Rounding(self.mode, self.seed, self.index_base, self.strides_for(shape)[::-1])


HALF_EVEN = Rounding()


def c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Flat-index steps along each axis of an array of ``shape``, in C order."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def mode(value: object) -> str:
    """A checked rounding mode name."""
    if not isinstance(value, str) or value not in MODES:
        raise ValueError(f"rounding must be one of {MODES}, got {value!r}")
    return value


def rounding(value: object, seed: object, position: object, shape: tuple[int, ...]) -> Rounding:
    """The :class:`Rounding` of a call on an array of ``shape`` (SPEC §2.1, §5).

    ``seed`` is required by ``"stochastic"`` and refused by the other modes; so is
    ``position``, ``(start, shape)`` of the whole array of which ``x`` is a box.
    """
    checked = mode(value)
    if checked != "stochastic":
        for name, given in (("seed", seed), ("position", position)):
            if given is not None:
                raise ValueError(f"{name} applies to rounding='stochastic' only")
        return Rounding(checked)
    if not _int(seed) or not 0 <= seed < SEED_LIMIT:  # type: ignore[operator]
        raise ValueError(
            f"rounding='stochastic' needs seed=, an int from 0 to 2**64 - 1; got {seed!r}"
        )
    start, whole = checked_position(position, shape)
    if math.prod(whole) > INDEX_LIMIT:
        raise ValueError(f"stochastic rounding indexes at most 2**63 elements, got {whole}")
    return Rounding(checked, int(seed)).moved(start, whole)  # type: ignore[call-overload]


def checked_position(position: object, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """``(start, whole_shape)``, checked: ``x`` (of ``shape``) must fit in the whole."""
    if position is None:
        return (0,) * len(shape), shape
    pair = position if isinstance(position, (tuple, list)) and len(position) == 2 else (0, 0)
    start, whole = (tuple(p) if isinstance(p, (tuple, list)) else None for p in pair)
    if (
        start is None
        or whole is None
        or not len(start) == len(whole) == len(shape)
        or not all(_int(k) and _int(n) for k, n in zip(start, whole, strict=True))
        or not all(k >= 0 and k + m <= n for k, m, n in zip(start, shape, whole, strict=True))
    ):
        raise ValueError(
            f"position must be (start, shape): x, of shape {shape}, the box of an array of "
            f"that shape starting at index start; got {position!r}"
        )
    return tuple(int(k) for k in start), tuple(int(n) for n in whole)


GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)


def splitmix64(seed: int, index: np.ndarray) -> np.ndarray:
    """``SplitMix64(seed, i)`` for each ``i`` of the uint64 array ``index``: the i-th output
    (0-based) of the generator seeded with ``seed`` (SPEC §2.1), all modulo 2**64."""
    z = (index + np.uint64(1)) * GOLDEN_GAMMA  # uint64 arrays wrap: the modulo
    z += np.uint64(seed)
    z = (z ^ (z >> np.uint64(30))) * MIX_1
    z = (z ^ (z >> np.uint64(27))) * MIX_2
    z ^= z >> np.uint64(31)
    mixed: np.ndarray = z
    return mixed

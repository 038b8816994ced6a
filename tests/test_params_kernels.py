"""SPEC §4 as the compiled kernels compute it, against ``linquant._params`` (the reference).

Dynamic per-block quantization along the innermost axis, and per-axis along the outermost axis
where each channel is one run of ``x`` (``block_dynamic_quantize``), finds each group's scale
and zero point in the kernels themselves: ``_kernels.pxi``'s ``_block_params``
(float32 and float64, every CPU level) and, on AVX-512 builds, ``lq_block_params16`` (float32,
16 blocks at once: whole groups of blocks of 16 to 256 values, masked lanes for other sizes and
a row's last blocks). Each block here is built so that its minimum is ``lo`` and its maximum
``hi``, for ranges with ±float max, ±inf, subnormal and tiny spans, ``lo == hi`` (zero and
not), ``lo == -hi``, and ranges across 0 and on either side of it. At every CPU level, for 8
and 4 bits, each scheme, ``include_zero`` either way:

- ``lq.quantize(x, ..., axis=-1, block_size=B)``: scales and zero points equal the reference's
  bit for bit, codes the NumPy backend's; a range the reference refuses raises its error;
- the compiled kernel decides exactly the calls whose every block the reference accepts (None
  otherwise): no block is left to the general path unseen. The NumPy twin returns the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import linquant as lq
from linquant import _numpy_backend
from linquant._groups import grouping
from linquant._params import integer_range, params_per_slice, storage_dtype
from linquant._rounding import Rounding

compiled = pytest.importorskip(
    "linquant._compiled",
    reason="the compiled backend is not built (LINQUANT_DISABLE_CEXT=1): its kernels' SPEC §4 "
    "is what this file checks against linquant._params",
)

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Whole groups of 16 blocks take the AVX-512 loops for these sizes; other sizes the masked ones.
BLOCKS = (16, 32, 64, 128, 256, 7, 33)
BLOCKS_PER_ROW = 17  # one group of 16, then one block alone
BITS = (8, 4)
SCHEMES = (("asymmetric", True), ("asymmetric", False), ("symmetric", True))
Ranges = list[tuple[Any, Any]]


def special_ranges(dtype: np.dtype) -> Ranges:
    """(lo, hi) pairs at the edges of SPEC §4 and of the working float ``dtype``."""
    info = np.finfo(dtype)
    big, tiny, sub, inf = float(info.max), float(info.tiny), float(info.smallest_subnormal), np.inf
    # fmt: off
    pairs = [
        # lo == hi, zero and not (include_zero=False: zero point -lo, int32 up to -2**31 + 1)
        (0.0, 0.0), (-0.0, 0.0), (1.5, 1.5), (-1.5, -1.5), (3e9, 3e9), (-3e9, -3e9),
        (2.0**31, 2.0**31), (-(2.0**31), -(2.0**31)), (128 - 2.0**31, 128 - 2.0**31),
        # near the float maximum: spans that overflow and spans that just don't
        (-big, big), (-big, 0.0), (0.0, big), (big / 2, big), (-big, -big / 2), (big, big),
        (-big, -big), (-big / 2, big / 2), (-big / 2, np.nextafter(big / 2, inf)),
        # infinite bounds: SPEC §5 raises
        (-inf, 1.0), (-1.0, inf), (-inf, inf), (inf, inf), (-inf, -inf), (0.0, inf),
        # subnormal and tiny: scales that underflow to 0, subnormal scales, normal ones
        (sub, sub), (-sub, sub), (0.0, sub), (sub, 2 * sub), (0.0, 127 * sub), (0.0, 255 * sub),
        (-tiny, tiny), (0.0, tiny), (tiny, 2 * tiny), (-1e-30, 1e-30), (2**-100, 2**-99),
        (0.0, 255 * 2.0**-100), (0.0, 255 * 2.0**-101), (0.0, 255 * 2.0**100),
        (-300 * sub, 0.0), (-20 * sub, 0.0),  # scales rounded far down: zero points past qmax
        # lo == -hi
        (-1.0, 1.0), (-0.1, 0.1), (-127.0, 127.0), (-1e20, 1e20), (-2.5, 2.5), (-0.5, 0.5),
        # across 0, and on either side of it
        (-1.0, 3.0), (-3.0, 1.0), (-0.25, 1e6), (-1e6, 0.25), (-1.0, 254.0),
        (2.0, 3.0), (-3.0, -2.0), (100.0, 100.5), (1e6, 1e6 + 1), (-1e6 - 1, -1e6),
        (1e-3, 1.0), (-1.0, -1e-3), (0.5, 2.0**24), (2.0**24, 2.0**25),
        # zero points of exactly x.5 (scale 0.5 at 8 and at 4 bits): half to even
        (-1.25, 126.25), (1.25, 128.75), (-1.25, 6.25), (1.25, 8.75),
    ]
    # fmt: on
    for a in (1.0, 1e6, -1e6, 3e30, 2.0**-120):  # one ulp: zero points far outside the codes
        pairs.append((a, np.nextafter(dtype.type(a), dtype.type(inf))))
    rng = np.random.default_rng(4)
    for _ in range(24):  # magnitudes across the exponent range of float32, either sign
        a, b = np.sort(rng.choice([-1, 1], 2) * 10.0 ** rng.uniform(-44, 38, 2))
        pairs.append((a, b))
    with np.errstate(over="ignore"):  # beyond float32's range: ±inf, as data would hold them
        return [(dtype.type(lo), dtype.type(hi)) for lo, hi in pairs]


def filler(dtype: np.dtype) -> Ranges:
    """Distinct ordinary ranges for the other blocks of a row, valid whatever the settings."""
    return [(dtype.type(-0.75 * (k + 1)), dtype.type(1.25 * (k + 2))) for k in range(16)]


def blocks_of(
    pairs: Ranges, block: int, tail: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, lo, hi)``: rows of ``BLOCKS_PER_ROW`` blocks, the last ``tail`` long, block ``k``
    of row ``r`` holding ``pairs[r * BLOCKS_PER_ROW + k]`` (at random places, so that it is
    the block's range) and values between them; ``lo`` and ``hi`` of the blocks' shape."""
    dtype = np.asarray(pairs[0][0]).dtype
    lo = np.array([p[0] for p in pairs], dtype).reshape(-1, BLOCKS_PER_ROW)
    hi = np.array([p[1] for p in pairs], dtype).reshape(-1, BLOCKS_PER_ROW)
    n = (BLOCKS_PER_ROW - 1) * block + tail
    of = np.arange(n) // block
    low, high = lo[:, of].astype(np.float64), hi[:, of].astype(np.float64)
    t = rng.random(low.shape)
    with np.errstate(invalid="ignore"):
        between = low * (1 - t) + high * t  # no overflow: each term is at most max
    between = np.where(np.isfinite(between), between, low)  # an infinite bound: bounds only
    x = np.clip(between, low, high).astype(dtype)  # within [lo, hi] after rounding too
    rows = np.arange(lo.shape[0])[:, None]
    start = np.arange(BLOCKS_PER_ROW) * block
    length = np.full(BLOCKS_PER_ROW, block)
    length[-1] = tail
    at_lo = rng.integers(0, length, lo.shape)
    at_hi = (at_lo + rng.integers(1, length, lo.shape)) % length  # another place: length >= 2
    x[rows, start + at_lo] = lo
    x[rows, start + at_hi] = hi
    return x, lo, hi


def channels_of(pairs: Ranges, run: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """``x`` of shape ``(len(pairs), *run)``: channel ``c`` (``x[c]``) holds ``pairs[c]`` as
    its minimum and maximum, at random places, and values between them."""
    dtype = np.asarray(pairs[0][0]).dtype
    lo = np.array([p[0] for p in pairs], dtype)[:, None]
    hi = np.array([p[1] for p in pairs], dtype)[:, None]
    size = math.prod(run)
    t = rng.random((len(pairs), size))
    with np.errstate(invalid="ignore"):
        between = lo.astype(np.float64) * (1 - t) + hi.astype(np.float64) * t
    between = np.where(np.isfinite(between), between, lo)  # an infinite bound: bounds only
    x = np.clip(between, lo, hi).astype(dtype)
    channels = np.arange(len(pairs))
    at_lo = rng.integers(0, size, len(pairs))
    at_hi = (at_lo + rng.integers(1, size, len(pairs))) % size
    x[channels, at_lo] = lo[:, 0]
    x[channels, at_hi] = hi[:, 0]
    return x.reshape(len(pairs), *run)


@contextmanager
def running(backend: str, level: str | None = None) -> Iterator[None]:
    """Run the block on ``backend`` (at CPU ``level``), then restore the previous settings."""
    previous = (lq.get_backend(), compiled.get_level())
    lq.set_backend(backend)
    if level is not None:
        compiled.set_level(level)
    try:
        yield
    finally:
        lq.set_backend(previous[0])
        compiled.set_level(previous[1])


def same_bits(actual: np.ndarray, expected: np.ndarray, where: str) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
    unsigned = np.dtype(f"u{expected.dtype.itemsize}")
    np.testing.assert_array_equal(actual.view(unsigned), expected.view(unsigned), err_msg=where)


def reference(
    lo: np.ndarray, hi: np.ndarray, bits: int, scheme: str, include_zero: bool, describe: Any
) -> tuple[np.ndarray, np.ndarray] | str:
    """``linquant._params``' scales and zero points of the ranges, or its error message."""
    zero = lo.dtype.type(0.0)  # -0.0 bounds as +0.0, as the API makes them
    signed = scheme == "symmetric"
    try:
        return params_per_slice(lo + zero, hi + zero, bits, signed, include_zero, describe)
    except ValueError as error:
        return str(error)


def check(
    x: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    block: int | None,
    bits: int,
    scheme: str,
    include_zero: bool,
    axis: int = -1,
) -> None:
    """Dynamic quantization of ``x`` in blocks along ``axis`` (per-axis where ``block`` is
    None) whose ranges are ``lo``, ``hi``, on the NumPy backend and at every CPU level: the
    reference's parameters, or its error."""
    signed = scheme == "symmetric"
    groups = grouping(x.shape, axis, block)
    assert groups is not None
    assert (groups.reduce(x, np.fmin, np.inf) == lo).all()
    assert (groups.reduce(x, np.fmax, -np.inf) == hi).all()
    expected = reference(lo, hi, bits, scheme, include_zero, groups.describe)
    qmin, qmax = integer_range(bits, signed)

    def decide(backend: Any) -> tuple[np.ndarray, np.ndarray] | None:
        out = np.empty(x.shape, storage_dtype(bits, signed))
        params: tuple[np.ndarray, np.ndarray] | None = backend.block_dynamic_quantize(
            x, groups, bits, signed, include_zero, True, qmin, qmax, out, Rounding()
        )
        return params

    def quantized() -> lq.QuantizedArray | str:
        try:
            return lq.quantize(
                x, bits, scheme, include_zero=include_zero, axis=axis, block_size=block
            )
        except ValueError as error:
            return str(error)

    with running("numpy"):
        outcomes = {"numpy": (decide(_numpy_backend), quantized())}
    for level in compiled.supported_levels():
        with running("cython", level):
            outcomes[level] = (decide(compiled), quantized())
    codes = outcomes["numpy"][1]
    for name, (decided, result) in outcomes.items():
        where = (
            f"{name}: {x.dtype} {x.shape} {axis=} {block=}, {bits} bits, {scheme}, {include_zero=}"
        )
        if isinstance(expected, str):
            assert decided is None, where
            assert result == expected, where
            continue
        assert decided is not None, where
        assert isinstance(result, lq.QuantizedArray) and isinstance(codes, lq.QuantizedArray)
        for scale, zero_point in (decided, (result.scale, result.zero_point)):
            same_bits(scale, expected[0], where)
            same_bits(zero_point, expected[1], where)
        np.testing.assert_array_equal(result.data, codes.data, err_msg=where)


CONFIGS = [(bits, *scheme) for bits in BITS for scheme in SCHEMES]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize(("bits", "scheme", "include_zero"), CONFIGS)
def test_block_parameters_of_special_ranges(
    dtype: np.dtype, block: int, bits: int, scheme: str, include_zero: bool
) -> None:
    """Each special range in a row of ordinary ones, in each of the row's 17 places in turn:
    rows the vector loops take whole, and rows they hand back to the scalar loop (parameters
    outside their fast form). A range the reference refuses goes in a call of its own."""
    rng = np.random.default_rng(block)
    tail = max(2, block // 2)
    valid, refused = [], []
    for i, (lo, hi) in enumerate(special_ranges(dtype)):
        row = filler(dtype)
        row.insert(i % BLOCKS_PER_ROW, (lo, hi))
        alone = reference(np.array([lo]), np.array([hi]), bits, scheme, include_zero, str)
        (refused if isinstance(alone, str) else valid).append(row)
    assert valid and refused
    calls = [[pair for row in valid for pair in row], *refused]
    for pairs in calls:
        check(*blocks_of(pairs, block, tail, rng), block, bits, scheme, include_zero)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("run", [(5,), (33,), (4100,), (3, 700)], ids=str)
@pytest.mark.parametrize(("bits", "scheme", "include_zero"), CONFIGS)
def test_channel_parameters_of_special_ranges(
    dtype: np.dtype, run: tuple[int, ...], bits: int, scheme: str, include_zero: bool
) -> None:
    """Per-axis along the outermost axis: each channel is one run of ``x``, whose range,
    parameters and codes the dynamic-block kernels find (more than a cache's worth of values
    per channel from 4100 on). Each special range among ordinary ones, the refused ones in
    calls of their own."""
    rng = np.random.default_rng(math.prod(run))
    valid, refused = filler(dtype), []
    for lo, hi in special_ranges(dtype):
        alone = reference(np.array([lo]), np.array([hi]), bits, scheme, include_zero, str)
        (refused if isinstance(alone, str) else valid).append((lo, hi))
    assert refused
    for pairs in [valid, *([pair, *filler(dtype)[:2]] for pair in refused)]:
        x = channels_of(pairs, run, rng)
        lo = np.array([p[0] for p in pairs], dtype)
        hi = np.array([p[1] for p in pairs], dtype)
        check(x, lo, hi, None, bits, scheme, include_zero, axis=0)


@st.composite
def ranges(draw: st.DrawFn, dtype: np.dtype) -> tuple[Any, Any]:
    """A finite range of ``dtype``: ordered, a single value, one ulp wide, or ``[-a, a]``."""
    bound = st.floats(width=8 * dtype.itemsize, allow_nan=False, allow_infinity=False)
    a, b = (dtype.type(v) for v in draw(st.tuples(bound, bound)))
    how = draw(st.sampled_from(["ordered", "equal", "one-ulp", "symmetric"]))
    if how == "equal":
        return a, a
    if how == "one-ulp":
        with np.errstate(over="ignore"):  # the float after max is inf: a range that raises
            return a, np.nextafter(a, dtype.type(np.inf))
    if how == "symmetric":
        return -abs(a), abs(a)
    return min(a, b), max(a, b)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_block_parameters_of_generated_ranges(data: st.DataObject) -> None:
    """Rows of generated ranges, each in every setting at every level."""
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    block = data.draw(st.sampled_from(BLOCKS), label="block")
    tail = data.draw(st.integers(2, block), label="tail")
    pairs = data.draw(st.lists(ranges(dtype), min_size=1, max_size=2 * BLOCKS_PER_ROW))
    pairs = [
        pairs[i % len(pairs)] for i in range(-(-len(pairs) // BLOCKS_PER_ROW) * BLOCKS_PER_ROW)
    ]
    x, lo, hi = blocks_of(pairs, block, tail, np.random.default_rng(len(pairs)))
    for bits, scheme, include_zero in CONFIGS:
        check(x, lo, hi, block, bits, scheme, include_zero)

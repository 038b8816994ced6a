"""Per-axis and per-block quantization: ``axis=`` and ``block_size=``.

The contract: each channel (the elements with one index along ``axis``) or block (at most
``block_size`` consecutive elements along ``axis``, the other indices fixed; the last block may
be shorter) is quantized exactly as per-tensor quantization would quantize that slice on its
own: parameters by SPEC §4 (degenerate rule included), bad input by SPEC §5, codes by SPEC §2
and values by SPEC §3. These are the semantics of ONNX QuantizeLinear / DequantizeLinear with
``axis`` (opset 13) and ``block_size`` (opset 21).

- the slice-loop oracle: every grouped call (``quantize``, ``quantize_linear``,
  ``dequantize_linear``, ``minmax``) equals, bit for bit, the per-tensor call on each slice,
  or raises the exception type the per-tensor call raises on some slice; under every backend;
- the backends agree on grouped calls (SPEC §6);
- ONNX Runtime (opset 21) is an external oracle for the given-parameter operators;
- argument errors, ``QuantizedArray`` with arrays of parameters, and the per-slice parameter
  arithmetic of ``linquant._params`` against its scalar original.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import linquant as lq
from linquant._backend import available_backends
from linquant._groups import grouping
from linquant._params import (
    asymmetric_params,
    asymmetric_params_per_slice,
    symmetric_scale,
    symmetric_scale_per_slice,
)

CODE_DTYPES = ("uint8", "int8", "uint16", "int16")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- slices and outcomes -----------------------------------------------------------------------


def param_shape(shape: tuple[int, ...], axis: int, block_size: int | None) -> tuple[int, ...]:
    """The shape of per-axis (``(n,)``) or per-block parameters, by the ONNX rule."""
    axis %= len(shape)
    if block_size is None:
        return (shape[axis],)
    return (*shape[:axis], math.ceil(shape[axis] / block_size), *shape[axis + 1 :])


def slices(
    shape: tuple[int, ...], axis: int, block_size: int | None
) -> Iterator[tuple[tuple[int, ...], tuple[Any, ...]]]:
    """``(parameter index, index of x)`` of each channel or block.

    A channel is ``np.take(x, i, axis)``; a block is ``x[..., b*B:(b+1)*B, ...]`` along
    ``axis`` at one index of every other dimension.
    """
    axis %= len(shape)
    for p in np.ndindex(*param_shape(shape, axis, block_size)):
        if block_size is None:
            yield p, (slice(None),) * axis + p
        else:
            b = p[axis]
            yield p, (*p[:axis], slice(b * block_size, (b + 1) * block_size), *p[axis + 1 :])


def broadcast(params: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int | None):
    """Per-axis or per-block ``params`` repeated to ``shape``, element by element."""
    full = np.empty(shape, params.dtype)
    for p, index in slices(shape, axis, block_size):
        full[index] = params[p]
    return full


Outcome = tuple[str, Any]  # ("returns", tuple of arrays) or ("raises", the exception)


def outcome(call: Callable[[], tuple[Any, ...]]) -> Outcome:
    """What ``call()`` does: the arrays it returns, or the exception it raises."""
    try:
        return "returns", tuple(np.asarray(a) for a in call())
    except AssertionError:
        raise
    except Exception as error:  # the exception is the outcome
        return "raises", error


def per_slice(
    x_shape: tuple[int, ...],
    axis: int,
    block_size: int | None,
    results: list[tuple[str, np.dtype]],
    call: Callable[[tuple[Any, ...], tuple[int, ...]], tuple[Any, ...]],
) -> Outcome:
    """The oracle: ``call(index of x, parameter index)`` on every slice, results put together.

    ``results`` says, for each thing ``call`` returns, whether it has the shape of x (``"x"``,
    put at the slice's place) or of the parameters (``"p"``, one element), and its dtype. The
    first exception a slice raises is the outcome.
    """
    shapes = {"x": x_shape, "p": param_shape(x_shape, axis, block_size)}
    arrays = tuple(np.zeros(shapes[kind], dtype) for kind, dtype in results)
    for p, index in slices(x_shape, axis, block_size):
        try:
            parts = call(index, p)
        except Exception as error:  # the exception is the outcome
            return "raises", error
        for (kind, _), array, part in zip(results, arrays, parts, strict=True):
            assert np.asarray(part).dtype == array.dtype, (part, array.dtype)
            array[index if kind == "x" else p] = part
    return "returns", arrays


def assert_same(actual: Outcome, expected: Outcome) -> None:
    """The same arrays bit for bit (dtype, shape, bytes), or the same exception type."""
    assert actual[0] == expected[0], f"got {actual}, expected {expected}"
    if actual[0] == "raises":
        assert type(actual[1]) is type(expected[1]), f"got {actual[1]!r}, not {expected[1]!r}"
        return
    for got, want in zip(actual[1], expected[1], strict=True):
        assert (got.dtype, got.shape) == (want.dtype, want.shape), (got, want)
        assert got.tobytes() == want.tobytes(), f"got {got!r}, expected {want!r}"


@contextlib.contextmanager
def using_backend(name: str) -> Iterator[None]:
    previous = lq.get_backend()
    lq.set_backend(name)
    try:
        yield
    finally:
        lq.set_backend(previous)


def working_float(x: np.ndarray) -> np.dtype:
    return np.dtype(np.float64 if x.dtype == np.float64 else np.float32)


# --- the grouped calls and their slice loops ---------------------------------------------------


def quantize_grouped(x: np.ndarray, axis: int, block_size: int | None, **kw: Any) -> Outcome:
    def call() -> tuple[Any, ...]:
        qa = lq.quantize(x, axis=axis, block_size=block_size, **kw)
        assert (qa.axis, qa.block_size) == (axis % x.ndim, block_size)
        return qa.data, qa.scale, qa.zero_point

    return outcome(call)


def quantize_loop(x: np.ndarray, axis: int, block_size: int | None, **kw: Any) -> Outcome:
    signed = kw.get("scheme") == "symmetric"
    codes = np.dtype(f"{'' if signed else 'u'}int{8 if kw['bits'] <= 8 else 16}")

    def call(index: tuple[Any, ...], _: tuple[int, ...]) -> tuple[Any, ...]:
        qa = lq.quantize(x[index], **kw)
        return qa.data, qa.scale, qa.zero_point

    results = [("x", codes), ("p", working_float(x)), ("p", np.dtype(np.int32))]
    return per_slice(x.shape, axis, block_size, results, call)


def minmax_grouped(x: np.ndarray, axis: int, block_size: int | None) -> Outcome:
    return outcome(lambda: lq.minmax(x, axis=axis, block_size=block_size))


def minmax_loop(x: np.ndarray, axis: int, block_size: int | None) -> Outcome:
    wf = working_float(x)
    return per_slice(
        x.shape, axis, block_size, [("p", wf), ("p", wf)], lambda index, _: lq.minmax(x[index])
    )


def quantize_linear_grouped(x, scale, zero_point, axis, block_size, **kw: Any) -> Outcome:
    return outcome(
        lambda: (lq.quantize_linear(x, scale, zero_point, axis=axis, block_size=block_size, **kw),)
    )


def quantize_linear_loop(x, scale, zero_point, axis, block_size, **kw: Any) -> Outcome:
    def call(index: tuple[Any, ...], p: tuple[int, ...]) -> tuple[Any, ...]:
        zp = zero_point if np.ndim(zero_point) == 0 else zero_point[p]
        return (lq.quantize_linear(x[index], scale[p], zp, **kw),)

    return per_slice(x.shape, axis, block_size, [("x", np.dtype(kw["dtype"]))], call)


def dequantize_linear_grouped(q, scale, zero_point, axis, block_size, dtype) -> Outcome:
    return outcome(
        lambda: (
            lq.dequantize_linear(
                q, scale, zero_point, axis=axis, block_size=block_size, dtype=dtype
            ),
        )
    )


def dequantize_linear_loop(q, scale, zero_point, axis, block_size, dtype) -> Outcome:
    def call(index: tuple[Any, ...], p: tuple[int, ...]) -> tuple[Any, ...]:
        zp = zero_point if np.ndim(zero_point) == 0 else zero_point[p]
        return (lq.dequantize_linear(q[index], scale[p], zp, dtype=dtype),)

    return per_slice(q.shape, axis, block_size, [("x", np.dtype(dtype))], call)


def check_against_loop(grouped: Callable[[], Outcome], loop: Callable[[], Outcome]) -> None:
    """Under every backend, ``grouped()`` matches the slice loop, and the backends agree."""
    first = None
    for name in available_backends():
        with using_backend(name):
            actual = grouped()
            assert_same(actual, loop())
        if first is None:
            first = actual
        assert_same(actual, first)


# --- hypothesis strategies ---------------------------------------------------------------------

# Far from zero with a range of one ulp: with include_zero=False the zero point overflows int32.
FAR_FROM_ZERO = {
    np.dtype(np.float32): [1e6, float(np.nextafter(np.float32(1e6), np.float32(2e6)))],
    np.dtype(np.float64): [1e15, 1e15 + 0.125],
}


def shapes(max_side: int = 7) -> st.SearchStrategy[tuple[int, ...]]:
    """1 to 4 dimensions of 1..max_side, or in some examples of 0..max_side (empty arrays)."""
    return st.one_of(
        *[hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=max_side)] * 3,
        hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=max_side),
    )


@st.composite
def float_arrays(draw: st.DrawFn) -> np.ndarray:
    """float16/32/64 arrays: ties (halves), ±0.0 and constant runs; in some examples NaN, ±inf
    or values far from zero."""
    dtype = np.dtype(draw(st.sampled_from([np.float16, np.float32, np.float64])))
    kind = draw(st.sampled_from(["plain", "plain", "nan", "infinite", "far-from-zero"]))
    elements = st.one_of(
        st.floats(-1000, 1000, width=8 * dtype.itemsize),
        st.integers(-600, 600).map(lambda k: k / 2),
        st.sampled_from([0.0, -0.0]),
    )
    if kind == "nan":
        elements |= st.just(math.nan)
    elif kind == "infinite":
        elements |= st.sampled_from([math.inf, -math.inf])
    elif kind == "far-from-zero" and dtype in FAR_FROM_ZERO:
        elements = st.sampled_from(FAR_FROM_ZERO[dtype])
    return draw(hnp.arrays(dtype, draw(shapes()), elements=elements))


@st.composite
def groupings(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, int | None]:
    """``(axis, block_size)``: any axis, negative ones included; per-axis, blocks of 1..n+2, or
    blocks far past any axis, up to ONNX's int64 limit (one block, never an overflow)."""
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    huge = st.sampled_from([2**31, 2**59, 2**62, 2**63 - 1])
    block_size = draw(st.none() | st.integers(1, shape[axis] + 2) | huge)
    return axis, block_size


@st.composite
def dynamic_options(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of ``lq.quantize`` (apart from axis and block_size)."""
    scheme = draw(st.sampled_from(["asymmetric", "symmetric"]))
    options = {
        "bits": draw(st.sampled_from([2, 3, 4, 7, 8, 9, 12, 15, 16])),
        "scheme": scheme,
        "nan": draw(st.sampled_from(["zero", "zero", "raise"])),
    }
    if scheme == "asymmetric":
        options["include_zero"] = draw(st.booleans())
    else:
        options["narrow_range"] = draw(st.booleans())
    return options


SCALES = st.one_of(
    st.sampled_from([2.0**-4, 0.5, 1.0, 2.0, 8.0]),  # exact ties with the halves of the data
    st.floats(1e-3, 1e3),
)


@st.composite
def given_params(draw: st.DrawFn, shape: tuple[int, ...], code_dtype: str) -> tuple[Any, Any]:
    """``(scale, zero_point)`` of a parameter shape: float32 or float64 scales; one integer, an
    int32 array of zero points around (and a little outside) the code range, or an array of the
    code type (as ONNX gives them, read in place by the kernels of blocks)."""
    info = np.iinfo(code_dtype)
    scale = draw(
        hnp.arrays(draw(st.sampled_from([np.float32, np.float64])), shape, elements=SCALES)
    )
    points = st.integers(int(info.min) - 3, int(info.max) + 3)
    code_points = st.integers(int(info.min), int(info.max))
    zero_point = draw(
        points
        | hnp.arrays(np.int32, shape, elements=points)
        | hnp.arrays(code_dtype, shape, elements=code_points)
    )
    return scale, zero_point


# --- 1 and 2: the slice loop, under every backend ------------------------------------------------


@SETTINGS
@given(data=st.data(), x=float_arrays(), options=dynamic_options())
def test_quantize_matches_slice_loop(data: st.DataObject, x: np.ndarray, options: dict) -> None:
    axis, block_size = data.draw(groupings(x.shape))
    check_against_loop(
        lambda: quantize_grouped(x, axis, block_size, **options),
        lambda: quantize_loop(x, axis, block_size, **options),
    )


@SETTINGS
@given(data=st.data(), x=float_arrays())
def test_minmax_matches_slice_loop(data: st.DataObject, x: np.ndarray) -> None:
    axis, block_size = data.draw(groupings(x.shape))
    check_against_loop(
        lambda: minmax_grouped(x, axis, block_size), lambda: minmax_loop(x, axis, block_size)
    )


@SETTINGS
@given(data=st.data(), x=float_arrays(), code_dtype=st.sampled_from(CODE_DTYPES))
def test_quantize_linear_matches_slice_loop(
    data: st.DataObject, x: np.ndarray, code_dtype: str
) -> None:
    axis, block_size = data.draw(groupings(x.shape))
    scale, zero_point = data.draw(given_params(param_shape(x.shape, axis, block_size), code_dtype))
    signed = code_dtype.startswith("int")
    width = 8 * np.dtype(code_dtype).itemsize
    options = {
        "dtype": code_dtype,
        "bits": data.draw(st.none() | st.integers(2, width)),
        "narrow_range": signed and data.draw(st.booleans()),
        "nan": data.draw(st.sampled_from(["zero", "raise"])),
    }
    check_against_loop(
        lambda: quantize_linear_grouped(x, scale, zero_point, axis, block_size, **options),
        lambda: quantize_linear_loop(x, scale, zero_point, axis, block_size, **options),
    )


@SETTINGS
@given(
    data=st.data(),
    shape=shapes(),
    code_dtype=st.sampled_from(CODE_DTYPES),
    out_dtype=st.sampled_from(["float32", "float64"]),
)
def test_dequantize_linear_matches_slice_loop(
    data: st.DataObject, shape: tuple[int, ...], code_dtype: str, out_dtype: str
) -> None:
    q = data.draw(hnp.arrays(code_dtype, shape))
    axis, block_size = data.draw(groupings(shape))
    scale, zero_point = data.draw(given_params(param_shape(shape, axis, block_size), code_dtype))
    check_against_loop(
        lambda: dequantize_linear_grouped(q, scale, zero_point, axis, block_size, out_dtype),
        lambda: dequantize_linear_loop(q, scale, zero_point, axis, block_size, out_dtype),
    )


def _larger(seed: int, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """Normal data with a different offset and spread per row, NaN and exact ties."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * rng.uniform(0.01, 100, shape[-1]) + rng.normal(0, 50)
    x.flat[rng.integers(0, x.size, 5)] = np.nan
    x.flat[rng.integers(0, x.size, 20)] = rng.integers(-100, 100, 20) + 0.5
    return x.astype(dtype)


LARGER = [  # (shape, axis, block_size): n a multiple of block_size or not
    ((64, 48), 1, None),
    ((64, 48), 0, 16),
    ((5, 300), -1, 32),
    ((2, 3, 50, 4), 2, 7),
    ((2, 3, 50, 4), -4, None),
    ((1000,), 0, 64),
]


@pytest.mark.parametrize(("shape", "axis", "block_size"), LARGER)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    "options",
    [
        {"bits": 8, "scheme": "asymmetric"},
        {"bits": 5, "scheme": "asymmetric", "include_zero": False},
        {"bits": 16, "scheme": "asymmetric", "include_zero": False},
        {"bits": 8, "scheme": "symmetric"},
        {"bits": 12, "scheme": "symmetric", "narrow_range": True},
    ],
)
def test_larger_arrays_match_slice_loop(shape, axis, block_size, dtype, options) -> None:
    x = _larger(len(shape) + (block_size or 0), shape, dtype)
    check_against_loop(
        lambda: quantize_grouped(x, axis, block_size, nan="zero", **options),
        lambda: quantize_loop(x, axis, block_size, nan="zero", **options),
    )


# Rows of at least 16 whole blocks of 16-256 values take lq_kernels.h's group kernels (dynamic:
# division-free quotients, integer clamps or saturating packs); the rest of a row and other
# block sizes take the per-block loops. Rows here mix both, with exact ties and rows whose
# scales leave the group kernels' range (they hand such rows back).
GROUP_BLOCKS = [16, 32, 64, 128, 256, 48]


def _group_rows(seed: int, block_size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = 16 * block_size * 2 + 3 * block_size + 5
    x = rng.standard_normal((10, n)) * rng.uniform(0.01, 100, (10, 1)) + rng.normal(0, 20, (10, 1))
    x[1] = np.round(x[1]) + 0.5  # ties at every scale that divides the halves
    x[2] = rng.integers(-128, 128, n)  # integer data: exact quotients at scale 1
    x[3] *= 1e-25 / np.abs(x[3]).max()  # scales below 2**-100
    x[9] *= 1e-39 / np.abs(x[9]).max()  # subnormal scales
    x[4] *= 1e33  # scales above 2**100
    x[5, : 3 * block_size] = 7.0  # constant blocks (span 0)
    x[6, rng.integers(0, n, 3)] = np.nan
    x[7, 16 * block_size + 1] = np.nan  # in the second group
    x[8] = np.abs(x[8])  # zero out of range: a zero point at the code range's edge
    return x.astype(np.float32)


@pytest.mark.parametrize("block_size", GROUP_BLOCKS)
@pytest.mark.parametrize(
    "options",
    [
        {"bits": 8, "scheme": "asymmetric"},
        {"bits": 8, "scheme": "asymmetric", "include_zero": False},
        {"bits": 5, "scheme": "asymmetric"},
        {"bits": 16, "scheme": "asymmetric"},
        {"bits": 8, "scheme": "symmetric"},
        {"bits": 8, "scheme": "symmetric", "narrow_range": True},
        {"bits": 16, "scheme": "symmetric"},
        {"bits": 12, "scheme": "symmetric"},
    ],
)
def test_whole_block_groups_match_slice_loop(block_size: int, options: dict) -> None:
    x = _group_rows(block_size, block_size)
    check_against_loop(
        lambda: quantize_grouped(x, 1, block_size, nan="zero", **options),
        lambda: quantize_loop(x, 1, block_size, nan="zero", **options),
    )
    check_against_loop(  # a NaN raises, from whichever group it is in
        lambda: quantize_grouped(x[6:8], 1, block_size, **options),
        lambda: quantize_loop(x[6:8], 1, block_size, **options),
    )


@pytest.mark.parametrize("block_size", GROUP_BLOCKS)
def test_whole_block_groups_at_tiny_scales(block_size: int) -> None:
    # Scales near 2**-125 (every block holds 0 and its row's top: 8-bit asymmetric gives
    # top / 255) and values at its half steps: the quotient's residual would be subnormal
    # there, and the division-free form wrong for about one value in 10**4; the group kernels
    # hand such scales back.
    rng = np.random.default_rng(block_size)
    top = (rng.uniform(1, 2, (64, 1)) * 2.0**-117).astype(np.float32)
    x = (rng.integers(0, 255, (64, 32 * block_size)) + 0.5) * (top / np.float32(255))
    x = x.astype(np.float32)
    x[:, ::block_size], x[:, 1::block_size] = 0, top
    check_against_loop(
        lambda: quantize_grouped(x, 1, block_size, bits=8, scheme="asymmetric"),
        lambda: quantize_loop(x, 1, block_size, bits=8, scheme="asymmetric"),
    )


@pytest.mark.parametrize("block_size", GROUP_BLOCKS)
@pytest.mark.parametrize("code_dtype", CODE_DTYPES)
def test_whole_block_groups_with_given_parameters(block_size: int, code_dtype: str) -> None:
    x = _group_rows(block_size + 1, block_size)
    x[0, :5] = [np.inf, -np.inf, 3e38, -3e38, 0.0]
    rng = np.random.default_rng(block_size)
    shape = param_shape(x.shape, 1, block_size)
    info = np.iinfo(code_dtype)
    scale = rng.choice([2.0**-4, 0.5, 1.0, 3.0, 1e-3, 1e3], shape).astype(np.float32)
    zero_point = rng.integers(int(info.min) - 3, int(info.max) + 4, shape, dtype=np.int32)
    # Zero points beyond the fast form's 2**24, with values whose quotients reach the code
    # range's edges there: its bounds would not be exact floats. Rows of whole groups only
    # (a rest would hand the whole row back).
    far = 2**25 + 12345
    x_far = (rng.integers(-300, 300, (4, 32 * block_size)) - far).astype(np.float32)
    far_shape = param_shape(x_far.shape, 1, block_size)
    own = rng.integers(info.min, info.max, shape, endpoint=True).astype(code_dtype)
    cases = [
        (x, scale, zero_point),
        (x, scale, own),  # zero points of the code type: the _zcode kernels
        (x[:, ::-1], scale[:, ::-1], own[:, ::-1]),  # reversed: read with negative steps
        (x_far, np.ones(far_shape, np.float32), np.full(far_shape, far, np.int32)),
    ]
    for xs, s, zp in cases:
        check_against_loop(
            lambda xs=xs, s=s, zp=zp: quantize_linear_grouped(
                xs, s, zp, 1, block_size, dtype=code_dtype, nan="zero"
            ),
            lambda xs=xs, s=s, zp=zp: quantize_linear_loop(
                xs, s, zp, 1, block_size, dtype=code_dtype, nan="zero"
            ),
        )


# Raising slices: the grouped call raises the same exception type as the per-tensor call.
ERROR_CASES = {
    "infinite": (np.array([[1.0, 2.0], [np.inf, 0.0]], np.float32), {}),
    "nan-raise": (np.array([[1.0, 2.0], [np.nan, 0.0]], np.float64), {}),
    "zero-point-overflow": (
        np.array([[1e6, 1e6], [1e6, np.nextafter(np.float32(1e6), np.float32(2e6))]], np.float32),
        {"include_zero": False},
    ),
    "range-overflow": (np.array([[3e38, -3e38], [1.0, 2.0]], np.float32), {}),
    "scale-underflow": (np.array([[0.0, 1e-45], [1.0, 2.0]], np.float32), {}),
}


@pytest.mark.parametrize("case", ERROR_CASES)
@pytest.mark.parametrize(("axis", "block_size"), [(0, None), (1, None), (-1, 1), (0, 2)])
def test_raising_slices_raise_the_same(case: str, axis: int, block_size: int | None) -> None:
    x, options = ERROR_CASES[case]
    options = {"bits": 8, "scheme": "asymmetric", **options}
    check_against_loop(
        lambda: quantize_grouped(x, axis, block_size, **options),
        lambda: quantize_loop(x, axis, block_size, **options),
    )


# --- 2: the backends agree -----------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), x=float_arrays(), options=dynamic_options())
def test_backends_agree_on_grouped_calls(data: st.DataObject, x: np.ndarray, options: dict) -> None:
    axis, block_size = data.draw(groupings(x.shape))
    code_dtype = data.draw(st.sampled_from(CODE_DTYPES))
    scale, zero_point = data.draw(given_params(param_shape(x.shape, axis, block_size), code_dtype))
    q = data.draw(hnp.arrays(code_dtype, x.shape))

    def calls() -> list[Outcome]:
        return [
            quantize_grouped(x, axis, block_size, **options),
            minmax_grouped(x, axis, block_size),
            quantize_linear_grouped(
                x, scale, zero_point, axis, block_size, dtype=code_dtype, nan=options["nan"]
            ),
            dequantize_linear_grouped(q, scale, zero_point, axis, block_size, "float32"),
        ]

    outcomes = {}
    for name in available_backends():
        with using_backend(name):
            outcomes[name] = calls()
    first, *others = outcomes.values()
    for other in others:
        for actual, expected in zip(other, first, strict=True):
            assert_same(actual, expected)


# --- 3: ONNX Runtime -----------------------------------------------------------------------------

ORT_OPSET = 21  # blocked quantization (block_size) and 16-bit codes; axis since opset 13
ORT_IR_VERSION = 10
_NO_WHEEL = "ONNX Runtime has no wheel for this platform; see the test extra in pyproject.toml"


@pytest.fixture(scope="module")
def onnxruntime() -> Any:
    """ONNX Runtime; these tests skip only where it has no wheel (as tests/test_onnxruntime.py)."""
    pytest.importorskip("onnx", reason=_NO_WHEEL)
    return pytest.importorskip("onnxruntime", reason=_NO_WHEEL)


@functools.cache
def _session(op: str, code_dtype: str, axis: int, block_size: int | None) -> Any:
    """One-node QuantizeLinear or DequantizeLinear with ``axis`` (and ``block_size``); scale
    (float32) and zero point (the code type) are inputs."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    types = {
        "float32": TensorProto.FLOAT,
        **{d: getattr(TensorProto, d.upper()) for d in CODE_DTYPES},
    }
    source, result = ("float32", code_dtype) if op == "QuantizeLinear" else (code_dtype, "float32")
    names_types = [("x", source), ("scale", "float32"), ("zero_point", code_dtype)]
    inputs = [helper.make_tensor_value_info(n, types[t], None) for n, t in names_types]
    outputs = [helper.make_tensor_value_info("y", types[result], None)]
    attributes = {"axis": axis} if block_size is None else {"axis": axis, "block_size": block_size}
    node = helper.make_node(op, [v.name for v in inputs], ["y"], **attributes)
    model = helper.make_model(
        helper.make_graph([node], op, inputs, outputs),
        opset_imports=[helper.make_opsetid("", ORT_OPSET)],
        ir_version=ORT_IR_VERSION,
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _ort(op: str, code_dtype: str, axis: int, block_size: int | None, *inputs) -> np.ndarray:
    session = _session(op, code_dtype, axis, block_size)
    return session.run(None, dict(zip(["x", "scale", "zero_point"], inputs, strict=True)))[0]


# ONNX Runtime (checked with 1.32) runs every one of these, for all four code types: per-axis
# with any axis (negative ones too), and blocked quantization with n a multiple of block_size,
# with a partial last block and with block_size larger than n; so nothing is left out.
ORT_CASES = [  # (shape, axis, block_size)
    ((6, 10), 1, None),
    ((6, 10), 0, None),
    ((2, 3, 4), -1, None),
    ((2, 3, 4), 1, None),
    ((4, 12), 1, 4),  # n a multiple of block_size
    ((4, 10), 1, 4),  # a partial last block
    ((9, 5), 0, 2),
    ((2, 7, 3), -2, 3),
    ((2, 3, 8), 2, 8),
    ((5,), 0, 2),
    ((5, 3), 1, 7),  # block_size larger than n
]


def _ort_params(seed: int, shape, axis, block_size, code_dtype) -> tuple[np.ndarray, ...]:
    """float32 scales (half powers of two, for exact ties) and code-type zero points."""
    rng = np.random.default_rng(seed)
    p_shape = param_shape(shape, axis, block_size)
    scale = rng.uniform(0.01, 2.0, p_shape).astype(np.float32)
    powers = rng.random(p_shape) < 0.5
    scale[powers] = 2.0 ** rng.integers(-6, 3, int(powers.sum()))
    info = np.iinfo(code_dtype)
    zero_point = rng.integers(info.min, info.max, p_shape, endpoint=True).astype(code_dtype)
    return scale, zero_point


@pytest.mark.parametrize(("shape", "axis", "block_size"), ORT_CASES)
@pytest.mark.parametrize("code_dtype", CODE_DTYPES)
def test_quantize_linear_matches_onnxruntime(
    onnxruntime, shape, axis, block_size, code_dtype
) -> None:
    scale, zero_point = _ort_params(1, shape, axis, block_size, code_dtype)
    full_scale = broadcast(scale, shape, axis, block_size)
    info = np.iinfo(code_dtype)
    rng = np.random.default_rng(2)
    x = (rng.uniform(-1.2, 1.2, shape) * full_scale * (int(info.max) - int(info.min))).astype(
        np.float32
    )
    ties = rng.random(shape) < 0.3  # (k + 0.5) * scale, exact where scale is a power of two
    x[ties] = ((rng.integers(-50, 50, shape) + 0.5) * full_scale)[ties]
    saturating = rng.random(shape) < 0.1
    x[saturating] = rng.choice([np.inf, -np.inf, 1e30, -1e30, 3.4e38], shape)[saturating]
    expected = _ort("QuantizeLinear", code_dtype, axis, block_size, x, scale, zero_point)
    for name in available_backends():
        with using_backend(name):
            codes = lq.quantize_linear(
                x, scale, zero_point, axis=axis, block_size=block_size, dtype=code_dtype
            )
        assert_same(("returns", (codes,)), ("returns", (expected,)))


@pytest.mark.parametrize(("shape", "axis", "block_size"), ORT_CASES)
@pytest.mark.parametrize("code_dtype", CODE_DTYPES)
def test_dequantize_linear_matches_onnxruntime(
    onnxruntime, shape, axis, block_size, code_dtype
) -> None:
    scale, zero_point = _ort_params(3, shape, axis, block_size, code_dtype)
    info = np.iinfo(code_dtype)
    q = np.random.default_rng(4).integers(info.min, info.max, shape, endpoint=True)
    q = q.astype(code_dtype)
    expected = _ort("DequantizeLinear", code_dtype, axis, block_size, q, scale, zero_point)
    for name in available_backends():
        with using_backend(name):
            values = lq.dequantize_linear(
                q, scale, zero_point, axis=axis, block_size=block_size, dtype="float32"
            )
        assert_same(("returns", (values,)), ("returns", (expected,)))


# --- 4: errors -----------------------------------------------------------------------------------

X = np.arange(15, dtype=np.float32).reshape(3, 5)
CODES = np.zeros((3, 5), np.uint8)


@pytest.mark.parametrize(
    ("call", "expected_shape"),
    [
        (lambda: lq.quantize_linear(X, np.ones(3), axis=1), (5,)),
        (lambda: lq.quantize_linear(X, np.ones((1, 5)), axis=-1), (5,)),
        (lambda: lq.quantize_linear(X, 1.0, axis=0), (3,)),
        (lambda: lq.quantize_linear(X, np.ones((3, 2)), axis=1, block_size=2), (3, 3)),
        (lambda: lq.quantize_linear(X, np.ones((3, 5)), axis=0, block_size=2), (2, 5)),
        (lambda: lq.dequantize_linear(CODES, np.ones(5), axis=0), (3,)),
        (lambda: lq.dequantize_linear(CODES, np.ones((3, 1)), axis=1, block_size=4), (3, 2)),
    ],
)
def test_wrong_scale_shape_says_the_expected_shape(call, expected_shape) -> None:
    with pytest.raises(ValueError, match=re.escape(str(expected_shape))):
        call()


@pytest.mark.parametrize(
    ("call", "expected_shape"),
    [
        (lambda: lq.quantize_linear(X, np.ones(5), np.zeros(3, np.int32), axis=1), (5,)),
        (lambda: lq.quantize_linear(X, np.ones(5), np.zeros((1, 5), np.int8), axis=1), (5,)),
        (
            lambda: lq.quantize_linear(
                X, np.ones((3, 3)), np.zeros((3, 2), np.uint8), axis=1, block_size=2
            ),
            (3, 3),
        ),
        (lambda: lq.dequantize_linear(CODES, np.ones(3), np.zeros(5, np.uint8), axis=0), (3,)),
    ],
)
def test_wrong_zero_point_shape_raises(call, expected_shape) -> None:
    with pytest.raises(ValueError, match=re.escape(str(expected_shape))):
        call()


ALL_FUNCTIONS = {
    "quantize": lambda x, **kw: lq.quantize(x, **kw),
    "minmax": lambda x, **kw: lq.minmax(x, **kw),
    "quantize_linear": lambda x, **kw: lq.quantize_linear(x, 1.0, **kw),
    "dequantize_linear": lambda x, **kw: lq.dequantize_linear(x.astype(np.uint8), 1.0, **kw),
}


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
@pytest.mark.parametrize(
    ("x", "grouping"),
    [
        (X, {"block_size": 2}),  # block_size needs an axis
        (X, {"axis": 1, "block_size": 0}),
        (X, {"axis": 1, "block_size": -2}),
        (X, {"axis": 1, "block_size": True}),
        (X, {"axis": 1, "block_size": 2.0}),
        (X, {"axis": 2}),
        (X, {"axis": -3}),
        (X, {"axis": True}),
        (np.float32(1.5), {"axis": 0}),  # a 0-d x has no axis
        (np.float32(1.5), {"axis": -1}),
    ],
)
def test_bad_axis_or_block_size_raises(function: str, x: np.ndarray, grouping: dict) -> None:
    with pytest.raises(ValueError, match=r"axis|block_size"):
        ALL_FUNCTIONS[function](np.asarray(x), **grouping)


NAN_AT_1_3 = np.where(np.arange(15).reshape(3, 5) == 8, np.nan, X)  # x[1, 3] is NaN


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: lq.quantize(NAN_AT_1_3, axis=1), ["channel 3"]),
        (lambda: lq.quantize(NAN_AT_1_3, axis=-2, scheme="symmetric"), ["channel 1"]),
        (lambda: lq.quantize_linear(NAN_AT_1_3, np.ones(5), axis=1), ["channel 3"]),
        (lambda: lq.minmax(NAN_AT_1_3, axis=0), ["channel 1"]),
        (lambda: lq.quantize(NAN_AT_1_3, axis=1, block_size=2), ["block", "(1, 1)"]),
        (lambda: lq.quantize(NAN_AT_1_3, axis=0, block_size=2), ["block", "(0, 3)"]),
        (
            lambda: lq.quantize_linear(NAN_AT_1_3, np.ones((3, 3)), axis=1, block_size=2),
            ["block", "(1, 1)"],
        ),
        (lambda: lq.minmax(NAN_AT_1_3, axis=1, block_size=3), ["block", "(1, 1)"]),
    ],
)
def test_nan_error_names_the_channel_or_block(call, words: list[str]) -> None:
    with pytest.raises(ValueError, match="NaN") as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_infinite_values_error_names_the_channel() -> None:
    x = np.array([[1.0, 2.0], [np.inf, 0.0]])
    with pytest.raises(ValueError, match="channel 1"):
        lq.quantize(x, axis=0)
    with pytest.raises(ValueError, match=re.escape("block (0, 0)")):
        lq.quantize(x, axis=0, block_size=2)


@pytest.mark.parametrize(
    ("shape", "grouping"),
    [((3, 0), {"axis": 0}), ((0, 3), {"axis": 1}), ((2, 0, 3), {"axis": -1})],
)
def test_minmax_of_an_empty_channel_raises(shape, grouping) -> None:
    """(A block is never empty: there are ceil(n / block_size) of them.)"""
    with pytest.raises(ValueError, match="empty"):
        lq.minmax(np.zeros(shape, np.float32), **grouping)


def test_minmax_with_no_channels_is_empty() -> None:
    lo, hi = lq.minmax(np.zeros((0, 3), np.float32), axis=0)
    assert lo.shape == hi.shape == (0,) and lo.dtype == hi.dtype == np.float32


def test_block_size_larger_than_the_axis_is_one_block() -> None:
    """ONNX allows any positive block_size; one larger than n makes one block per row."""
    x = np.linspace(-3, 5, 12, dtype=np.float32).reshape(3, 4)
    one_block = lq.quantize(x, axis=1, block_size=4)
    for block_size in (5, 2**40):
        huge = lq.quantize(x, axis=1, block_size=block_size)
        decoded = lq.dequantize_linear(
            huge.data, huge.scale, huge.zero_point, axis=1, block_size=block_size
        )
        assert_same(
            ("returns", (huge.data, huge.scale, huge.zero_point, decoded)),
            (
                "returns",
                (one_block.data, one_block.scale, one_block.zero_point, one_block.dequantize()),
            ),
        )


@pytest.mark.parametrize("layout", ["F", "swapped"])
def test_per_block_parameters_in_any_memory_order(backend: str, layout: str) -> None:
    """3-d parameters whose axes after the axis do not merge in memory still work."""
    x = np.random.default_rng(8).normal(size=(6, 3, 8)).astype(np.float32)
    qa = lq.quantize(x, axis=0, block_size=2)

    def arranged(params: np.ndarray) -> np.ndarray:
        if layout == "F":
            return np.asfortranarray(params)
        return np.ascontiguousarray(params.swapaxes(1, 2)).swapaxes(1, 2)

    scale, zero_point = arranged(np.array(qa.scale)), arranged(np.array(qa.zero_point))
    codes = lq.quantize_linear(x, scale, zero_point, axis=0, block_size=2)
    np.testing.assert_array_equal(codes, qa.data)
    decoded = lq.dequantize_linear(codes, scale, zero_point, axis=0, block_size=2)
    np.testing.assert_array_equal(decoded, qa.dequantize())


# --- 5: QuantizedArray ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axis", "block_size"),
    [((4, 6), 1, None), ((4, 6), -1, None), ((4, 6), -2, 3), ((2, 5, 7), 2, 3), ((10,), 0, 4)],
)
@pytest.mark.parametrize(
    "options",
    [
        {"bits": 8},
        {"bits": 3, "include_zero": False},
        {"bits": 16, "include_zero": False},
        {"bits": 8, "scheme": "symmetric"},
        {"bits": 11, "scheme": "symmetric", "narrow_range": True},
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantized_array_records_grouping_and_round_trips(
    shape, axis, block_size, options, dtype
) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 10 + rng.normal(0, 30)).astype(dtype)
    qa = lq.quantize(x, axis=axis, block_size=block_size, **options)
    assert qa.axis == axis % len(shape) and qa.block_size == block_size
    assert f"axis={qa.axis}" in repr(qa)
    assert (f"block_size={block_size}" in repr(qa)) == (block_size is not None)
    assert np.shape(qa.scale) == np.shape(qa.zero_point) == param_shape(shape, axis, block_size)
    for params in (qa.scale, qa.zero_point):
        assert not params.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            params[...] = 1
    scale = broadcast(np.asarray(qa.scale, np.float64), shape, axis, block_size)
    error = np.abs(qa.dequantize().astype(np.float64) - x)
    slack = 4 * np.finfo(np.float32).eps * (np.abs(x) + scale)  # float32 rounding
    assert (error <= scale / 2 + slack).all(), np.max(error / scale)


def test_per_tensor_quantized_array_has_no_grouping() -> None:
    qa = lq.quantize(X)
    assert qa.axis is None and qa.block_size is None
    assert "axis" not in repr(qa) and "block_size" not in repr(qa)


# --- 6: per-slice parameter arithmetic against the scalar functions ----------------------------

SPECIAL_BOUNDS = [0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 1e-45, 1e-40, 3.4e38, -3.4e38, 1e308]


@st.composite
def ranges(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``lo`` and ``hi`` of float32 or float64 ranges: any finite or infinite bounds,
    empty (``lo > hi``), zero (``lo == hi``) and one-ulp ranges, tiny and huge ones, ±0.0."""
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    bound = st.floats(width=8 * dtype.itemsize, allow_nan=False) | st.sampled_from(SPECIAL_BOUNDS)
    relation = st.sampled_from(["any", "equal", "one-ulp", "ordered"])
    triples = draw(st.lists(st.tuples(bound, bound, relation), max_size=12))
    lo, hi = np.empty(len(triples), dtype), np.empty(len(triples), dtype)
    for i, (low, high, how) in enumerate(triples):
        with np.errstate(over="ignore"):  # 1e308 is inf in float32, as is the float after max
            lo[i], hi[i] = low, high
            if how == "equal":
                hi[i] = lo[i]
            elif how == "one-ulp":
                hi[i] = np.nextafter(lo[i], dtype.type(np.inf))
            elif how == "ordered":
                lo[i], hi[i] = min(lo[i], hi[i]), max(lo[i], hi[i])
    return lo, hi


def scalar_loop(
    function: Callable[..., Any], lo: np.ndarray, hi: np.ndarray, dtypes: tuple, *args: Any
) -> Outcome:
    """``function`` on each ``(lo[i], hi[i])`` (numpy scalars), each result stacked in an
    array of its dtype in ``dtypes``."""
    columns: tuple[list[Any], ...] = tuple([] for _ in dtypes)
    for low, high in zip(lo, hi, strict=True):
        try:
            result = function(low, high, *args)
        except Exception as error:  # the exception is the outcome
            return "raises", error
        parts = result if isinstance(result, tuple) else (result,)
        for column, part in zip(columns, parts, strict=True):
            column.append(part)
    for column, dtype in zip(columns, dtypes, strict=True):
        assert all(np.asarray(part).dtype == dtype for part in column)
    return "returns", tuple(np.array(c, d) for c, d in zip(columns, dtypes, strict=True))


@SETTINGS
@given(bounds=ranges(), bits=st.integers(2, 16), include_zero=st.booleans())
def test_asymmetric_params_per_slice_match_scalar(bounds, bits: int, include_zero: bool) -> None:
    lo, hi = bounds
    dtypes = (lo.dtype, np.dtype(np.int32))
    for i in [slice(None), *(slice(i, i + 1) for i in range(len(lo)))]:  # all, then each
        expected = scalar_loop(asymmetric_params, lo[i], hi[i], dtypes, bits, include_zero)
        actual = outcome(
            lambda i=i: asymmetric_params_per_slice(lo[i], hi[i], bits, include_zero, str)
        )
        assert_same(actual, expected)


@SETTINGS
@given(bounds=ranges(), bits=st.integers(2, 16))
def test_symmetric_scale_per_slice_matches_scalar(bounds, bits: int) -> None:
    lo, hi = bounds
    for i in [slice(None), *(slice(i, i + 1) for i in range(len(lo)))]:  # all, then each
        expected = scalar_loop(symmetric_scale, lo[i], hi[i], (lo.dtype,), bits)
        actual = outcome(lambda i=i: (symmetric_scale_per_slice(lo[i], hi[i], bits, str),))
        assert_same(actual, expected)


def test_channels_are_runs_only_where_each_is_contiguous() -> None:
    # Grouping.as_runs: the view the one-read dynamic kernels take. A channel along an axis
    # with nothing before it is one run of a row where its elements (two or more) are
    # contiguous; every other layout is None, so the general path takes it.
    x = np.arange(5 * 3 * 4, dtype=np.float32).reshape(5, 3, 4)
    groups = grouping(x.shape, 0, None)
    assert groups is not None and groups.run_length == 12
    runs = groups.as_runs(x)
    assert runs is not None and np.shares_memory(runs, x)
    np.testing.assert_array_equal(runs, x.reshape(1, -1))
    outer = grouping(x.shape, 1, None)
    assert outer is not None and outer.as_runs(x) is None  # channels of 5 runs each
    for other in (x[::-1], x[:, :, ::2], np.broadcast_to(x[:1], x.shape)):
        assert groups.as_runs(other) is None
    for shape in ((5, 0), (5, 1), (5,)):
        channels = grouping(shape, 0, None)
        assert channels is not None and channels.as_runs(np.zeros(shape, np.float32)) is None

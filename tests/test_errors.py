"""Every row of SPEC §5 (bad input): the exception type, and a message naming the argument."""

from __future__ import annotations

import re

import numpy as np
import pytest

import linquant as lq

X = np.linspace(-3, 5, 12, dtype=np.float32)


def _with_nans() -> np.ndarray:
    x = X.copy().reshape(3, 4)
    x[1, 2] = x[2, 0] = np.nan
    return x


NAN_MESSAGE = re.escape("2 NaN values, the first at index (1, 2)")


@pytest.mark.parametrize(
    "call",
    [
        lambda x: lq.quantize(x),
        lambda x: lq.quantize(x, scheme="symmetric"),
        lambda x: lq.dynamic_quantize_linear(x),
        lambda x: lq.quantize_linear(x, 0.1, 3),
        lambda x: lq.minmax(x),
        lambda x: lq.asymmetric_quantization(x),
    ],
)
def test_nan_raises_with_count_and_first_index(backend: str, call) -> None:
    with pytest.raises(ValueError, match=NAN_MESSAGE):
        call(_with_nans())


def test_nan_zero_quantizes_as_zero_and_leaves_nan_out_of_range(backend: str) -> None:
    x = _with_nans()
    qa = lq.quantize(x, nan="zero")
    clean = np.where(np.isnan(x), 0.0, x).astype(np.float32)
    reference = lq.quantize(clean)
    np.testing.assert_array_equal(qa.data, reference.data)
    assert qa.scale == reference.scale and qa.zero_point == reference.zero_point
    # left out of the range: an all-positive array keeps its range when NaN is added
    x = np.array([np.nan, 2.0, 4.0])
    qa = lq.quantize(x, include_zero=False, nan="zero")
    assert qa.scale == 2.0 / 255
    given = lq.quantize_linear(x, 0.5, 7, nan="zero")
    np.testing.assert_array_equal(given, [7, 11, 15])


@pytest.mark.parametrize("value", [np.inf, -np.inf])
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
def test_inf_with_dynamic_parameters_raises(backend: str, value: float, scheme: str) -> None:
    x = np.array([1.0, value, 2.0], np.float32)
    with pytest.raises(ValueError, match="infinite"):
        lq.quantize(x, scheme=scheme)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
def test_inf_with_given_parameters_saturates(backend: str, dtype: str) -> None:
    info = np.iinfo(dtype)
    q = lq.quantize_linear(np.array([-np.inf, 0.0, np.inf]), 0.25, 0, dtype=dtype)
    np.testing.assert_array_equal(q, [info.min, 0, info.max])


@pytest.mark.parametrize("bits", [17, 0, -3, 8.0, "8", True, None])
def test_bad_bits(backend: str, bits: object) -> None:
    with pytest.raises(ValueError, match="bits"):
        lq.quantize(X, bits=bits)  # type: ignore[arg-type]


def test_bits_wider_than_dtype(backend: str) -> None:
    with pytest.raises(ValueError, match="bits must be an int from 1 to 8"):
        lq.quantize_linear(X, 0.1, dtype="int8", bits=9)


@pytest.mark.parametrize("scheme", ["asym", "", None, "SYMMETRIC"])
def test_bad_scheme(backend: str, scheme: object) -> None:
    with pytest.raises(ValueError, match="scheme"):
        lq.quantize(X, scheme=scheme)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", ["int32", "float32", "uint4", np.int64, "nonsense", None])
def test_bad_code_dtype(backend: str, dtype: object) -> None:
    with pytest.raises(ValueError, match="dtype"):
        lq.quantize_linear(X, 0.1, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float16", "int8", "nonsense", None])
def test_bad_output_dtype(backend: str, dtype: object) -> None:
    with pytest.raises(ValueError, match="dtype"):
        lq.dequantize_linear(np.zeros(3, np.uint8), 0.1, dtype=dtype)


@pytest.mark.parametrize("nan", ["ignore", None, "Raise"])
def test_bad_nan_policy(backend: str, nan: object) -> None:
    with pytest.raises(ValueError, match="nan"):
        lq.quantize(X, nan=nan)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [0.0, -1.0, np.nan, np.inf, 1e-50, 1e50, "0.1", [0.1, 0.2], 1j])
def test_bad_scale(backend: str, scale: object) -> None:
    # 1e-50 and 1e50 are not positive and finite once in the float32 working float
    with pytest.raises(ValueError, match="scale"):
        lq.quantize_linear(X, scale)
    with pytest.raises(ValueError, match="scale"):
        lq.dequantize_linear(np.zeros(3, np.uint8), scale)


@pytest.mark.parametrize("zero_point", [1.5, 2.0, "3", np.float32(1), [1, 2], 2**31, -(2**31) - 1])
def test_bad_zero_point(backend: str, zero_point: object) -> None:
    with pytest.raises(ValueError, match="zero_point"):
        lq.quantize_linear(X, 0.1, zero_point)
    with pytest.raises(ValueError, match="zero_point"):
        lq.dequantize_linear(np.zeros(3, np.uint8), 0.1, zero_point)


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 1), (0,), (2,)])
def test_per_tensor_parameters_of_other_shapes_raise(backend: str, shape: tuple[int, ...]) -> None:
    # a scalar or a one-element 1-D array only, as ONNX Runtime (it rejects (1, 1) too)
    codes = np.zeros(3, np.uint8)
    with pytest.raises(ValueError, match="scale must be a real number or a one-element 1-D"):
        lq.quantize_linear(X, np.full(shape, 0.5))
    with pytest.raises(ValueError, match="scale must be a real number or a one-element 1-D"):
        lq.dequantize_linear(codes, np.full(shape, 0.5))
    with pytest.raises(ValueError, match="zero_point must be an integer or a one-element 1-D"):
        lq.quantize_linear(X, 0.5, np.full(shape, 3))
    with pytest.raises(ValueError, match="zero_point must be an integer or a one-element 1-D"):
        lq.dequantize_linear(codes, 0.5, np.full(shape, 3))


@pytest.mark.parametrize(
    ("scale", "zero_point", "match"),
    [
        ([-0.5], 0, "scale must be positive and finite"),
        ([np.nan], 0, "scale must be positive and finite"),
        ([True], 0, "scale must be a real number"),
        (0.5, [1.5], "zero_point must be an integer"),
        (0.5, [True], "zero_point must be an integer"),
        (0.5, np.array([2**31]), "zero_point must fit in int32"),
    ],
)
def test_one_element_parameters_are_checked_as_scalars(
    backend: str, scale: object, zero_point: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        lq.quantize_linear(X, scale, zero_point)
    with pytest.raises(ValueError, match=match):
        lq.dequantize_linear(np.zeros(3, np.uint8), scale, zero_point)


def test_per_axis_zero_point_of_another_shape_raises(backend: str) -> None:
    with pytest.raises(ValueError, match=r"zero_point must be .* or have shape \(4,\)"):
        lq.quantize_linear(X.reshape(3, 4), np.ones(4), np.zeros((1, 1), np.int32), axis=1)


@pytest.mark.parametrize(
    ("out", "error", "match"),
    [
        (np.zeros(12, np.int8), TypeError, "dtype uint8"),
        (np.zeros(13, np.uint8), ValueError, "shape"),
        (np.zeros((3, 4), np.uint8), ValueError, "shape"),
        (np.zeros(12, np.uint8).view(np.dtype("u1")).copy().tolist(), TypeError, "NumPy array"),
    ],
)
def test_bad_out(backend: str, out: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        lq.quantize_linear(X, 0.1, out=out)  # type: ignore[arg-type]


def test_read_only_out_is_not_written(backend: str) -> None:
    out = np.full(12, 7, np.uint8)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        lq.quantize_linear(X, 0.1, out=out)
    np.testing.assert_array_equal(out, 7)


def test_bad_out_of_dequantize(backend: str) -> None:
    with pytest.raises(TypeError, match="dtype float32"):
        lq.dequantize_linear(np.zeros(3, np.uint8), 0.1, out=np.zeros(3, np.float64))
    with pytest.raises(ValueError, match="shape"):
        lq.dequantize_linear(np.zeros(3, np.uint8), 0.1, out=np.zeros(4, np.float32))


def test_out_overlapping_input(backend: str) -> None:
    buffer = np.zeros(16, np.float32)
    with pytest.raises(ValueError, match="overlap"):
        lq.quantize_linear(buffer, 0.1, out=buffer.view(np.uint8)[:16])


@pytest.mark.parametrize(
    "x",
    [
        np.array([True, False]),
        np.arange(4),
        np.arange(4, dtype=np.uint8),
        np.array([1 + 2j]),
        np.array([1.0, None], dtype=object),
        np.array(["a"]),
        [1, 2, 3],
    ],
)
@pytest.mark.parametrize(
    "call",
    [
        lambda x: lq.quantize(x),
        lambda x: lq.quantize_linear(x, 0.1),
        lambda x: lq.dynamic_quantize_linear(x),
        lambda x: lq.minmax(x),
    ],
)
def test_non_float_input_raises_type_error(backend: str, x: object, call) -> None:
    with pytest.raises(TypeError, match="x must be a float16, float32 or float64 array"):
        call(x)


@pytest.mark.parametrize("q", [np.zeros(3, np.int32), np.zeros(3, np.float32), [1, 2]])
def test_bad_codes_raise_type_error(backend: str, q: object) -> None:
    with pytest.raises(TypeError, match="q must be"):
        lq.dequantize_linear(q, 0.1)


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 2, 5)])
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
def test_empty_input(backend: str, shape: tuple[int, ...], scheme: str) -> None:
    for dtype in (np.float16, np.float32, np.float64):
        qa = lq.quantize(np.empty(shape, dtype), bits=12, scheme=scheme)
        assert qa.data.shape == shape
        assert qa.data.dtype == (np.uint16 if scheme == "asymmetric" else np.int16)
        assert qa.scale == 1.0 and qa.zero_point == 0
    assert lq.quantize_linear(np.empty(shape), 0.5, dtype="int8").shape == shape
    assert lq.dequantize_linear(np.empty(shape, np.int16), 0.5).shape == shape
    with pytest.raises(ValueError, match="empty"):
        lq.minmax(np.empty(shape))


def test_zero_dimensional_input(backend: str) -> None:
    qa = lq.quantize(np.float32(-2.5))
    assert qa.data.shape == () and qa.data == 0
    q = lq.quantize_linear(np.array(1.5), 0.5, 1, dtype="int16")
    assert q.shape == () and q == 4
    x_hat = lq.dequantize_linear(q, 0.5, 1)
    assert x_hat.shape == () and x_hat == 1.5


def test_range_overflow(backend: str) -> None:
    x = np.array([-3e38, 3e38], np.float32)
    with pytest.raises(ValueError, match="overflows float32"):
        lq.quantize(x)
    qa = lq.quantize(x, scheme="symmetric")  # max|x| does not overflow
    assert np.isfinite(qa.scale)


def test_zero_point_beyond_int32_without_include_zero(backend: str) -> None:
    x = np.array([1e12, 1e12 + 1e3])
    with pytest.raises(ValueError, match="include_zero=True"):
        lq.quantize(x, include_zero=False)


def test_scheme_only_options(backend: str) -> None:
    with pytest.raises(ValueError, match="include_zero"):
        lq.quantize(X, scheme="symmetric", include_zero=False)
    with pytest.raises(ValueError, match="narrow_range"):
        lq.quantize(X, scheme="asymmetric", narrow_range=True)
    with pytest.raises(ValueError, match="narrow_range"):
        lq.quantize_linear(X, 0.1, dtype="uint8", narrow_range=True)


def test_input_never_modified_and_read_only_input_works(backend: str) -> None:
    x = np.linspace(-100, 300, 50)
    x.flags.writeable = False
    before = x.copy()
    lq.quantize(x)
    lq.quantize(x, scheme="symmetric", bits=3)
    lq.quantize_linear(x, 0.01, 5, dtype="int8")
    np.testing.assert_array_equal(x, before)

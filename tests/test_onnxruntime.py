"""ONNX Runtime as an external oracle: linquant must be bit-identical to it.

Each test builds a one-node ONNX model (opset 21, so that 16-bit codes are allowed), runs it
with ONNX Runtime's CPUExecutionProvider and compares with linquant under every backend:

- ``quantize_linear`` against QuantizeLinear (SPEC §2) for uint8, int8, uint16 and int16;
- ``dequantize_linear`` against DequantizeLinear (SPEC §3), float32 output;
- ``dynamic_quantize_linear`` against DynamicQuantizeLinear (SPEC §4), uint8 codes.

NaN is never fed to ONNX Runtime: linquant raises on it by contract (SPEC §5).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import linquant as lq

# Installed by the `test` extra wherever ONNX Runtime publishes wheels (tests/test_packaging.py
# checks that it is); elsewhere (musl libc, free-threaded CPython outside Linux, macOS x86_64
# from CPython 3.14, 32-bit) these tests skip.
_NO_WHEEL = "ONNX Runtime has no wheel for this platform; see the test extra in pyproject.toml"
ort = pytest.importorskip("onnxruntime", reason=_NO_WHEEL)
onnx = pytest.importorskip("onnx", reason=_NO_WHEEL)
from onnx import TensorProto, ValueInfoProto, helper  # noqa: E402

OPSET = 21
IR_VERSION = 10  # the IR version of opset 21; accepted by every onnxruntime that has it
CODE_DTYPES = ("uint8", "int8", "uint16", "int16")
ONNX_TYPES = {
    "float32": TensorProto.FLOAT,
    "uint8": TensorProto.UINT8,
    "int8": TensorProto.INT8,
    "uint16": TensorProto.UINT16,
    "int16": TensorProto.INT16,
}


# --- ONNX Runtime ----------------------------------------------------------------------------


def _tensor(name: str, dtype: str, scalar: bool = False) -> ValueInfoProto:
    """A graph input or output of ``dtype``: a scalar, or a tensor of any shape."""
    return helper.make_tensor_value_info(name, ONNX_TYPES[dtype], [] if scalar else None)


@functools.cache
def _session(op: str, code_dtype: str) -> ort.InferenceSession:
    """A session running the single node ``op`` on codes of ``code_dtype``."""
    if op == "QuantizeLinear":
        inputs = [_tensor("x", "float32"), _tensor("scale", "float32", True)]
        inputs.append(_tensor("zero_point", code_dtype, True))
        outputs = [_tensor("y", code_dtype)]
    elif op == "DequantizeLinear":
        inputs = [_tensor("x", code_dtype), _tensor("scale", "float32", True)]
        inputs.append(_tensor("zero_point", code_dtype, True))
        outputs = [_tensor("y", "float32")]
    else:  # DynamicQuantizeLinear: uint8 only
        inputs = [_tensor("x", "float32")]
        outputs = [_tensor("y", code_dtype), _tensor("scale", "float32", True)]
        outputs.append(_tensor("zero_point", code_dtype, True))
    node = helper.make_node(op, [v.name for v in inputs], [v.name for v in outputs])
    graph = helper.make_graph([node], op, inputs, outputs)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _ort_run(op: str, code_dtype: str, x: np.ndarray, *params: np.generic) -> list[np.ndarray]:
    session = _session(op, code_dtype)
    names = [v.name for v in session.get_inputs()]
    feeds = dict(zip(names, [x, *(np.asarray(p) for p in params)], strict=True))
    return session.run(None, feeds)


# --- inputs ----------------------------------------------------------------------------------


def _random(seed: int, shape: tuple[int, ...], spread: float) -> np.ndarray:
    """Normal float32 data times ``spread``."""
    return (np.random.default_rng(seed).standard_normal(shape) * spread).astype(np.float32)


def _ties(scale: float, low: int, high: int) -> np.ndarray:
    """``(k + 0.5) * scale`` for k in ``[low, high)``, in float32: halfway cases of x / scale."""
    k = np.arange(low, high, dtype=np.float32)
    return (k + np.float32(0.5)) * np.float32(scale)


def _code_range(dtype: str) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


# (x, scale) pairs for QuantizeLinear.
QUANTIZE_CASES = {
    "normal": (_random(0, (1000,), 3.0), 0.02),
    "normal-2d": (_random(1, (17, 31), 100.0), 0.37),
    "normal-4d": (_random(2, (2, 3, 4, 5), 1.0), 2.0**-7),
    "negative": (-np.abs(_random(3, (500,), 50.0)), 0.3),
    "large": (_random(4, (300,), 1e30), 0.5),
    "near-float32-max": (np.array([3.4e38, -3.4e38, 1e38, -1e38, 1.0], np.float32), 0.01),
    "ties-power-of-two-scale": (_ties(2.0**-3, -70_000, 70_000), 2.0**-3),
    "ties-large-power-of-two-scale": (_ties(2.0**10, -70_000, 70_000), 2.0**10),
    "ties-other-scale": (_ties(0.1, -70_000, 70_000), 0.1),
    "ties-odd-scale": (_ties(3.0, -40_000, 40_000), 3.0),
    "tiny-scale": (_random(5, (400,), 1e-3), 1e-8),
    "subnormal-scale": (_random(6, (400,), 1e-36), 1e-40),
    "infinities": (np.array([np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0], np.float32), 1.0),
    "empty": (np.zeros((0,), np.float32), 0.5),
    "empty-2d": (np.zeros((3, 0), np.float32), 0.5),
    "0-d": (np.array(2.5, np.float32), 1.0),
}

# Zero points of each code type: 0, both ends of the range and an off-centre value.
ZERO_POINTS = {
    "zero": lambda lo, hi: 0,
    "qmin": lambda lo, hi: lo,
    "qmax": lambda lo, hi: hi,
    "off-centre": lambda lo, hi: lo + (hi - lo) // 3,
}


def _zero_point(code_dtype: str, kind: str) -> np.integer:
    """The zero point named ``kind`` in ``ZERO_POINTS``, as a scalar of ``code_dtype``."""
    return np.dtype(code_dtype).type(ZERO_POINTS[kind](*_code_range(code_dtype)))


# Codes and scales for DequantizeLinear; codes are drawn per dtype.
DEQUANTIZE_SCALES = [0.02, 2.0**-3, 0.1, 3.0, 1e-40, 1e35]
DEQUANTIZE_SHAPES = {"full-range": None, "2d": (9, 11), "empty": (0,), "0-d": ()}

# Inputs of DynamicQuantizeLinear (finite, so that the range is).
DYNAMIC_CASES = {
    "normal": _random(10, (1000,), 1.0),
    "normal-2d": _random(11, (13, 7), 25.0),
    "normal-3d": _random(12, (4, 5, 6), 1e-3),
    "positive": np.abs(_random(13, (200,), 4.0)) + np.float32(1.0),
    "negative": -np.abs(_random(14, (200,), 4.0)) - np.float32(1.0),
    "large": _random(15, (300,), 1e37),
    "tiny": _random(16, (300,), 1e-30),
    "ties-unsigned": np.concatenate([np.float32([0.0, 255 / 16]), _ties(2.0**-4, 0, 255)]),
    "ties-signed": np.concatenate([np.float32([-128 / 16, 127 / 16]), _ties(2.0**-4, -128, 127)]),
    "constant-positive": np.full((5, 4), 3.0, np.float32),
    "constant-negative": np.full((7,), -0.1, np.float32),
    "all-zero": np.zeros((6, 2), np.float32),
    "empty": np.zeros((0,), np.float32),
    "empty-2d": np.zeros((2, 0), np.float32),
    "0-d": np.array(-1.5, np.float32),
}


def _codes(dtype: str, shape: tuple[int, ...] | None, seed: int) -> np.ndarray:
    """Every code of ``dtype`` when ``shape`` is None, else random codes of that shape."""
    lo, hi = _code_range(dtype)
    if shape is None:
        return np.arange(lo, hi + 1).astype(dtype)
    return np.random.default_rng(seed).integers(lo, hi, shape, endpoint=True).astype(dtype)


# --- tests: the ``backend`` fixture (tests/conftest.py) runs each under every backend ---------


@pytest.mark.parametrize("zero_point_kind", ZERO_POINTS)
@pytest.mark.parametrize("code_dtype", CODE_DTYPES)
@pytest.mark.parametrize("case", QUANTIZE_CASES)
def test_quantize_linear(backend: str, case: str, code_dtype: str, zero_point_kind: str) -> None:
    x, scale = QUANTIZE_CASES[case]
    scale = np.float32(scale)
    zero_point = _zero_point(code_dtype, zero_point_kind)
    (expected,) = _ort_run("QuantizeLinear", code_dtype, x, scale, zero_point)
    actual = lq.quantize_linear(x, scale, zero_point, dtype=code_dtype)
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected, strict=True)


@pytest.mark.parametrize("scale", DEQUANTIZE_SCALES)
@pytest.mark.parametrize("zero_point_kind", ZERO_POINTS)
@pytest.mark.parametrize("code_dtype", CODE_DTYPES)
@pytest.mark.parametrize("shape", DEQUANTIZE_SHAPES)
def test_dequantize_linear(
    backend: str, shape: str, code_dtype: str, zero_point_kind: str, scale: float
) -> None:
    q = _codes(code_dtype, DEQUANTIZE_SHAPES[shape], seed=7)
    scale = np.float32(scale)
    zero_point = _zero_point(code_dtype, zero_point_kind)
    (expected,) = _ort_run("DequantizeLinear", code_dtype, q, scale, zero_point)
    actual = lq.dequantize_linear(q, scale, zero_point)
    assert actual.dtype == np.float32
    np.testing.assert_array_equal(actual.view(np.uint32), expected.view(np.uint32), strict=True)


@pytest.mark.parametrize("case", DYNAMIC_CASES)
def test_dynamic_quantize_linear(backend: str, case: str) -> None:
    x = DYNAMIC_CASES[case]
    expected_q, expected_scale, expected_zero_point = _ort_run("DynamicQuantizeLinear", "uint8", x)
    q, scale, zero_point = lq.dynamic_quantize_linear(x)
    np.testing.assert_array_equal(q, expected_q, strict=True)
    assert np.float32(scale).tobytes() == expected_scale.astype(np.float32).tobytes()
    assert int(zero_point) == int(expected_zero_point)

"""The public API: result types, ``out=``, ``QuantizedArray``, backends and the demo."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest

import linquant as lq
from linquant._backend import available_backends
from linquant._layout import as_float_input

if TYPE_CHECKING:
    from tests.conftest import PythonRun

X = np.random.default_rng(7).normal(3.0, 20.0, (40, 30)).astype(np.float32)


def test_installed_backend_matches_build() -> None:
    # LINQUANT_DISABLE_CEXT=1 at install time builds no extension; otherwise it must be there,
    # so a build that silently fell back to NumPy fails here.
    disabled = os.environ.get("LINQUANT_DISABLE_CEXT", "0") not in ("", "0")
    expected = ("numpy",) if disabled else ("cython", "numpy")
    assert available_backends() == expected
    if not os.environ.get("LINQUANT_BACKEND"):
        assert lq.get_backend() == expected[0]


def test_set_backend() -> None:
    previous = lq.get_backend()
    try:
        for name in available_backends():
            lq.set_backend(name)
            assert lq.get_backend() == name
        with pytest.raises(ValueError, match="backend must be one of"):
            lq.set_backend("fortran")
    finally:
        lq.set_backend(previous)


def test_backend_environment_variable(python: PythonRun) -> None:
    code = "import linquant; print(linquant.get_backend())"
    assert python(code, LINQUANT_BACKEND="numpy").stdout.strip() == "numpy"
    bad = python(code, LINQUANT_BACKEND="gpu")
    assert bad.stdout.strip() == available_backends()[0]
    assert bad.stderr.count("LINQUANT_BACKEND='gpu' ignored") == 1


def test_result_types(backend: str) -> None:
    q, scale, zero_point = lq.dynamic_quantize_linear(X)
    assert q.dtype == np.uint8 and q.flags.c_contiguous and q.shape == X.shape
    assert type(scale) is np.float32 and type(zero_point) is np.int32
    qa = lq.quantize(X.astype(np.float64), bits=12, scheme="symmetric")
    assert qa.data.dtype == np.int16 and type(qa.scale) is np.float64
    assert qa.dequantize().dtype == np.float32
    assert qa.dequantize("float64").dtype == np.float64
    lo, _ = lq.minmax(X.astype(np.float16))
    assert type(lo) is np.float32 and lo == X.astype(np.float16).min()


def test_dynamic_quantize_linear_is_quantize_uint8(backend: str) -> None:
    q, scale, zero_point = lq.dynamic_quantize_linear(X)
    qa = lq.quantize(X, bits=8, scheme="asymmetric")
    np.testing.assert_array_equal(q, qa.data)
    assert (scale, zero_point) == (qa.scale, qa.zero_point)
    np.testing.assert_array_equal(q, lq.quantize_linear(X, scale, zero_point))


@pytest.mark.parametrize("bits", range(2, 17))
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
def test_codes_cover_the_range_and_error_is_bounded(backend: str, bits: int, scheme: str) -> None:
    qa = lq.quantize(X, bits=bits, scheme=scheme)
    if scheme == "asymmetric":
        qmin, qmax = 0, 2**bits - 1
    else:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    assert qmin <= qa.data.min() and qa.data.max() <= qmax
    assert np.abs(qa.data.astype(np.int32)).max() == qmax  # the extreme value takes the top code
    error = np.abs(qa.dequantize(dtype="float64") - X)
    # half a step, plus the float32 rounding of x / scale (relative 2**-24 of |x|)
    assert error.max() <= qa.scale * 0.5 + np.abs(X).max() * 2.0**-23


def test_narrow_range_drops_the_lowest_code(backend: str) -> None:
    x = np.array([-10.0, 10.0])
    assert lq.quantize(x, scheme="symmetric").data.tolist() == [-127, 127]
    q = lq.quantize_linear(np.array([-1e9, 1e9]), 1.0, dtype="int8", narrow_range=True)
    assert q.tolist() == [-127, 127]
    q = lq.quantize_linear(np.array([-1e9, 1e9]), 1.0, dtype="int16", bits=4, narrow_range=True)
    assert q.tolist() == [-7, 7]


def test_rounding_is_half_to_even_before_the_zero_point(backend: str) -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5], np.float32)
    np.testing.assert_array_equal(lq.quantize_linear(x, 1.0, 3), [3, 5, 5, 3, 1])
    # adding the zero point first would round 0.5 + 3 = 3.5 up to 4


@pytest.mark.parametrize("x", [X, X[0, 0]], ids=["2-d", "0-d"])
@pytest.mark.parametrize(
    ("scale", "zero_point"),
    [
        (0.5, np.array([3], np.uint8)),  # ONNX's own DequantizeLinear int4/uint4 cases
        (np.array([0.5], np.float32), np.int32(3)),
        ([0.5], [3]),
        (np.array([0.5]), np.array([3], np.int64)),
    ],
)
def test_one_element_parameters_are_per_tensor(
    backend: str, x: np.ndarray, scale: object, zero_point: object
) -> None:
    # ONNX takes a scalar or a 1-D tensor of one element for per-tensor parameters; the result
    # has the shape of the input (a 0-d input stays 0-d), as with scalars
    q = lq.quantize_linear(x, scale, zero_point)
    assert q.shape == np.shape(x)
    np.testing.assert_array_equal(q, lq.quantize_linear(x, 0.5, 3))
    back = lq.dequantize_linear(q, scale, zero_point)
    assert back.shape == np.shape(x)
    np.testing.assert_array_equal(back, lq.dequantize_linear(q, 0.5, 3))
    # a one-element zero point is shared along an axis, as one integer is
    per_axis = lq.quantize_linear(X, np.full(30, 0.5), zero_point, axis=1)
    np.testing.assert_array_equal(per_axis, lq.quantize_linear(X, np.full(30, 0.5), 3, axis=1))


def test_include_zero_false_gives_a_tighter_grid(backend: str) -> None:
    x = np.linspace(1000.0, 1001.0, 11)
    tight = lq.quantize(x, include_zero=False)
    assert tight.scale == (1001.0 - 1000.0) / 255
    assert tight.zero_point == np.rint(-1000.0 / tight.scale)
    assert tight.zero_point < 0  # outside the code range, as SPEC §4 allows
    loose = lq.quantize(x)
    assert tight.scale < loose.scale / 1000


def test_out_is_written_in_place(backend: str) -> None:
    out = np.empty((30, 40), np.int8).T  # a Fortran-ordered output works too
    result = lq.quantize_linear(X, 0.25, -3, dtype=np.int8, out=out)
    assert result is out
    np.testing.assert_array_equal(out, lq.quantize_linear(X, 0.25, -3, dtype="int8"))
    back = np.empty(X.shape, np.float64)
    assert lq.dequantize_linear(out, 0.25, -3, dtype=np.float64, out=back) is back
    np.testing.assert_array_equal(back, (out.astype(np.float64) + 3) * 0.25)


def test_quantized_array_is_immutable_and_readable(backend: str) -> None:
    qa = lq.quantize(X, bits=6)
    with pytest.raises(ValueError, match="read-only"):
        qa.data[0, 0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        qa.bits = 4  # type: ignore[misc]
    assert repr(qa).startswith(
        "QuantizedArray(shape=(40, 30), dtype=uint8, bits=6, scheme='asymmetric', scale="
    )
    assert qa.shape == X.shape and qa.dtype == np.uint8
    assert qa.nbytes == X.size + 4 + 4
    assert isinstance(qa, lq.QuantizedArray)


def test_error_metrics(backend: str) -> None:
    x = np.array([1.0, -2.0, 3.0, 4.0])
    x_hat = np.array([1.5, -2.0, 3.0, 3.0])
    metrics = lq.error_metrics(x, x_hat)
    assert metrics["mse"] == pytest.approx((0.25 + 1.0) / 4)
    assert metrics["rmse"] == pytest.approx(np.sqrt(1.25 / 4))
    assert metrics["max_abs_error"] == 1.0
    assert metrics["sqnr_db"] == pytest.approx(10 * np.log10((1 + 4 + 9 + 16) / 1.25))
    assert lq.quantization_error(x, x_hat) == metrics["mse"]
    assert lq.error_metrics(np.zeros(2), np.ones(2))["sqnr_db"] == -np.inf
    with pytest.raises(ValueError, match="same shape"):
        lq.error_metrics(x, x_hat[:3])
    with pytest.raises(ValueError, match="NaN"):
        lq.error_metrics(x, np.full(4, np.nan))


def test_demo_runs_and_backends_agree() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "linquant", "demo", "--size", "20000", "--repeat", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    table = [line for line in lines if line.startswith(("notebook", "uniform"))]
    assert len(table) == 8
    assert all(line.rstrip().endswith("yes") for line in table)
    assert "0.668085  52" in result.stdout  # the notebook's 8-bit asymmetric parameters


def test_cli_usage_error_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "linquant", "frobnicate"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr


class DLPackOnly:
    """A tensor library's array as linquant sees it: DLPack alone, no ``__array__``."""

    def __init__(self, array: np.ndarray, device: tuple[int, int] = (1, 0)) -> None:
        self.array, self.device = array, device

    def __dlpack__(self, **options: object) -> object:
        return self.array.__dlpack__(**options)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device


class ArrayOnly:
    """An object NumPy converts through ``__array__`` (as Arrow's and pandas' do)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.array


def test_tensors_in_host_memory_are_read_through_dlpack_without_a_copy() -> None:
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)[:, ::2]  # strided
    view = as_float_input(DLPackOnly(x))
    assert np.shares_memory(view, x) and np.array_equal(view, x)
    for wrapped in (DLPackOnly(x), ArrayOnly(x)):
        expected = lq.quantize(x, 4, axis=1)
        qa = lq.quantize(wrapped, 4, axis=1)
        assert np.array_equal(qa.data, expected.data) and np.array_equal(qa.scale, expected.scale)
    assert np.array_equal(lq.quantize_linear(DLPackOnly(x), 0.1), lq.quantize_linear(x, 0.1))
    pinned = DLPackOnly(x, (3, 0))  # CUDA's pinned host memory: NumPy reads it
    assert np.array_equal(lq.minmax(pinned), lq.minmax(x))


@pytest.mark.parametrize(("device", "name"), [((2, 1), "cuda:1"), ((8, 0), "metal:0")])
def test_a_tensor_in_device_memory_raises_naming_the_device(
    device: tuple[int, int], name: str
) -> None:
    with pytest.raises(TypeError, match=f"x is in {name} memory"):
        lq.quantize(DLPackOnly(np.ones(3, np.float32), device))


def test_a_pytorch_tensor_is_quantized_in_place_of_a_copy() -> None:
    torch = pytest.importorskip("torch", reason="torch is a benchmark dependency, not a test one")
    t = torch.linspace(-2, 2, 64).reshape(8, 8)
    assert np.shares_memory(as_float_input(t), t.numpy())
    assert np.array_equal(lq.quantize(t, 3).data, lq.quantize(t.numpy(), 3).data)


@pytest.mark.parametrize(
    "settings",
    [{"bits": 8, "axis": 0}, {"bits": 4, "scheme": "symmetric", "axis": 1, "block_size": 4}],
)
def test_to_torch_gives_codes_scale_and_zero_point_over_the_arrays_memory(
    settings: dict[str, object],
) -> None:
    torch = pytest.importorskip("torch", reason="torch is a benchmark dependency, not a test one")
    x = np.random.default_rng(2).standard_normal((6, 8)).astype(np.float32)
    qa = lq.quantize(x, **settings)  # type: ignore[arg-type]
    codes, scale, zero_point = qa.to_torch()
    assert np.shares_memory(codes.numpy(), qa.data) and zero_point.dtype == torch.int32
    expand = (
        (lambda p: p[:, None]) if qa.block_size is None else (lambda p: p.repeat_interleave(4, 1))
    )
    x_hat = (codes.to(scale.dtype) - expand(zero_point)) * expand(scale)
    assert np.array_equal(x_hat.numpy(), qa.dequantize())


def test_to_torch_without_torch_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'linquant\[torch\]'"):
        lq.quantize(np.ones(3)).to_torch()

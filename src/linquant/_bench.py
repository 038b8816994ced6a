"""``linquant bench``: a quick timing of linquant against NumPy by hand, and against ONNX
Runtime and PyTorch when they are installed; every method on the same array in one run.

Ratios are each method's time over linquant's, measured side by side; ``check`` compares each
method's result with linquant's. ``bench/bench_quantize.py`` in the source tree is the full
benchmark (sweeps, thread counts, plots).
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _backend, _threads
from ._api import dequantize_linear, dynamic_quantize_linear, quantize_linear
from ._demo import _median_ms
from ._version import __version__

Method = tuple[str, Callable[[], Any], Callable[[Any], np.ndarray]]


def _same(result: np.ndarray) -> np.ndarray:
    return result


def _numpy_methods(x: np.ndarray, scale: np.float32, zero_point: int) -> dict[str, Method]:
    """The obvious NumPy expressions of SPEC §2-§4 for uint8 (ONNX's operators)."""

    def dynamic() -> np.ndarray:
        lo, hi = min(x.min(), np.float32(0)), max(x.max(), np.float32(0))
        step = (hi - lo) / np.float32(255) if hi > lo else np.float32(1)
        zero = np.clip(np.rint(-lo / step), 0, 255)
        result: np.ndarray = np.clip(np.rint(x / step) + zero, 0, 255).astype(np.uint8)
        return result

    codes = dynamic()
    return {
        "dynamic": ("numpy", dynamic, _same),
        "quantize": (
            "numpy",
            lambda: np.clip(np.rint(x / scale) + zero_point, 0, 255).astype(np.uint8),
            _same,
        ),
        "dequantize": (
            "numpy",
            lambda: (codes.astype(np.float32) - np.float32(zero_point)) * scale,
            _same,
        ),
    }


def _ort_methods(x: np.ndarray, codes: np.ndarray, scale: np.float32, zp: int) -> dict[str, Method]:
    """One-node ONNX models run by ONNX Runtime (needs the onnx package to build them)."""
    onnxruntime = importlib.import_module("onnxruntime")
    onnx = importlib.import_module("onnx")
    helper = onnx.helper

    def session(op: str, inputs: list[tuple[str, int]], outputs: list[int]) -> Any:
        names = ["y", "y_scale", "y_zero_point"][: len(outputs)]
        node = helper.make_node(op, [name for name, _ in inputs], names)
        graph = helper.make_graph(
            [node],
            op,
            [helper.make_tensor_value_info(n, t, ["n"] if n == "x" else []) for n, t in inputs],
            [helper.make_tensor_value_info(n, t, ["n"] if n == "y" else [])
             for n, t in zip(names, outputs, strict=True)],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
        model.ir_version = 10  # that of opset 21
        return onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )

    f32, u8 = onnx.TensorProto.FLOAT, onnx.TensorProto.UINT8
    params = {"scale": np.array(scale), "zero_point": np.array(zp, np.uint8)}
    dynamic = session("DynamicQuantizeLinear", [("x", f32)], [u8, f32, u8])
    quantize = session("QuantizeLinear", [("x", f32), ("scale", f32), ("zero_point", u8)], [u8])
    dequantize = session("DequantizeLinear", [("x", u8), ("scale", f32), ("zero_point", u8)], [f32])

    def first(outputs: Any) -> np.ndarray:
        return np.asarray(outputs[0])

    return {
        "dynamic": ("onnxruntime", lambda: dynamic.run(None, {"x": x}), first),
        "quantize": ("onnxruntime", lambda: quantize.run(None, {"x": x, **params}), first),
        "dequantize": ("onnxruntime", lambda: dequantize.run(None, {"x": codes, **params}), first),
    }


def _torch_methods(
    x: np.ndarray, codes: np.ndarray, scale: np.float32, zp: int
) -> dict[str, Method]:
    """PyTorch's per-tensor quantization on tensors that share the NumPy buffers."""
    torch = importlib.import_module("torch")
    tx, tcodes = torch.from_numpy(x), torch.from_numpy(codes)

    def dynamic() -> Any:
        lo, hi = torch.aminmax(tx)
        lo, hi = torch.clamp(lo, max=0), torch.clamp(hi, min=0)
        step = (hi - lo) / 255
        zero = int(torch.round(torch.clamp(-lo / step, 0, 255)).item())
        return torch.quantize_per_tensor(tx, step.item(), zero, torch.quint8)

    quantized = torch._make_per_tensor_quantized_tensor(tcodes, float(scale), zp)

    def int_repr(result: Any) -> np.ndarray:
        return np.asarray(result.int_repr().numpy())

    return {
        "dynamic": ("torch", dynamic, int_repr),
        "quantize": (
            "torch",
            lambda: torch.quantize_per_tensor(tx, float(scale), zp, torch.quint8),
            int_repr,
        ),
        "dequantize": ("torch", quantized.dequantize, lambda r: np.asarray(r.numpy())),
    }


def _check(result: np.ndarray, expected: np.ndarray) -> str:
    differ = int(np.count_nonzero(result != expected))
    return "ok" if differ == 0 else f"differs in {differ}/{expected.size}"


def run(size: int = 4 * 2**20, repeat: int = 7, seed: int = 0) -> str:
    """The table: for each operation, each method's median time and ratio to linquant's."""
    with warnings.catch_warnings():  # PyTorch deprecates quantized tensors at every creation
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        return _table(size, repeat, seed)


def _table(size: int, repeat: int, seed: int) -> str:
    x = np.random.default_rng(seed).uniform(-50, 150, size).astype(np.float32)
    codes, scale, zero_point = dynamic_quantize_linear(x)
    zp = int(zero_point)
    linquant: dict[str, Method] = {
        "dynamic": ("linquant", lambda: dynamic_quantize_linear(x), lambda r: r[0]),
        "quantize": ("linquant", lambda: quantize_linear(x, scale, zp), _same),
        "dequantize": ("linquant", lambda: dequantize_linear(codes, scale, zp), _same),
    }
    sources = [linquant, _numpy_methods(x, scale, zp)]
    missing = []
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        sources.append(_ort_methods(x, codes, scale, zp))
    else:
        missing.append("onnxruntime (with onnx)")
    if importlib.util.find_spec("torch"):
        sources.append(_torch_methods(x, codes, scale, zp))
    else:
        missing.append("torch")
    lines = [
        f"linquant {__version__} bench: {size:,} float32 values, uint8 codes, median of "
        f"{repeat} runs; backend {_backend.get_backend()}, CPU level "
        f"{_backend.get_cpu_level()}, {_threads.get_num_threads()} threads",
    ]
    if missing:
        lines.append(f"not installed, left out: {', '.join(missing)}")
    for op in ("dynamic", "quantize", "dequantize"):
        lines += ["", f"{op:<12} {'ms':>9} {'ratio':>7}  check"]
        expected, reference = None, 0.0
        for source in sources:
            name, call, output = source[op]
            result = output(call())
            ms = _median_ms(call, (), repeat)
            if expected is None:
                expected, reference = result, ms
            lines.append(f"{name:<12} {ms:9.3f} {ms / reference:7.2f}  {_check(result, expected)}")
    return "\n".join(lines)

"""``linquant bench``: a quick timing of linquant against NumPy by hand, and against ONNX
Runtime and PyTorch when they are installed, all on the same array.

Each method (one operation by one library) is timed in a process of its own, a child
``python -m linquant._bench`` that generates the array from the seed: in a shared process,
ONNX Runtime's and PyTorch's pool threads spin on after a call and hold a core through
whatever is timed next. The methods take turns for ``rounds`` rounds; each child reports the
median of ``repeat`` timed runs, and the table gives per method the median over the rounds of
those medians, so that the machine's swings fall on every method alike. Ratios are each
method's time over linquant's; ``check`` compares each method's result with linquant's,
computed in the same child. ``bench/bench_quantize.py`` in the source tree is the full
benchmark (sweeps, thread counts, plots); it times the same way, with :func:`measure`,
:func:`in_turns`, :func:`apart` and :func:`onnx_model` from here.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np

from . import _backend, _threads
from ._api import dequantize_linear, dynamic_quantize_linear, quantize_linear
from ._version import __version__

T = TypeVar("T")
Call = Callable[[], Any]
#: the call timed, and its result as the array compared with linquant's
Method = tuple[Call, Callable[[Any], np.ndarray]]

OPS = ("dynamic", "quantize", "dequantize")
#: the modules each source of methods needs
SOURCES: dict[str, tuple[str, ...]] = {
    "linquant": (),
    "numpy": (),
    "onnxruntime": ("onnxruntime", "onnx"),
    "torch": ("torch",),
}
ONNX_OPS = {
    "dynamic": "DynamicQuantizeLinear",
    "quantize": "QuantizeLinear",
    "dequantize": "DequantizeLinear",
}
MIN_BATCH_S = 2e-3


# --- shared with bench/bench_quantize.py and bench/bench_groups.py ------------------------


def measure(call: Call, repeats: int, min_batch_s: float) -> tuple[float, Any]:
    """Median seconds per call over ``repeats`` batches, and the result of one call.

    One warm-up call first; short calls run in batches (doubled until a batch lasts
    ``min_batch_s``) so that the clock's resolution and overhead do not count.
    """
    result = call()
    number = 1
    while _time_batch(call, number) < min_batch_s:
        number *= 2
    times = [_time_batch(call, number) / number for _ in range(repeats)]
    return statistics.median(times), result


def _time_batch(call: Call, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        call()
    return time.perf_counter() - start


def in_turns(jobs: Sequence[T], rounds: int) -> Iterator[T]:
    """Every job once a round for ``rounds`` rounds; each round starts one job further on, so
    that a job follows a different one from round to round."""
    for turn in range(rounds):
        start = turn % len(jobs) if jobs else 0
        yield from jobs[start:]
        yield from jobs[:start]


class ChildFailed(Exception):
    """A child process of :func:`apart` exited with an error; the message ends its stderr."""


def apart(command: list[str]) -> dict[str, Any]:
    """Run ``command``, a child that prints a JSON object as its last line; return the object."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ChildFailed(f"exit status {done.returncode}: {last}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def onnx_model(op_type: str) -> bytes:
    """A model of one ONNX ``op_type`` node (the three of ONNX's uint8 quantization, opset 21)
    on 1-D input, serialized (building it needs the onnx package)."""
    onnx = importlib.import_module("onnx")
    helper, f32, u8 = onnx.helper, onnx.TensorProto.FLOAT, onnx.TensorProto.UINT8
    params: list[tuple[str, int, list[str]]] = [("scale", f32, []), ("zero_point", u8, [])]
    inputs, outputs = {
        "DynamicQuantizeLinear": (
            [("x", f32, ["n"])],
            [("y", u8, ["n"]), ("y_scale", f32, []), ("y_zero_point", u8, [])],
        ),
        "QuantizeLinear": ([("x", f32, ["n"]), *params], [("y", u8, ["n"])]),
        "DequantizeLinear": ([("x", u8, ["n"]), *params], [("y", f32, ["n"])]),
    }[op_type]
    node = helper.make_node(op_type, [n for n, _, _ in inputs], [n for n, _, _ in outputs])
    graph = helper.make_graph(
        [node],
        op_type,
        [helper.make_tensor_value_info(*spec) for spec in inputs],
        [helper.make_tensor_value_info(*spec) for spec in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10  # that of opset 21
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString()
    return serialized


# --- the methods, each built in its child ------------------------------------------------


class Case(NamedTuple):
    """The input array, linquant's dynamic parameters and codes for it, and the ONNX model
    of the operation (built by the parent: the onnx package takes a second to import)."""

    x: np.ndarray
    codes: np.ndarray
    scale: np.float32
    zero_point: int
    model: bytes

    @classmethod
    def make(cls, size: int, seed: int, model: bytes = b"") -> Case:
        x = np.random.default_rng(seed).uniform(-50, 150, size).astype(np.float32)
        codes, scale, zero_point = dynamic_quantize_linear(x)
        return cls(x, codes, np.float32(scale), int(zero_point), model)


def _same(result: np.ndarray) -> np.ndarray:
    return result


def _first(outputs: Any) -> np.ndarray:
    return np.asarray(outputs[0])


def _linquant(op: str, case: Case) -> Method:
    x, codes, scale, zp, _ = case
    if op == "dynamic":
        return lambda: dynamic_quantize_linear(x), _first
    if op == "quantize":
        return lambda: quantize_linear(x, scale, zp), _same
    return lambda: dequantize_linear(codes, scale, zp), _same


def _numpy(op: str, case: Case) -> Method:
    """The obvious NumPy expressions of SPEC §2-§4 for uint8 (ONNX's operators)."""
    x, codes, scale, zp, _ = case

    def dynamic() -> np.ndarray:
        lo, hi = min(x.min(), np.float32(0)), max(x.max(), np.float32(0))
        step = (hi - lo) / np.float32(255) if hi > lo else np.float32(1)
        zero = np.clip(np.rint(-lo / step), 0, 255)
        result: np.ndarray = np.clip(np.rint(x / step) + zero, 0, 255).astype(np.uint8)
        return result

    if op == "dynamic":
        return dynamic, _same
    if op == "quantize":
        return lambda: np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.uint8), _same
    return lambda: (codes.astype(np.float32) - np.float32(zp)) * scale, _same


def _onnxruntime(op: str, case: Case) -> Method:
    """The one-node model of ``op`` run by ONNX Runtime (the only session created)."""
    onnxruntime = importlib.import_module("onnxruntime")
    session = onnxruntime.InferenceSession(case.model, providers=["CPUExecutionProvider"])
    params: dict[str, np.ndarray] = {
        "scale": np.array(case.scale),
        "zero_point": np.array(case.zero_point, np.uint8),
    }
    feeds = {
        "dynamic": {"x": case.x},
        "quantize": {"x": case.x, **params},
        "dequantize": {"x": case.codes, **params},
    }[op]
    return lambda: session.run(None, feeds), _first


def _torch(op: str, case: Case) -> Method:
    """PyTorch's per-tensor quantization on tensors that share the NumPy buffers."""
    torch = importlib.import_module("torch")
    x, scale, zp = torch.from_numpy(case.x), float(case.scale), case.zero_point

    def int_repr(result: Any) -> np.ndarray:
        return np.asarray(result.int_repr().numpy())

    def dynamic() -> Any:
        lo, hi = torch.aminmax(x)
        lo, hi = torch.clamp(lo, max=0), torch.clamp(hi, min=0)
        step = (hi - lo) / 255
        zero = int(torch.round(torch.clamp(-lo / step, 0, 255)).item())
        return torch.quantize_per_tensor(x, step.item(), zero, torch.quint8)

    if op == "dynamic":
        return dynamic, int_repr
    if op == "quantize":
        return lambda: torch.quantize_per_tensor(x, scale, zp, torch.quint8), int_repr
    quantized = torch._make_per_tensor_quantized_tensor(torch.from_numpy(case.codes), scale, zp)
    return quantized.dequantize, lambda result: np.asarray(result.numpy())


METHODS: dict[str, Callable[[str, Case], Method]] = {
    "linquant": _linquant,
    "numpy": _numpy,
    "onnxruntime": _onnxruntime,
    "torch": _torch,
}


def _check(result: np.ndarray, expected: np.ndarray) -> str:
    differ = int(np.count_nonzero(result != expected))
    return "ok" if differ == 0 else f"differs in {differ}/{expected.size}"


def measure_method(
    source: str, op: str, size: int, repeat: int, seed: int, model: bytes = b""
) -> dict[str, Any]:
    """A child's work: the method's median milliseconds and its check against linquant's
    result, computed here before the method is built."""
    case = Case.make(size, seed, model)
    reference, output = _linquant(op, case)
    expected = output(reference())
    with warnings.catch_warnings():  # PyTorch deprecates quantized tensors at every creation
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        call, output = METHODS[source](op, case)
        seconds, result = measure(call, repeat, MIN_BATCH_S)
    return {"ms": seconds * 1e3, "check": _check(output(result), expected)}


# --- the table ---------------------------------------------------------------------------


def run(size: int = 4 * 2**20, repeat: int = 7, seed: int = 0, rounds: int = 3) -> str:
    """The table: for each operation, each method's time and ratio to linquant's."""
    sources = [s for s, needs in SOURCES.items() if all(map(importlib.util.find_spec, needs))]
    missing = [
        needs[0] + "".join(f" (with {n})" for n in needs[1:])
        for source, needs in SOURCES.items()
        if source not in sources
    ]
    models = {op: onnx_model(ONNX_OPS[op]) for op in OPS} if "onnxruntime" in sources else {}
    jobs = [(op, source) for op in OPS for source in sources]
    measured: dict[tuple[str, str], list[dict[str, Any]]] = {job: [] for job in jobs}
    for op, source in in_turns(jobs, rounds):
        model = models[op].hex() if source == "onnxruntime" else ""
        command = [sys.executable, "-m", "linquant._bench", source, op]
        command += [str(size), str(repeat), str(seed), model]
        try:
            measured[op, source].append(apart(command))
        except ChildFailed as error:
            measured[op, source].append({"check": f"failed: {error}"})
    lines = [
        f"linquant {__version__} bench: {size:,} float32 values, uint8 codes; backend "
        f"{_backend.get_backend()}, CPU level {_backend.get_cpu_level()}, "
        f"{_threads.get_num_threads()} threads",
        f"each method in a process of its own: median over {rounds} rounds of its median of "
        f"{repeat} runs; ratio = time / linquant's",
    ]
    if missing:
        lines.append(f"not installed, left out: {', '.join(missing)}")
    for op in OPS:
        lines += ["", f"{op:<12} {'ms':>9} {'ratio':>7}  check"]
        reference = None
        for source in sources:
            results = measured[op, source]
            times = [result["ms"] for result in results if "ms" in result]
            ms = statistics.median(times) if times else None
            if source == "linquant":
                reference = ms
            time_text = f"{ms:9.3f}" if ms is not None else f"{'-':>9}"
            ratio = f"{ms / reference:7.2f}" if ms is not None and reference else f"{'-':>7}"
            checks = "; ".join(dict.fromkeys(result["check"] for result in results))
            lines.append(f"{source:<12} {time_text} {ratio}  {checks}")
    return "\n".join(lines)


if __name__ == "__main__":  # a child of run(): SOURCE OP SIZE REPEAT SEED MODEL (hex)
    source, op, size, repeat, seed, model = sys.argv[1:]
    result = measure_method(source, op, int(size), int(repeat), int(seed), bytes.fromhex(model))
    print(json.dumps(result))

"""Per-axis and per-block quantization: linquant against ONNX Runtime and PyTorch.

Cases (float32, uniform in [-50, 150], fixed seed): per-axis on a 4096x4096 array along
axis 0 and axis 1, and per-block with blocks of 32 and 128 along the last axis of the same
16M values. For each: linquant's ``quantize_linear`` with given parameters (uint8 zero
points, and the one integer 0 checked against the NumPy backend), ONNX Runtime
QuantizeLinear with the same ``axis``/``block_size`` (opset 21), ``torch.quantize_per_channel``
(per-axis only), linquant's dynamic ``quantize`` (parameters from the data), and per-tensor
``quantize_linear`` as the one-pass reference.

Each method is measured in a process of its own (median of ``--repeats`` calls), and the
methods take turns for ``--rounds`` rounds; the table gives the median over the rounds. In one
process, ONNX Runtime's and PyTorch's pool threads, which spin on after a run, held a core
through the calls measured next to them (per-tensor went from 1.6 to 2.2-3.5 ms at 2
threads, dynamic blocks of 128 from 2.9 to 3.2 at 1), and rounds in turn spread the
machine's own swings over all methods alike.

    python bench/bench_groups.py [--threads 1,2] [--repeats 7] [--rounds 3] [--side 4096]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from bench_quantize import compare

import linquant as lq
from linquant._bench import apart, in_turns, measure

CASES = [
    ("axis 0", 0, None),
    ("axis 1", 1, None),
    ("blocks of 32", 1, 32),
    ("blocks of 128", 1, 128),
]


def ort_quantize(axis: int, block_size: int | None, threads: int) -> Callable[..., Any] | None:
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    attributes: dict[str, int] = {"axis": axis}
    if block_size is not None:
        attributes["block_size"] = block_size
    node = helper.make_node("QuantizeLinear", ["x", "scale", "zero_point"], ["y"], **attributes)
    graph = helper.make_graph(
        [node],
        "QuantizeLinear",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("zero_point", TensorProto.UINT8, None),
        ],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return lambda x, s, z: session.run(None, {"x": x, "scale": s, "zero_point": z})[0]


def torch_per_channel(axis: int, threads: int) -> Callable[..., Any] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)  # deprecated

    def call(x: np.ndarray, s: np.ndarray, z: np.ndarray) -> np.ndarray:
        q = torch.quantize_per_channel(
            torch.from_numpy(x), torch.from_numpy(s.astype(np.float64)),
            torch.from_numpy(z.astype(np.int64)), axis, torch.quint8,
        )  # fmt: skip
        return q.int_repr().numpy()

    return call


METHODS = (
    "linquant given",
    "linquant given zero_point=0",
    "linquant dynamic",
    "linquant per-tensor",
    "onnxruntime",
    "torch per_channel",
)


def method(name: str, axis: int, block_size: int | None, threads: int) -> Callable[..., Any] | None:
    """The call measured as ``name`` (None where it is not available or does not apply)."""
    groups = {"axis": axis, "block_size": block_size}
    if name == "linquant given":
        return lambda x, s, z: lq.quantize_linear(x, s, z, **groups)
    if name == "linquant given zero_point=0":  # the common symmetric call: one integer
        return lambda x, s, z: lq.quantize_linear(x, s, 0, **groups)
    if name == "linquant dynamic":
        return lambda x, s, z: lq.quantize(x, **groups).data
    if name == "linquant per-tensor":
        return lambda x, s, z: lq.quantize_linear(x, 0.78, 64)
    if name == "onnxruntime":
        return ort_quantize(axis, block_size, threads)
    return torch_per_channel(axis, threads) if block_size is None else None


def measure_one(case: int, name: str, threads: int, repeats: int, side: int) -> dict[str, Any]:
    """Seconds per call of one method on one case, and its check against linquant's codes."""
    _, axis, block_size = CASES[case]
    x = np.random.default_rng(20240601).uniform(-50, 150, (side, side)).astype(np.float32)
    qa = lq.quantize(x, axis=axis, block_size=block_size)
    scale, zero_point = qa.scale.astype(np.float32), qa.zero_point.astype(np.uint8)
    lq.set_num_threads(threads)
    call = method(name, axis, block_size, threads)
    if call is None:
        return {}
    seconds, result = measure(lambda: call(x, scale, zero_point), repeats, 0.05)
    expected = qa.data
    if name == "linquant given zero_point=0":
        lq.set_backend("numpy")
        expected = call(x, scale, zero_point)
        lq.set_backend("cython")
    check = compare(np.asarray(result), expected) if "per-tensor" not in name else ""
    return {"seconds": seconds, "check": check}


def measure_apart(case: int, name: str, threads: int, options: argparse.Namespace) -> Any:
    """measure_one in a process of its own."""
    command = [sys.executable, __file__, "--measure", f"{case},{name},{threads}"]
    command += ["--repeats", str(options.repeats), "--side", str(options.side)]
    return apart(command)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--side", type=int, default=4096, help="the array is side x side")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # CASE,METHOD,THREADS: one, apart
    options = parser.parse_args(argv)
    if options.measure:
        case, name, threads = options.measure.split(",")
        print(json.dumps(measure_one(int(case), name, int(threads), options.repeats, options.side)))
        return
    threads = [int(t) for t in options.threads.split(",")]
    print(
        f"linquant {lq.__version__} ({lq.get_backend()}, {lq.get_cpu_level()}); "
        f"({options.side}, {options.side}) float32; median of {options.rounds} rounds of "
        f"{options.repeats} calls, each method in a process of its own; ms; /given and "
        "/tensor = time / linquant given's and per-tensor's at that thread count; "
        f"speedup = {threads[0]}-thread time / {threads[-1]}-thread time"
    )
    for case, (label, _, _) in enumerate(CASES):
        heading = "".join(f"{n} thr ms  /given /tensor check  " for n in threads)
        print(f"\n{label:<28}{heading}" + ("speedup" if len(threads) > 1 else ""))
        rows: dict[str, list[str]] = {}
        medians: dict[str, list[float]] = {}
        for n in threads:
            times: dict[str, list[float]] = {}
            checks: dict[str, str] = {}
            for name in in_turns(METHODS, options.rounds):
                measured = measure_apart(case, name, n, options)
                if measured:
                    times.setdefault(name, []).append(measured["seconds"])
                    checks[name] = measured["check"]
            given = statistics.median(times["linquant given"])
            tensor = statistics.median(times["linquant per-tensor"])
            for name in METHODS:
                if name in times:
                    seconds = statistics.median(times[name])
                    medians.setdefault(name, []).append(seconds)
                    rows.setdefault(name, []).append(
                        f"{seconds * 1e3:9.3f} {seconds / given:7.2f} {seconds / tensor:7.2f} "
                        f"{checks[name]:>5}"
                    )
        for name, cells in rows.items():
            speedup = medians[name][0] / medians[name][-1] if len(threads) > 1 else None
            print(f"{name:<28}" + "  ".join(cells) + (f"  {speedup:7.2f}" if speedup else ""))


if __name__ == "__main__":
    main()

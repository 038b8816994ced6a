"""Per-axis and per-block quantization: linquant against ONNX Runtime and PyTorch.

Cases (float32, uniform in [-50, 150], fixed seed): per-axis on a 4096x4096 array along
axis 0 and axis 1, and per-block with blocks of 32 and 128 along the last axis of the same
16M values. For each: linquant's ``quantize_linear`` with given parameters, ONNX Runtime
QuantizeLinear with the same ``axis``/``block_size`` (opset 21), ``torch.quantize_per_channel``
(per-axis only), linquant's dynamic ``quantize`` (parameters from the data), and per-tensor
``quantize_linear`` as the one-pass reference. Median of ``--repeats`` runs, all in one
process, at each thread count.

    python bench/bench_groups.py [--threads 1,2] [--repeats 7] [--side 4096]
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from bench_quantize import compare, measure

import linquant as lq

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--side", type=int, default=4096, help="the array is side x side")
    options = parser.parse_args(argv)
    x = np.random.default_rng(20240601).uniform(-50, 150, (options.side,) * 2).astype(np.float32)
    threads = [int(t) for t in options.threads.split(",")]
    print(
        f"linquant {lq.__version__} ({lq.get_backend()}, {lq.get_cpu_level()}); {x.shape} "
        f"float32; median of {options.repeats}; ms, ratio = time / linquant given"
    )
    for label, axis, block_size in CASES:
        qa = lq.quantize(x, axis=axis, block_size=block_size)
        scale, zero_point = qa.scale.astype(np.float32), qa.zero_point.astype(np.uint8)
        print(f"\n{label:<28}" + "".join(f"{n} thr ms  ratio  " for n in threads))
        rows: dict[str, list[str]] = {}
        for n in threads:
            lq.set_num_threads(n)
            groups = {"axis": axis, "block_size": block_size}
            methods: dict[str, Callable[..., Any] | None] = {
                "linquant given": lambda x, s, z, g=groups: lq.quantize_linear(x, s, z, **g),
                "onnxruntime": ort_quantize(axis, block_size, n),
                "torch per_channel": torch_per_channel(axis, n) if block_size is None else None,
                "linquant dynamic": lambda x, s, z, g=groups: lq.quantize(x, **g).data,
                "linquant per-tensor": lambda x, s, z: lq.quantize_linear(x, 0.78, 64),
            }
            base = None
            for name, call in methods.items():
                if call is None:
                    continue
                args = (x, scale, zero_point)
                seconds, result = measure(lambda c=call, a=args: c(*a), options.repeats, 0.05)
                base = base or seconds
                check = compare(np.asarray(result), qa.data) if "per-tensor" not in name else ""
                rows.setdefault(name, []).append(
                    f"{seconds * 1e3:8.3f} {seconds / base:6.2f}  {check:>4}"
                )
        for name, cells in rows.items():
            print(f"{name:<28}" + "  ".join(cells))


if __name__ == "__main__":
    main()

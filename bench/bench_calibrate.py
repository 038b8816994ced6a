"""Calibration (SPEC §10): linquant's histogram calibrations against a ``minmax`` pass, ONNX
Runtime's ``HistogramCollector`` and PyTorch's ``HistogramObserver``, on the same array.

16M float32 values (normal, fixed seed, and two outliers at 40 and -25) as a square array.
Each method calibrates the whole array in one call: linquant's ``lq.calibrate`` (its
``"minmax"`` is ``lq.minmax``, the baseline), ONNX Runtime's ``HistogramCollector`` (2048
bins; ``collect`` then ``compute_collection_result``, NumPy, one thread) and PyTorch's
``HistogramObserver`` (2048 bins; a forward call then ``calculate_qparams``). Each method is
measured in a process of its own (median of ``--repeats`` calls; ``--slow-repeats`` for the
others' methods), and the methods take turns for ``--rounds`` rounds; the table gives the
median over the rounds, each time over linquant's ``minmax`` at the same thread count, and
the range the method chose.

    python bench/bench_calibrate.py [--threads 1,2] [--repeats 7] [--slow-repeats 1]
                                    [--rounds 3] [--size N]
    python bench/bench_calibrate.py --plot docs/calibration_sqnr.png

``--plot`` draws instead the SQNR of 8-bit symmetric codes against the clipping range
``[-t, t]`` for the README's example (100k normal values, outliers at 40 and -25), of all
values and of the normal ones alone, with the range each linquant method chooses.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import linquant as lq
from linquant._bench import apart, in_turns, measure

SEED = 20240601
METHODS = [
    ("linquant", "minmax"),
    ("linquant", "percentile"),
    ("linquant", "mse"),
    ("linquant", "entropy"),
    ("onnxruntime", "percentile"),
    ("onnxruntime", "entropy"),
    ("torch", "HistogramObserver"),
]
NEEDS = {"linquant": "linquant", "onnxruntime": "onnxruntime", "torch": "torch"}


def sample(size: int) -> np.ndarray:
    side = int(size**0.5)
    x = np.random.default_rng(SEED).standard_normal((side, side)).astype(np.float32)
    x[0, 0], x[-1, -1] = 40.0, -25.0
    return x


def _onnxruntime(x: np.ndarray, method: str) -> Callable[[], tuple[float, float]]:
    from onnxruntime.quantization.calibrate import HistogramCollector

    def call() -> tuple[float, float]:
        collector = HistogramCollector(method, True, 2048, 128, 99.99, None)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
            collector.collect({"x": x})
            lo, hi = collector.compute_collection_result()["x"][:2]
        return float(lo), float(hi)

    return call


def _torch(x: np.ndarray, threads: int) -> Callable[[], tuple[float, float]]:
    import torch
    from torch.ao.quantization.observer import HistogramObserver

    torch.set_num_threads(threads)
    tensor = torch.from_numpy(x)

    def call() -> tuple[float, float]:
        observer = HistogramObserver(bins=2048, qscheme=torch.per_tensor_symmetric)
        observer(tensor)
        scale, _ = observer.calculate_qparams()
        return -127.5 * float(scale), 127.5 * float(scale)  # its int8 grid's reach

    return call


def measure_one(
    library: str, method: str, threads: int, options: argparse.Namespace
) -> dict[str, Any]:
    x = sample(options.size)
    lq.set_num_threads(threads)
    calls: dict[str, Callable[[], Any]] = {
        "linquant": lambda: lq.calibrate(x, method, scheme="symmetric"),
        "onnxruntime": lambda: _onnxruntime(x, method),
        "torch": lambda: _torch(x, threads),
    }
    if library == "linquant":
        call = (lambda: lq.minmax(x)) if method == "minmax" else calls["linquant"]
        seconds, result = measure(call, options.repeats, 0.05)
    else:
        seconds, result = measure(calls[library](), options.slow_repeats, 0.05)
    lo, hi = (float(v) for v in result)
    return {"seconds": seconds, "range": f"[{lo:.3f}, {hi:.3f}]"}


def plot(path: str) -> None:
    """The SQNR against the clipping range for the README's example, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(100_000), [40.0, -25.0]]).astype(np.float32)
    bulk = slice(0, 100_000)

    def sqnr(t: float, part: slice) -> float:
        scale, zero_point = lq.params_from_range(-t, t, 8, "symmetric")
        codes = lq.quantize_linear(x, scale, zero_point, dtype="int8")
        x_hat = lq.dequantize_linear(codes, scale, zero_point)
        return lq.error_metrics(x[part], x_hat[part])["sqnr_db"]

    thresholds = np.geomspace(1.0, 40.0, 200)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    axes.plot(thresholds, [sqnr(t, slice(None)) for t in thresholds], label="all values")
    axes.plot(thresholds, [sqnr(t, bulk) for t in thresholds], label="without the 2 outliers")
    bottom = axes.get_ylim()[0]
    chosen = {m: float(lq.calibrate(x, m, scheme="symmetric")[1]) for m in lq.Observer.METHODS}
    for k, (method, t) in enumerate(sorted(chosen.items(), key=lambda item: item[1])):
        axes.axvline(t, color="grey", linestyle=":", linewidth=1)
        side = "left" if k % 2 else "right"  # neighbouring lines' labels on either side
        axes.annotate(method, (t, bottom + 1), rotation=90, va="bottom", ha=side)
    axes.set_xscale("log")
    axes.set_xlabel("clipping range ±t (8-bit symmetric)")
    axes.set_ylabel("SQNR, dB")
    axes.set_title("100k N(0, 1) values and outliers at 40 and -25")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--slow-repeats", type=int, default=1, help="for ORT and PyTorch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=16 * 2**20, help="float32 values")
    parser.add_argument("--plot", metavar="PNG", help="draw the SQNR plot instead")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # LIBRARY,METHOD,THREADS
    options = parser.parse_args(argv)
    if options.plot:
        plot(options.plot)
        return
    if options.measure:
        library, method, threads = options.measure.split(",")
        print(json.dumps(measure_one(library, method, int(threads), options)))
        return
    methods = [m for m in METHODS if importlib.util.find_spec(NEEDS[m[0]])]
    missing = sorted({library for library, _ in METHODS} - {library for library, _ in methods})
    threads = [int(t) for t in options.threads.split(",")]
    print(
        f"linquant {lq.__version__} ({lq.get_backend()}, {lq.get_cpu_level()}); "
        f"{options.size} float32 (normal, outliers at 40 and -25), symmetric; median of "
        f"{options.rounds} rounds, each method in a process of its own; ms; /minmax = time / "
        f"lq.minmax's at the same threads" + (f"; not installed: {missing}" if missing else "")
    )
    heading = "".join(f"{n} thr ms   /minmax  " for n in threads)
    print(f"\n{'':<32}{heading}range")
    cells: dict[tuple[str, str], list[str]] = {}
    ranges: dict[tuple[str, str], str] = {}
    for n in threads:
        times: dict[tuple[str, str], list[float]] = {}
        for library, method in in_turns(methods, options.rounds):
            command = [sys.executable, __file__, "--measure", f"{library},{method},{n}"]
            command += ["--repeats", str(options.repeats), "--size", str(options.size)]
            command += ["--slow-repeats", str(options.slow_repeats)]
            measured = apart(command)
            times.setdefault((library, method), []).append(measured["seconds"])
            ranges[library, method] = measured["range"]
        base = statistics.median(times["linquant", "minmax"])
        for key in methods:
            seconds = statistics.median(times[key])
            cells.setdefault(key, []).append(f"{seconds * 1e3:9.2f} {seconds / base:9.2f}  ")
    for library, method in methods:
        print(
            f"{f'{library} {method}':<32}"
            + "".join(cells[library, method])
            + ranges[library, method]
        )


if __name__ == "__main__":
    main()

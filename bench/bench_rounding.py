"""Rounding modes: the time of each against rounding half to even (SPEC §2.1).

16M float32 values (uniform in [-50, 150], fixed seed) to uint8 codes in every rounding mode
(stochastic with a fixed seed), by the compiled backend and by the NumPy backend, whose codes
are the check: per tensor with given parameters (``quantize_linear``), or with ``--grouping``
per axis or per block of the values as a square array, with the given parameters of
``quantize`` or, with ``--dynamic``, by ``quantize`` itself.

Each mode is measured in a process of its own (median of ``--repeats`` calls), and the modes
take turns for ``--rounds`` rounds; the table gives the median over the rounds, and each
mode's time over half to even's at the same thread count.

    python bench/bench_rounding.py [--threads 1,2] [--repeats 7] [--rounds 3] [--size N]
                                   [--grouping axis0|axis1|blocks32|blocks128] [--dynamic]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

import numpy as np
from bench_quantize import compare

import linquant as lq
from linquant._bench import apart, in_turns, measure
from linquant._rounding import MODES

SCALE, ZERO_POINT, SEED = 0.78, 64, 20240601
GROUPINGS: dict[str, dict[str, int]] = {
    "tensor": {},
    "axis0": {"axis": 0},
    "axis1": {"axis": 1},
    "blocks32": {"axis": 1, "block_size": 32},
    "blocks128": {"axis": 1, "block_size": 128},
}


def measure_one(
    mode: str, backend: str, threads: int, options: argparse.Namespace
) -> dict[str, Any]:
    """Seconds per call in one mode on one backend, and the codes' check against NumPy's."""
    x = np.random.default_rng(SEED).uniform(-50, 150, options.size).astype(np.float32)
    groups = GROUPINGS[options.grouping]
    seed = {"seed": 7} if mode == "stochastic" else {}
    scale: Any = SCALE
    zero_point: Any = ZERO_POINT
    if groups:
        side = int(options.size**0.5)
        x = x[: side * side].reshape(side, side)
        qa = lq.quantize(x, **groups)
        scale, zero_point = qa.scale, qa.zero_point.astype(np.uint8)

    def call() -> np.ndarray:
        if options.dynamic:
            return lq.quantize(x, rounding=mode, **groups, **seed).data
        return lq.quantize_linear(x, scale, zero_point, rounding=mode, **groups, **seed)

    lq.set_num_threads(threads)
    lq.set_backend(backend)
    seconds, result = measure(call, options.repeats, 0.05)
    lq.set_backend("numpy")
    return {"seconds": seconds, "check": compare(result, call())}


def measure_apart(mode: str, backend: str, threads: int, options: argparse.Namespace) -> Any:
    """measure_one in a process of its own."""
    command = [sys.executable, __file__, "--measure", f"{mode},{backend},{threads}"]
    command += ["--repeats", str(options.repeats), "--size", str(options.size)]
    command += ["--grouping", options.grouping] + (["--dynamic"] if options.dynamic else [])
    return apart(command)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=16 * 2**20, help="float32 values")
    parser.add_argument("--grouping", choices=list(GROUPINGS), default="tensor")
    parser.add_argument("--dynamic", action="store_true", help="parameters from the data")
    parser.add_argument("--numpy", action="store_true", help="time the NumPy backend too")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # MODE,BACKEND,THREADS: one, apart
    options = parser.parse_args(argv)
    if options.measure:
        mode, backend, threads = options.measure.split(",")
        print(json.dumps(measure_one(mode, backend, int(threads), options)))
        return
    threads = [int(t) for t in options.threads.split(",")]
    backends = ["cython", "numpy"] if options.numpy else ["cython"]
    print(
        f"linquant {lq.__version__} ({lq.get_backend()}, {lq.get_cpu_level()}); "
        f"{options.size} float32 to uint8, {options.grouping}, "
        f"{'dynamic' if options.dynamic else 'given'} parameters; median of {options.rounds} "
        f"rounds of {options.repeats} calls, each mode in a process of its own; ms; "
        "/even = time / half_even's on that backend at that thread count"
    )
    heading = "".join(f"{n} thr ms   /even check  " for n in threads)
    for backend in backends:
        print(f"\n{backend + ' backend':<22}{heading}")
        cells: dict[str, list[str]] = {}
        for n in threads:
            times: dict[str, list[float]] = {}
            checks: dict[str, str] = {}
            for mode in in_turns(MODES, options.rounds):
                measured = measure_apart(mode, backend, n, options)
                times.setdefault(mode, []).append(measured["seconds"])
                checks[mode] = measured["check"]
            even = statistics.median(times["half_even"])
            for mode in MODES:
                seconds = statistics.median(times[mode])
                cells.setdefault(mode, []).append(
                    f"{seconds * 1e3:9.3f} {seconds / even:7.2f} {checks[mode]:>5}"
                )
        for mode in MODES:
            print(f"{mode:<22}" + "  ".join(cells[mode]))


if __name__ == "__main__":
    main()

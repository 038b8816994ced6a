"""GGUF blocks (SPEC §9): ``linquant.gguf`` against a per-tensor ``quantize_linear`` pass and
against the ``gguf`` package's NumPy quantizer, on the same array.

16M float32 values (normal, fixed seed) as a square array, quantized to each GGUF block type
and dequantized back; the baseline is an int8 per-tensor ``lq.quantize_linear`` (and
``lq.dequantize_linear``) of the same array, the pass the block types are held to (issue goal:
Q8_0 and Q4_0 within 1.5x of it). ``gguf.quants`` is single-threaded NumPy; it runs at every
thread count all the same, with ``--gguf-repeats`` calls as it is slow. Each linquant result
is checked against the ``gguf`` package on the first ``CHECK_ROWS`` rows, each ``gguf``
package result against linquant's on the whole array.

Each method is measured in a process of its own (median of its calls), and the methods take
turns for ``--rounds`` rounds; the table gives the median over the rounds and each time over
the baseline's of the same direction and thread count.

    python bench/bench_gguf.py [--threads 1,2] [--repeats 7] [--gguf-repeats 1] [--rounds 3]
                               [--size N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import linquant as lq
import linquant.gguf
from linquant._bench import apart, in_turns, measure

SEED = 20240601
CHECK_ROWS = 64
BASELINE = "int8 per tensor"
#: (library, block type) for each direction; the baseline's library is "linquant"
METHODS = [
    ("linquant", BASELINE),
    *(("linquant", name) for name in linquant.gguf.TYPES),
    ("gguf package", "Q8_0"),
    ("gguf package", "Q4_0"),
]
DIRECTIONS = ("quantize", "dequantize")


def _gguf_package(name: str) -> tuple[Any, Any]:
    """``gguf.quants`` and the ``GGMLQuantizationType`` of block type ``name``."""
    import gguf  # the bench extra; imported in the children that use it

    return gguf.quants, gguf.GGMLQuantizationType[name]


def measure_one(
    direction: str, library: str, name: str, threads: int, options: argparse.Namespace
) -> dict[str, Any]:
    side = int(options.size**0.5) // 32 * 32
    x = np.random.default_rng(SEED).standard_normal((side, side)).astype(np.float32)
    lq.set_num_threads(threads)
    if name == BASELINE:
        scale = np.float32(np.abs(x).max() / 127)
        codes = lq.quantize_linear(x, scale, np.int8(0))
        calls: dict[str, Callable[[], Any]] = {
            "quantize": lambda: lq.quantize_linear(x, scale, np.int8(0)),
            "dequantize": lambda: lq.dequantize_linear(codes, scale, np.int8(0)),
        }
        seconds, _ = measure(calls[direction], options.repeats, 0.05)
        return {"seconds": seconds, "check": "-"}
    blocks = linquant.gguf.quantize(x, name)
    if library == "linquant":
        calls = {
            "quantize": lambda: linquant.gguf.quantize(x, name),
            "dequantize": lambda: linquant.gguf.dequantize(blocks, name),
        }
        seconds, result = measure(calls[direction], options.repeats, 0.05)
        quants, qtype = _gguf_package(name)
        head = x[:CHECK_ROWS]
        expected = {
            "quantize": lambda: quants.quantize(head, qtype),
            "dequantize": lambda: quants.dequantize(blocks[:CHECK_ROWS], qtype),
        }[direction]()
        same = np.array_equal(result[:CHECK_ROWS], expected)
    else:
        quants, qtype = _gguf_package(name)
        calls = {
            "quantize": lambda: quants.quantize(x, qtype),
            "dequantize": lambda: quants.dequantize(blocks, qtype),
        }
        seconds, result = measure(calls[direction], options.gguf_repeats, 0.05)
        ours = blocks if direction == "quantize" else linquant.gguf.dequantize(blocks, name)
        same = np.array_equal(result, ours)
    return {"seconds": seconds, "check": "ok" if same else "DIFF"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gguf-repeats", type=int, default=1, help="for the gguf package")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=16 * 2**20, help="float32 values")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # DIRECTION,LIBRARY,TYPE,THREADS
    options = parser.parse_args(argv)
    if options.measure:
        direction, library, name, threads = options.measure.split(",")
        print(json.dumps(measure_one(direction, library, name, int(threads), options)))
        return
    threads = [int(t) for t in options.threads.split(",")]
    print(
        f"linquant {lq.__version__} ({lq.get_backend()}, {lq.get_cpu_level()}); "
        f"{options.size} float32; median of {options.rounds} rounds, each method in a process "
        f"of its own; ms; /baseline = time / the {BASELINE} quantize_linear or "
        "dequantize_linear call's (same direction, same threads)"
    )
    heading = "".join(f"{n} thr ms  /baseline check  " for n in threads)
    print(f"\n{'':<34}{heading}")
    jobs = [(direction, *method) for direction in DIRECTIONS for method in METHODS]
    cells: dict[tuple[str, str, str], list[str]] = {}
    for n in threads:
        times: dict[tuple[str, str, str], list[float]] = {}
        checks: dict[tuple[str, str, str], str] = {}
        for job in in_turns(jobs, options.rounds):
            command = [sys.executable, __file__, "--measure", ",".join([*job, str(n)])]
            command += ["--repeats", str(options.repeats), "--size", str(options.size)]
            command += ["--gguf-repeats", str(options.gguf_repeats)]
            measured = apart(command)
            times.setdefault(job, []).append(measured["seconds"])
            checks[job] = measured["check"]
        for job in jobs:
            seconds = statistics.median(times[job])
            ratio = seconds / statistics.median(times[job[0], "linquant", BASELINE])
            cells.setdefault(job, []).append(f"{seconds * 1e3:9.3f} {ratio:9.2f} {checks[job]:>5}")
    for direction, library, name in jobs:
        label = f"{direction} {name}" + (f" ({library})" if library != "linquant" else "")
        print(f"{label:<34}" + "  ".join(cells[direction, library, name]))


if __name__ == "__main__":
    main()

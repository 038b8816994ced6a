"""Packed codes (SPEC §8): quantizing straight to packed codes, and back, against the same call
unpacked and against packing by hand with NumPy.

16M float32 values (normal, fixed seed) as a square array, quantized per tensor with
``lq.quantize`` (symmetric) to codes of 4, 2 and 1 bits, packed (``pack=True``) or not, and
dequantized from each; "NumPy packs by hand" is the unpacked call followed by the packing a user
would write (``(q[..., 0::2] & 15) | (q[..., 1::2] << 4)``, ``np.packbits``). Every packed
result is checked against ``lq.pack`` of the unpacked codes.

Each method is measured in a process of its own (median of ``--repeats`` calls), and the
methods take turns for ``--rounds`` rounds; the table gives the median over the rounds and each
time over that of the unpacked call of the same bits and direction.

    python bench/bench_packed.py [--threads 1,2] [--repeats 7] [--rounds 3] [--size N]
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
from linquant._bench import apart, in_turns, measure

SEED = 20240601
BITS = (4, 2, 1)
KINDS = ("quantize", "quantize pack=True", "NumPy packs by hand", "dequantize", "dequantize packed")


def _numpy_pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Packing by hand, as a NumPy user writes it (even last axes only)."""
    if bits == 1:
        return np.packbits(codes > 0, axis=-1)
    u = codes.view(np.uint8) & (2**bits - 1)
    per_byte = 8 // bits
    packed = u[..., 0::per_byte].copy()
    for slot in range(1, per_byte):
        packed |= u[..., slot::per_byte] << (slot * bits)
    return packed


def measure_one(kind: str, bits: int, threads: int, options: argparse.Namespace) -> dict[str, Any]:
    side = int(options.size**0.5) // 8 * 8
    x = np.random.default_rng(SEED).standard_normal((side, side)).astype(np.float32)
    lq.set_num_threads(threads)
    unpacked = lq.quantize(x, bits, "symmetric")
    packed = lq.quantize(x, bits, "symmetric", pack=True)
    calls: dict[str, Callable[[], Any]] = {
        "quantize": lambda: lq.quantize(x, bits, "symmetric").data,
        "quantize pack=True": lambda: lq.quantize(x, bits, "symmetric", pack=True).data,
        "NumPy packs by hand": lambda: _numpy_pack(lq.quantize(x, bits, "symmetric").data, bits),
        "dequantize": unpacked.dequantize,
        "dequantize packed": packed.dequantize,
    }
    seconds, result = measure(calls[kind], options.repeats, 0.05)
    expected = {
        "quantize": unpacked.data,
        "dequantize": unpacked.dequantize(),
        "dequantize packed": unpacked.dequantize(),
    }.get(kind, lq.pack(unpacked.data, bits))
    return {"seconds": seconds, "check": "ok" if np.array_equal(result, expected) else "DIFF"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=16 * 2**20, help="float32 values")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # KIND,BITS,THREADS: one, apart
    options = parser.parse_args(argv)
    if options.measure:
        kind, bits, threads = options.measure.split(",")
        print(json.dumps(measure_one(kind, int(bits), int(threads), options)))
        return
    threads = [int(t) for t in options.threads.split(",")]
    print(
        f"linquant {lq.__version__} ({lq.get_backend()}, {lq.get_cpu_level()}); "
        f"{options.size} float32, symmetric per tensor; median of {options.rounds} rounds of "
        f"{options.repeats} calls, each method in a process of its own; ms; /unpacked = time / "
        "the unpacked call's (same bits, same direction, same threads)"
    )
    heading = "".join(f"{n} thr ms  /unpacked check  " for n in threads)
    print(f"\n{'':<30}{heading}")
    methods = [(kind, bits) for bits in BITS for kind in KINDS]
    cells: dict[tuple[str, int], list[str]] = {}
    for n in threads:
        times: dict[tuple[str, int], list[float]] = {}
        checks: dict[tuple[str, int], str] = {}
        for kind, bits in in_turns(methods, options.rounds):
            command = [sys.executable, __file__, "--measure", f"{kind},{bits},{n}"]
            command += ["--repeats", str(options.repeats), "--size", str(options.size)]
            measured = apart(command)
            times.setdefault((kind, bits), []).append(measured["seconds"])
            checks[kind, bits] = measured["check"]
        for kind, bits in methods:
            base = "dequantize" if kind.startswith("dequantize") else "quantize"
            seconds = statistics.median(times[kind, bits])
            ratio = seconds / statistics.median(times[base, bits])
            cells.setdefault((kind, bits), []).append(
                f"{seconds * 1e3:9.3f} {ratio:9.2f} {checks[kind, bits]:>5}"
            )
    for kind, bits in methods:
        print(f"{f'{bits}-bit {kind}':<30}" + "  ".join(cells[kind, bits]))


if __name__ == "__main__":
    main()

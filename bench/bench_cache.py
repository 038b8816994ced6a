"""The AVX-512 kernels with their input in the cache and from memory, without Python.

Compiles ``cache_harness.c`` (which includes ``src/linquant/_c/lq_kernels.h``) with the flags of
the package's AVX-512 build and times, per 16M float32 values (uniform in [-50, 150], fixed
seed): per-tensor ``quantize_linear``, dynamic per-block ``quantize`` (asymmetric uint8) and
given-parameter blocks. "in L2" runs the kernel over the same 16K values (64 KiB) 1024
times; "memory" runs it once over 16M (64 MiB). The gap between the two is what memory
costs a kernel beyond its compute; per-tensor is the one-pass reference that dynamic blocks
are measured against.

Methods take turns for ``--rounds`` rounds; each entry is the median. Needs a C compiler
and an AVX-512 CPU (``lq.get_cpu_level() == "avx512"``).

    python bench/bench_cache.py [--rounds 9] [--blocks 32,128]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from numpy.ctypeslib import ndpointer

import linquant as lq

HERE = Path(__file__).resolve().parent
TOTAL = 1 << 24  # values per timed call
SIZES = {"in L2": 1 << 14, "memory": TOTAL}
# setup.py's flags for the AVX-512 build: without -ffp-contract=off the compiler may fuse
# the kernels' multiplies and adds.
FLAGS = [
    "-O3",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fopenmp-simd",
    "-mavx512f",
    "-mavx512bw",
    "-mavx512dq",
    "-mavx512vl",
]


def build(directory: str) -> ctypes.CDLL:
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    library = Path(directory) / "cache_harness.so"
    command = [*compiler.split(), *FLAGS, "-shared", "-fPIC", str(HERE / "cache_harness.c")]
    subprocess.run([*command, "-o", str(library)], check=True)
    lib = ctypes.CDLL(str(library))
    floats, codes = ndpointer(np.float32, flags="C"), ndpointer(np.uint8, flags="C")
    size = ctypes.c_ssize_t
    lib.per_tensor_u8.argtypes = [floats, size, size, ctypes.c_float, ctypes.c_int, codes]
    lib.dynamic_blocks_u8.argtypes = [
        floats,
        size,
        size,
        size,
        floats,
        ndpointer(np.int32, flags="C"),
        codes,
    ]
    lib.given_blocks_u8.argtypes = [floats, size, size, size, floats, codes, codes]
    return lib


def aligned_empty(n: int) -> np.ndarray:
    """n uint8 whose data starts on a 64-byte line (for the streaming stores)."""
    raw = np.empty(n + 64, np.uint8)
    offset = -raw.ctypes.data % 64
    return raw[offset : offset + n]


def methods(lib: ctypes.CDLL, n: int, blocks: list[int]) -> dict[str, Callable[[], int]]:
    """Calls that each quantize 16M values: TOTAL // n runs over the same n values."""
    reps = TOTAL // n
    x = np.random.default_rng(20240601).uniform(-50, 150, n).astype(np.float32)
    out = aligned_empty(n)
    scale = np.empty(n // 16, np.float32)
    zero_point = np.empty(n // 16, np.int32)
    calls: dict[str, Callable[[], int]] = {
        "per-tensor": partial(lib.per_tensor_u8, x, reps, n, 0.78, 64, out)
    }
    for block in blocks:
        given = lq.quantize(x, axis=0, block_size=block)
        given_scale = np.ascontiguousarray(given.scale, np.float32)
        given_zero_point = np.ascontiguousarray(given.zero_point, np.uint8)
        calls[f"dynamic {block}"] = partial(
            lib.dynamic_blocks_u8, x, reps, n, block, scale, zero_point, out
        )
        calls[f"given {block}"] = partial(
            lib.given_blocks_u8, x, reps, n, block, given_scale, given_zero_point, out
        )
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--blocks", default="32,128", help="block sizes, comma-separated")
    options = parser.parse_args()
    if lq.get_cpu_level() != "avx512":
        sys.exit(f"needs an AVX-512 CPU; this one runs linquant at {lq.get_cpu_level()}")
    blocks = [int(b) for b in options.blocks.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        lib = build(directory)
        cases = {where: methods(lib, n, blocks) for where, n in SIZES.items()}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(options.rounds):
            for where, calls in cases.items():
                for name, call in calls.items():
                    start = time.perf_counter()
                    if call():
                        sys.exit(f"{name} handed its run back (a NaN or a slow-path scale)")
                    times.setdefault((where, name), []).append(time.perf_counter() - start)
    print(f"ms per 16M float32 values, median of {options.rounds} rounds")
    print(f"{'':16s}" + "".join(f"{where:>10s}" for where in SIZES))
    for name in cases["memory"]:
        row = (statistics.median(times[(where, name)]) * 1e3 for where in SIZES)
        print(f"{name:16s}" + "".join(f"{ms:10.3f}" for ms in row))


if __name__ == "__main__":
    main()

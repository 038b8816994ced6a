"""Coverage-guided fuzzing of ``linquant.gguf.read`` with atheris.

Run it on the seed corpus for a minute::

    python fuzz/fuzz_gguf.py "$(mktemp -d)" fuzz/corpus/gguf -max_total_time=60

libFuzzer adds the inputs it finds to the first directory named: to keep the seeds as they
are, name an empty directory first. ``python fuzz/fuzz_gguf.py --seeds DIR`` writes the seed
corpus to ``DIR``.

Each input is written to a file, read, and every tensor dequantized. The outcomes expected of
any bytes are tensors that dequantize (or say that linquant does not dequantize their type),
or a ValueError whose message starts with the file's path; reading and dequantizing may
allocate no more than a small multiple of the file's size. Anything else propagates, and
atheris reports it with the input that caused it.
"""

from __future__ import annotations

import os
import tempfile

import _main  # a sibling module: fuzz/ is on sys.path
import atheris
import numpy as np

atheris.enabled_hooks.add("str")
with atheris.instrument_imports(include=["linquant"]):
    import linquant.gguf

PATH = os.path.join(tempfile.mkdtemp(prefix="fuzz_gguf."), "input.gguf")
# Dequantized values: 32 float32 (128 bytes) for each Q4_0 block of 18 bytes, about 7 bytes
# a byte; 1 MiB holds the interpreter's own.
ALLOCATION_PER_BYTE = 16
ALLOCATION_FIXED = 2**20
NOT_DEQUANTIZED = "tensors are not dequantized by linquant.gguf"


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as file:
        file.write(data)
    before = _main.allocation_start()
    try:
        tensors = linquant.gguf.read(PATH)
    except ValueError as error:
        if not str(error).startswith(f"{PATH}: "):
            raise
        tensors = {}
    for tensor in tensors.values():
        try:
            values = tensor.dequantize()
        except ValueError as error:
            if NOT_DEQUANTIZED not in str(error):
                raise
            continue
        assert values.dtype == np.float32 and values.shape == tensor.shape
        del values
    _main.check_allocation(before, len(data), ALLOCATION_PER_BYTE, ALLOCATION_FIXED)


def write_seeds(directory: str) -> None:
    """Small GGUF files of each block type, and damaged ones."""
    os.makedirs(directory, exist_ok=True)
    x = np.linspace(-3, 5, 3 * 64, dtype=np.float32).reshape(3, 64)
    for name in linquant.gguf.TYPES:
        tensors = {"w": x, "v": x[0, :32].astype(np.float16), "t.0": x.reshape(1, 3, 64)}
        linquant.gguf.write(os.path.join(directory, f"{name}.gguf"), tensors, name)
    with open(os.path.join(directory, "Q4_0.gguf"), "rb") as file:
        valid = file.read()
    for name, damaged in [("truncated", valid[: len(valid) // 2]), ("header", valid[:40])]:
        with open(os.path.join(directory, f"{name}.gguf"), "wb") as file:
            file.write(damaged)


if __name__ == "__main__":
    _main.run(write_seeds, test_one_input, _main.raw_mutate, trace_memory=True)

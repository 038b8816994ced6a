"""Coverage-guided fuzzing of ``linquant.load_safetensors`` with atheris.

Run it on the seed corpus for a minute::

    python fuzz/fuzz_safetensors.py "$(mktemp -d)" fuzz/corpus/safetensors -max_total_time=60

libFuzzer adds the inputs it finds to the first directory named: to keep the seeds as they
are, name an empty directory first. ``python fuzz/fuzz_safetensors.py --seeds DIR`` writes
the seed corpus to ``DIR``.

Each input is written to a file, read, and every quantized array dequantized. The outcomes
expected of any bytes are tensors (quantized arrays that dequantize in their scale's
float, and arrays), or a
ValueError whose message starts with the file's path; reading and dequantizing may allocate
no more than a small multiple of the file's size. Anything else propagates, and atheris
reports it with the input that caused it.
"""

from __future__ import annotations

import os
import tempfile

import _main  # a sibling module: fuzz/ is on sys.path
import atheris
import numpy as np

atheris.enabled_hooks.add("str")
with atheris.instrument_imports(include=["linquant"]):
    import linquant as lq

PATH = os.path.join(tempfile.mkdtemp(prefix="fuzz_safetensors."), "input.safetensors")
# Dequantized values: 8 float32 (32 bytes) and 8 unpacked codes for each byte of 1-bit
# codes; 1 MiB holds the interpreter's own.
ALLOCATION_PER_BYTE = 64
ALLOCATION_FIXED = 2**20


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as file:
        file.write(data)
    before = _main.allocation_start()
    try:
        tensors = lq.load_safetensors(PATH)
    except ValueError as error:
        if not str(error).startswith(f"{PATH}: "):
            raise
        tensors = {}
    for tensor in tensors.values():
        if isinstance(tensor, lq.QuantizedArray):
            values = tensor.dequantize(np.asarray(tensor.scale).dtype)  # in the scale's float
            assert values.shape == tensor.shape
            del values
        else:
            assert isinstance(tensor, np.ndarray)
    _main.check_allocation(before, len(data), ALLOCATION_PER_BYTE, ALLOCATION_FIXED)


def write_seeds(directory: str) -> None:
    """Small files of quantized arrays of several kinds and plain arrays, and damaged ones."""
    os.makedirs(directory, exist_ok=True)
    x = np.linspace(-3, 5, 3 * 16, dtype=np.float32).reshape(3, 16)
    files = {
        "per_tensor": {"w": lq.quantize(x, 8), "b": x[0]},
        "packed_blocks": {"w": lq.quantize(x, 4, "symmetric", axis=1, block_size=8)},
        "signs": {"s": lq.quantize(x, 1, "symmetric"), "i": np.arange(3)},
        "wide_per_row": {"w": lq.quantize(x.astype(np.float64), 12, axis=0)},
    }
    for name, tensors in files.items():
        lq.save_safetensors(os.path.join(directory, f"{name}.safetensors"), tensors)
    with open(os.path.join(directory, "per_tensor.safetensors"), "rb") as file:
        valid = file.read()
    with open(os.path.join(directory, "truncated.safetensors"), "wb") as file:
        file.write(valid[: len(valid) // 2])


if __name__ == "__main__":
    _main.run(write_seeds, test_one_input, _main.raw_mutate, trace_memory=True)

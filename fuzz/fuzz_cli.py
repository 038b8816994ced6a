"""Coverage-guided fuzzing of the command line's readers with atheris.

Run it on the seed corpus for a minute::

    python fuzz/fuzz_cli.py "$(mktemp -d)" fuzz/corpus/cli -max_total_time=60

libFuzzer adds the inputs it finds to the first directory named: to keep the seeds as they
are, name an empty directory first (``python fuzz/fuzz_cli.py work fuzz/corpus/cli ...``).
``python fuzz/fuzz_cli.py --seeds DIR`` writes the seed corpus to ``DIR``.

Each input is written to a ``.npy`` file, which ``linquant quantize`` memory-maps chunk by
chunk (once in one chunk, once per block in chunks of a few elements), and to a ``.npz``
file, which ``linquant info`` and ``linquant dequantize`` read as a linquant file. Every run
must exit with status 0, or with status 1 and one line ``linquant: error: ...`` on stderr
that names the input or the output; a successful run must give what the in-memory API gives
(``lq.quantize(np.load(...))``, ``lq.load(...).dequantize()``). Anything else (a traceback,
another status, a SystemExit, a result that differs) propagates, and atheris reports it with
the input that caused it.

The mutator also rewrites the ``.npy`` header's text alone, its length field kept right, so
that mutations reach the parsing of the dtype, shape and order; an archive it mutates as
``fuzz_load.py`` does (a member changed, its CRC recomputed), so that mutations reach the
chunked dequantization.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import struct
import tempfile
import zipfile

import _main  # a sibling module: fuzz/ is on sys.path
import atheris

with atheris.instrument_imports(include=["linquant", "numpy.lib.format"]):
    import numpy as np

    import linquant as lq
    from linquant._cli import main

from fuzz_load import mutate as mutate_archive  # a sibling script: fuzz/ is on sys.path

DIRECTORY = tempfile.mkdtemp(prefix="fuzz_cli.")
NPY, NPZ, OUT_NPZ, OUT_NPY = (
    os.path.join(DIRECTORY, name) for name in ("in.npy", "in.npz", "out.npz", "out.npy")
)
QUANTIZE = ["--quiet", "--force"]
PER_BLOCK = ["--axis", "-1", "--block-size", "3", "--chunk-bytes", "24", "--nan", "zero"]
# Chunks of 24 bytes, each rounded by its elements' places in the whole array.
STOCHASTIC = ["--rounding", "stochastic", "--seed", "7"]


def run(*args: str) -> bool:
    """Run the command line on ``args``: True on success, False on a data error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    lines = err.getvalue().splitlines()
    if status == 0 and not lines:
        return True
    named = any(path in err.getvalue() for path in args if path.startswith(DIRECTORY))
    if status == 1 and len(lines) == 1 and lines[0].startswith("linquant: error: ") and named:
        return False
    raise AssertionError(f"{' '.join(args)}: status {status}, stderr {err.getvalue()!r}")


def assert_same(a: lq.QuantizedArray, b: lq.QuantizedArray) -> None:
    """The same codes, parameters (to the bit) and settings."""
    assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape
    np.testing.assert_array_equal(a.data, b.data)
    for name in ("scale", "zero_point"):
        assert np.asarray(getattr(a, name)).tobytes() == np.asarray(getattr(b, name)).tobytes()
    for name in ("bits", "scheme", "axis", "block_size", "source_dtype", "rounding", "seed"):
        assert getattr(a, name) == getattr(b, name), name


def test_one_input(data: bytes) -> None:
    for path in (NPY, NPZ):
        with open(path, "wb") as file:
            file.write(data)
    if run("quantize", NPY, "-o", OUT_NPZ, *QUANTIZE):
        assert_same(lq.load(OUT_NPZ), lq.quantize(np.load(NPY, allow_pickle=False)))
    if run("quantize", NPY, "-o", OUT_NPZ, *QUANTIZE, *PER_BLOCK, *STOCHASTIC):
        x = np.load(NPY, allow_pickle=False)
        expected = lq.quantize(x, axis=-1, block_size=3, nan="zero", rounding="stochastic", seed=7)
        assert_same(lq.load(OUT_NPZ), expected)
    run("info", NPZ)
    if run("dequantize", NPZ, "-o", OUT_NPY, *QUANTIZE):
        qa = lq.load(NPZ)
        dtype = np.float64 if qa.source_dtype == np.float64 else np.float32
        np.testing.assert_array_equal(np.load(OUT_NPY), qa.dequantize(dtype), strict=True)


def _mutated_header(data: bytes, max_size: int) -> bytes | None:
    """``data`` with the text of its ``.npy`` header mutated; None if it has no such header."""
    magic = np.lib.format.MAGIC_PREFIX
    if not data.startswith(magic) or len(data) < len(magic) + 4:
        return None
    major = data[len(magic)]
    length_format = "<H" if major == 1 else "<I"
    start = len(magic) + 2 + struct.calcsize(length_format)
    if len(data) < start:
        return None
    (length,) = struct.unpack_from(length_format, data, len(magic) + 2)
    header, rest = data[start : start + length], data[start + length :]
    header = bytes(atheris.Mutate(header, max(max_size - start - len(rest), 1)))
    if length_format == "<H" and len(header) > 0xFFFF:
        return None
    prefix = data[: len(magic) + 2] + struct.pack(length_format, len(header))
    return (prefix + header + rest)[:max_size]


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """An archive mutated as ``fuzz_load.py`` does; else the ``.npy`` header's text mutated
    half the time, the raw bytes the other half."""
    if data.startswith(b"PK"):
        return mutate_archive(data, max_size, seed)
    if random.Random(seed).random() < 0.5:
        mutated = _mutated_header(data, max_size)
        if mutated is not None:
            return mutated
    return bytes(atheris.Mutate(data, max_size))


def write_seeds(directory: str) -> None:
    """Small ``.npy`` files of each float dtype and layout, a small linquant file, and the
    inputs that found errors: a dtype of sub-arrays, an archive member named with a newline."""
    os.makedirs(directory, exist_ok=True)
    x = np.linspace(-3, 5, 12).reshape(3, 4)
    arrays = {
        "float32": x.astype(np.float32),
        "float64": x,
        "float16": x.astype(np.float16),
        "big_endian": x.astype(">f4"),
        "fortran": np.asfortranarray(x.astype(np.float32)),
        "zero_d": np.float32(2.5),
        "empty": np.zeros((0, 3), np.float32),
    }
    for name, array in arrays.items():
        np.save(os.path.join(directory, f"{name}.npy"), array)
    lq.save(os.path.join(directory, "per_block.npz"), lq.quantize(x, bits=4, axis=1, block_size=3))
    header = b"{'descr': '8f8', 'fortran_order': False, 'shape': (0, 3), }".ljust(117) + b"\n"
    with open(os.path.join(directory, "sub_arrays.npy"), "wb") as file:
        file.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
    with zipfile.ZipFile(os.path.join(directory, "newline.npz"), "w") as archive:
        archive.writestr("a\nb", b"")


if __name__ == "__main__":
    _main.run(write_seeds, test_one_input, mutate)

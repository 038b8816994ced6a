"""Coverage-guided fuzzing of ``lq.load`` with atheris.

Run it on the seed corpus for a minute::

    python fuzz/fuzz_load.py "$(mktemp -d)" fuzz/corpus/load -max_total_time=60

libFuzzer adds the inputs it finds to the first directory named: to keep the seeds as they
are, name an empty directory first (``python fuzz/fuzz_load.py work fuzz/corpus/load ...``).
``python fuzz/fuzz_load.py --seeds DIR`` writes the seed corpus to ``DIR``.

Each input is written to a file and loaded. The outcomes expected of any bytes are a
QuantizedArray that dequantizes (in its scale's float), or a ValueError whose message starts
with the file's path; loading may allocate no more than a small multiple of the file's size.
Anything else (another exception, a ValueError that does not name the file, a larger
allocation) propagates, and atheris reports it with the input that caused it.

Zip members carry CRCs that a flipped byte breaks, so most raw mutations stop at the first
member read. The mutator therefore also rewrites an archive with one member changed and its
CRC recomputed, and changes the metadata's JSON as text.
"""

from __future__ import annotations

import io
import os
import random
import tempfile

import _main  # a sibling module: fuzz/ is on sys.path
import atheris
import numpy as np

# (atheris's RegEx hook is not enabled: its pattern proxy breaks json's match(s, pos).)
atheris.enabled_hooks.add("str")
with atheris.instrument_imports(include=["linquant", "zipfile"]):
    import zipfile

    import linquant as lq

PATH = os.path.join(tempfile.mkdtemp(prefix="fuzz_load."), "input.npz")
# Loading keeps the file's members, native copies of byte-swapped ones, and zero points
# converted to int32 (4 bytes for each 1-byte one); 1 MiB holds the interpreter's own.
ALLOCATION_PER_BYTE = 16
ALLOCATION_FIXED = 2**20


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as file:
        file.write(data)
    qa = None
    before = _main.allocation_start()
    try:
        qa = lq.load(PATH)
    except ValueError as error:
        if not str(error).startswith(f"{PATH}: "):
            raise
    _main.check_allocation(before, len(data), ALLOCATION_PER_BYTE, ALLOCATION_FIXED)
    if qa is not None:  # in the scale's float: a float64 scale may not be one in float32
        qa.dequantize(qa.scale.dtype)


def _mutated_metadata(member: bytes, max_size: int) -> bytes:
    """The ``.npy`` bytes of the metadata with its JSON text mutated."""
    text = str(np.load(io.BytesIO(member), allow_pickle=False))
    mutated = bytes(atheris.Mutate(text.encode(), max(max_size, 2 * len(text))))
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array(mutated.decode("utf-8", "replace")))
    return buffer.getvalue()


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """Raw bytes mutated, or (for an archive) one member mutated and the archive rewritten."""
    chooser = random.Random(seed)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [(info, archive.open(info).read(max_size)) for info in archive.infolist()]
    except Exception:  # not an archive zipfile reads in full: its bytes are all there is
        members = []
    if not members or chooser.random() < 0.25:
        return bytes(atheris.Mutate(data, max_size))
    index = chooser.randrange(len(members))
    info, member = members[index]
    try:
        if info.filename != "metadata.npy" or chooser.random() < 0.25:
            raise ValueError("mutate the bytes")
        member = _mutated_metadata(member, max_size)
    except Exception:  # not a string member numpy reads, or bytes asked for
        member = bytes(atheris.Mutate(member, max(max_size - len(data) + len(member), 1)))
    members[index] = (info, member)
    if chooser.random() < 0.05:
        del members[chooser.randrange(len(members))]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info, member in members:
            archive.writestr(info.filename, member, info.compress_type)
    return buffer.getvalue()[:max_size]


def write_seeds(directory: str) -> None:
    """Small linquant files of each kind, and a few damaged ones."""
    os.makedirs(directory, exist_ok=True)
    x = np.linspace(-3, 5, 24, dtype=np.float32).reshape(4, 6)
    quantized = {
        "per_tensor": lq.quantize(x, bits=8),
        "per_axis": lq.quantize(x, bits=4, scheme="symmetric", axis=0),
        "per_block": lq.quantize(x.astype(np.float64), bits=6, axis=1, block_size=4),
        "bits16": lq.quantize(x.astype(np.float16), bits=16, scheme="symmetric", axis=1),
        "zero_d": lq.quantize(np.float32(2.5), bits=3),
        "empty": lq.quantize(np.zeros((0, 3), np.float32), axis=1, block_size=2),
        "stochastic": lq.quantize(x, bits=5, axis=0, rounding="stochastic", seed=2**64 - 1),
        "packed_3bit": lq.quantize(x, bits=3, axis=1, block_size=4),
        "packed_2bit": lq.quantize(x[:, :5], bits=2),
        "packed_signs": lq.quantize(x, bits=1, scheme="symmetric", axis=0),
    }
    fortran = lq.quantize(x, axis=1)
    quantized["fortran"] = lq.QuantizedArray(
        np.asfortranarray(fortran.data), fortran.scale, fortran.zero_point, 8, "asymmetric", 1
    )
    for name, qa in quantized.items():
        lq.save(os.path.join(directory, f"{name}.npz"), qa)
    with open(os.path.join(directory, "per_block.npz"), "rb") as file:
        valid = file.read()
    flipped = bytearray(valid)
    flipped[len(valid) // 3] ^= 0xFF
    for name, data in [("truncated", valid[: len(valid) // 2]), ("flipped", bytes(flipped))]:
        with open(os.path.join(directory, f"{name}.npz"), "wb") as file:
            file.write(data)
    with zipfile.ZipFile(os.path.join(directory, "per_block.npz")) as source:
        compressed = os.path.join(directory, "deflated.npz")
        with zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                target.writestr(info.filename, source.read(info))


if __name__ == "__main__":
    _main.run(write_seeds, test_one_input, mutate, trace_memory=True)

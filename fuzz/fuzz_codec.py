"""Coverage-guided fuzzing of ``linquant.codec.Linquant().decode`` with atheris.

Run it on the seed corpus for a minute::

    python fuzz/fuzz_codec.py "$(mktemp -d)" fuzz/corpus/codec -max_total_time=60

libFuzzer adds the inputs it finds to the first directory named: to keep the seeds as they
are, name an empty directory first (``python fuzz/fuzz_codec.py work fuzz/corpus/codec ...``).
``python fuzz/fuzz_codec.py --seeds DIR`` writes the seed corpus to ``DIR``.

Each input is decoded as a chunk, unpacked (format versions 1 and 2) or packed (version 3:
codes of 1 to 4 bits, several a byte). The outcomes expected of any bytes are an array of the
shape the chunk says, or a ValueError (a damaged chunk); decoding may allocate no more than
a small multiple of the chunk's size or, for packed chunks, of its number of values (up to 8
a byte). A chunk that decodes must decode to the same values into an ``out`` of its shape,
into a flat ``out`` (there in the chunk's memory order), and with the NumPy backend; a packed
chunk's codes must unpack to its shape, and decode as the unpacked chunk of those codes does.
Anything else (another exception, a difference, a larger allocation) propagates, and atheris
reports it with the input that caused it.

Random bytes rarely get past the header's length check, so the mutator also sets a header
field to a value at an edge (0, 255, 2**63...) and gives the chunk the length its header
then claims.
"""

from __future__ import annotations

import os
import random
import re
import struct
import tracemalloc

import _main  # a sibling module: fuzz/ is on sys.path
import atheris
import numpy as np

with atheris.instrument_imports(include=["linquant"]):
    import linquant as lq
    from linquant._backend import available_backends
    from linquant.codec import Linquant, decode_chunk, encode_chunk

# Version 1 chunks decode to astype: half the inputs take each.
CODECS = (Linquant(), Linquant(astype="float64"))
BACKENDS = available_backends()
# A decoded chunk is at most 8 bytes per value; the NumPy backend's temporaries (codes in
# int64, then in the float, each group's parameters expanded to every element) add up to 36,
# and each backend's result is held while the next is made: 64 per value, or per byte of the
# chunk, whichever is more (a packed chunk holds up to 8 values a byte). 1 MiB holds the
# interpreter's own.
ALLOCATION_PER_BYTE = 64
ALLOCATION_FIXED = 2**20

# Header fields (offset, size), as linquant.codec lays them out; then the shape, 8 bytes a
# dimension from offset 24.
FIELDS = {
    "version": (4, 1),
    "code dtype": (5, 1),
    "scale dtype": (6, 1),
    "ndim": (7, 1),
    "axis": (8, 1),
    "source dtype": (9, 1),
    "order": (10, 1),
    "reserved": (12, 1),
    "block_size": (16, 8),
}
EDGES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 63, 64, 65, 255, 256, 2**16, 2**28, 2**31]
EDGES += [2**32, 2**53 + 1]
EDGES += [2**60 - 1, 2**60, 2**62, 2**63 - 1, 2**63, 2**64 - 1]
CLAIMED_LENGTH = re.compile(r"(\d+) bytes where its header says (\d+)")


def bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_one_input(data: bytes) -> None:
    codec = CODECS[len(data) % 2]
    outcomes: list[np.ndarray | ValueError] = []
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for backend in BACKENDS:
        lq.set_backend(backend)
        try:
            outcomes.append(codec.decode(data))
        except ValueError as error:
            outcomes.append(error)
    peak = tracemalloc.get_traced_memory()[1] - before
    decoded = outcomes[0]
    values = 0 if isinstance(decoded, ValueError) else decoded.size
    if peak > ALLOCATION_PER_BYTE * max(len(data), values) + ALLOCATION_FIXED:
        raise MemoryError(f"decoding {len(data)} bytes ({values} values) allocated {peak}")
    if isinstance(decoded, ValueError):
        if not all(isinstance(other, ValueError) for other in outcomes):
            raise AssertionError(f"only some backends raise {decoded!r}")
        return
    for other in outcomes[1:]:
        if isinstance(other, ValueError) or not bitwise_equal(other, decoded):
            raise AssertionError(f"the backends decode the chunk differently: {other!r}")
    chunk = decode_chunk(data)
    shape = chunk.shape
    if chunk.length is not None:
        check_packed(codec, data, decoded)
    if decoded.shape != shape or decoded.dtype.kind != "f":
        raise AssertionError(f"decoded to {decoded.shape} {decoded.dtype}, chunk shape {shape}")
    out = np.full(shape, np.nan, decoded.dtype)
    if codec.decode(data, out=out) is not out or not bitwise_equal(out, decoded):
        raise AssertionError("decoding into an out of the chunk's shape differs")
    flat = np.full(decoded.size, np.nan, decoded.dtype)
    codec.decode(data, out=flat)
    if not bitwise_equal(flat, decoded.reshape(-1, order="A")):
        raise AssertionError("decoding into a flat out differs from the chunk's memory order")


def check_packed(codec: Linquant, data: bytes, decoded: np.ndarray) -> None:
    """A packed chunk's codes unpack to its shape, and the unpacked chunk of those codes (the
    same header and parameters, version 2) decodes to the same values."""
    chunk = decode_chunk(data)
    codes = chunk.unpacked()
    if codes.shape != chunk.shape or codes.dtype != ("int8" if chunk.format.signed else "uint8"):
        raise AssertionError(f"unpacked to {codes.shape} {codes.dtype}, chunk shape {chunk.shape}")
    if chunk.order == "F":
        codes = np.asfortranarray(codes)
    unpacked = encode_chunk(
        codes,
        chunk.scale,
        chunk.zero_point,
        chunk.axis,
        chunk.block_size,
        dtype=chunk.dtype,
        order=chunk.order,
    )
    if not bitwise_equal(codec.decode(unpacked), decoded):
        raise AssertionError("the packed chunk decodes unlike its codes unpacked")


def _claimed_length(data: bytes) -> int | None:
    """The length the header of ``data`` claims, where that is all that is wrong with it."""
    try:
        decode_chunk(data)
    except ValueError as error:
        match = CLAIMED_LENGTH.search(str(error))
        return None if match is None else int(match[2])
    return len(data)


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """Raw bytes mutated, or one header field set to an edge value and the length fixed."""
    chooser = random.Random(seed)
    if len(data) < 24 or chooser.random() < 0.4:
        return bytes(atheris.Mutate(data, max_size))
    chunk = bytearray(data)
    ndim = chunk[7]
    dimensions = [
        (f"dimension {i}", (24 + 8 * i, 8)) for i in range(ndim) if 32 + 8 * i <= len(chunk)
    ]
    _, (offset, size) = chooser.choice([*FIELDS.items(), *dimensions])
    value = chooser.choice(EDGES) if chooser.random() < 0.7 else chooser.randrange(16)
    chunk[offset : offset + size] = (value % 256**size).to_bytes(size, "little")
    claimed = _claimed_length(bytes(chunk))
    if claimed is not None and claimed <= max_size:
        extra = claimed - len(chunk)
        chunk = chunk[:claimed] + bytes(chooser.getrandbits(8) for _ in range(max(extra, 0)))
    return bytes(chunk[:max_size])


def write_seeds(directory: str) -> None:
    """Small chunks of each kind, and a few damaged ones (and one that claims much, for none)."""
    os.makedirs(directory, exist_ok=True)
    x = np.linspace(-3, 5, 24, dtype=np.float32).reshape(4, 6)
    chunks = {
        "per_tensor": Linquant().encode(x),
        "per_axis": Linquant(bits=4, scheme="symmetric", axis=0).encode(x),
        "per_block": Linquant(bits=6, axis=1, block_size=4).encode(x.astype(np.float64)),
        "fixed_scale": Linquant(scale=0.25, zero_point=3).encode(x),
        "bits16": Linquant(bits=16, scheme="symmetric", axis=1).encode(x),
        "float16": Linquant(bits=5).encode(x.astype(np.float16)),
        "float64": Linquant(bits=12, include_zero=False).encode(x.astype(np.float64)),
        "fortran": Linquant(axis=1).encode(np.asfortranarray(x)),
        "fortran_4d": Linquant().encode(np.asfortranarray(x.reshape(3, 2, 2, 2))),
        "zero_d": Linquant(bits=3).encode(np.array(2.5, np.float32)),
        "empty": Linquant(axis=1, block_size=2).encode(np.zeros((0, 3), np.float32)),
    }
    # format version 1: source dtype and order were padding
    version_1 = bytearray(chunks["per_tensor"])
    version_1[4], version_1[10], version_1[11] = 1, 0, 0
    chunks["version_1"] = bytes(version_1)
    valid = chunks["per_block"]
    chunks["truncated"] = valid[:-5]
    chunks["bad_magic"] = b"LQNX" + valid[4:]
    header = struct.pack("<4sBBBBBBB5xQ", b"LQNT", 2, 1, 2, 2, 0, 2, 0, 1)
    chunks["empty_huge_shape"] = header + struct.pack("<2Q", 2**28, 0)
    # packed chunks (format version 3): every packed format, odd last dimensions
    y = np.linspace(-3, 5, 35, dtype=np.float32).reshape(5, 7)
    chunks |= {
        "packed_uint4": Linquant(bits=4, pack=True).encode(y),
        "packed_int4_bits3_per_block": Linquant(
            bits=3, scheme="symmetric", axis=1, block_size=3, pack=True
        ).encode(y.astype(np.float64)),
        "packed_uint2_per_axis": Linquant(bits=2, axis=0, pack=True).encode(y),
        "packed_int2_fixed": Linquant(scale=0.5, bits=2, scheme="symmetric", pack=True).encode(y),
        "packed_uint1_fortran": Linquant(bits=1, pack=True).encode(np.asfortranarray(y)),
        "packed_int1_float16": Linquant(bits=1, scheme="symmetric", pack=True).encode(
            y.astype(np.float16)
        ),
        "packed_3d": Linquant(bits=4, axis=2, pack=True).encode(y[:4, :6].reshape(2, 2, 6)),
        "packed_empty": Linquant(bits=2, pack=True).encode(np.zeros((3, 0), np.float32)),
    }
    chunks["packed_truncated"] = chunks["packed_uint4"][:-1]
    packed_header = struct.pack("<4sBBBBBBB5xQ", b"LQNT", 3, 5, 2, 2, 0, 2, 0, 1)
    chunks["packed_empty_huge_shape"] = packed_header + struct.pack("<2Q", 2**40, 0)
    zero_scale = bytearray(chunks["per_tensor"])
    zero_scale[40:44] = bytes(4)  # the float32 scale after a 24-byte header and 2 dimensions
    chunks["zero_scale"] = bytes(zero_scale)
    chunks["block_size_2_63"] = valid[:16] + struct.pack("<Q", 2**63) + valid[24:]
    for name, chunk in chunks.items():
        with open(os.path.join(directory, name), "wb") as file:
            file.write(chunk)


if __name__ == "__main__":
    _main.run(write_seeds, test_one_input, mutate, trace_memory=True)

"""GGUF blocks (SPEC §9) against the ``gguf`` package, whose quantizer matches ggml's reference
byte for byte for these types, and GGUF files read back by ``gguf.GGUFReader``.

Every backend, CPU level and thread count gives the same bytes (tests/test_backends.py); the
comparisons here run on the default configuration and on each backend.
"""

from __future__ import annotations

import math
import os
import re
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import linquant as lq
from linquant import _backend
from linquant.gguf import TYPES, dequantize, quantize, read, write

TYPE_NAMES = list(TYPES)


def ggml(name: str) -> object:
    return gguf.GGMLQuantizationType[name]


def half_bytes(value: np.float32) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.array([value], "<f2").view(np.uint8)


def ggml_blocks(x: np.ndarray, name: str) -> np.ndarray:
    """The gguf package's blocks, but where it departs from ggml's C on signed zeros:

    - Q4_0, Q5_0: in a block of zeros ggml keeps its ``max = 0.0f`` (d = 0.0 / -8 = -0.0),
      where the package takes the first element, which may be -0.0 (d = +0.0);
    - Q4_1, Q5_1: ggml's loops keep the first of equal values as min and max, the package's
      ``np.min``/``np.max`` either zero, which changes m and the sign of d = (max - min) / top.
    """
    with np.errstate(all="ignore"):  # it warns of the float16 overflows it makes
        expected = gguf.quants.quantize(x, ggml(name)).copy()
    block = TYPES[name]
    rows = expected.reshape(-1, block.type_size)
    for i, values in enumerate(x.reshape(-1, 32)):
        if block.bits == 8 or (np.any(values) and (not block.affine or np.all(values != 0))):
            continue
        if not block.affine:
            rows[i, :2] = half_bytes(np.float32(-0.0))
            continue
        lo, hi = (values[np.argmax(values == f(values))] for f in (np.min, np.max))
        rows[i, :2] = half_bytes((hi - lo) / np.float32(2**block.bits - 1))
        rows[i, 2:4] = half_bytes(lo)
    return expected


@st.composite
def blocks_of_values(draw: st.DrawFn) -> np.ndarray:
    """float32 rows of blocks: ties (multiples of half a power of two, so that x·id lands on
    k + ½), zeros of both signs, ±a tying for the largest magnitude, and ordinary values at
    scales from float16's underflow to its overflow."""
    rows = draw(st.integers(1, 3))
    blocks = draw(st.integers(1, 3))
    exponent = draw(st.integers(-30, 22))
    kind = draw(st.sampled_from(["ties", "ordinary", "zeros", "pm"]))
    shape = (rows, 32 * blocks)
    if kind == "ties":
        ks = draw(hnp.arrays(np.int32, shape, elements=st.integers(-255, 255)))
        values = ks.astype(np.float64) * 2.0 ** (exponent - 1)
    elif kind == "zeros":
        signs = draw(hnp.arrays(np.bool_, shape))
        values = np.where(signs, -0.0, 0.0)
    else:
        unit = st.floats(-1, 1, width=32, allow_subnormal=False)
        values = draw(hnp.arrays(np.float32, shape, elements=unit)).astype(np.float64)
        values *= 2.0**exponent
        if kind == "pm":  # +a and -a tie for the largest magnitude, in a drawn order
            a = float(np.abs(values).max()) * 2 or 1.0
            first = draw(st.sampled_from([a, -a]))
            values[:, 3], values[:, 20] = first, -first
    return values.astype(np.float32)


def defined(x: np.ndarray) -> bool:
    """Whether ggml's reference defines every block: a scale whose reciprocal is finite
    (blocks of only tiny values have none; the test of errors covers them)."""
    blocks = x.reshape(-1, 32).astype(np.float64)
    spans = np.concatenate(
        [np.abs(blocks).max(axis=1) / 127, np.abs(blocks).max(axis=1) / 16, np.ptp(blocks, 1) / 31]
    )
    return bool(np.all((spans == 0) | (spans > 2.0**-120)))


@settings(max_examples=300, deadline=None)
@given(blocks_of_values(), st.sampled_from(TYPE_NAMES))
def test_blocks_are_ggmls_byte_for_byte(x: np.ndarray, name: str) -> None:
    if not defined(x):
        return
    expected = ggml_blocks(x, name)
    for backend in _backend.available_backends():
        lq.set_backend(backend)
        np.testing.assert_array_equal(quantize(x, name), expected, err_msg=backend)
    lq.set_backend(_backend.available_backends()[0])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TYPE_NAMES), st.data())
def test_dequantize_is_the_gguf_packages(name: str, data: st.DataObject) -> None:
    """Any bytes, NaN and infinite scales included: the same float32 bits."""
    block = TYPES[name]
    stored = data.draw(hnp.arrays(np.uint8, (3, 2 * block.type_size)))
    with np.errstate(all="ignore"):
        expected = gguf.quants.dequantize(stored, ggml(name))
    for backend in _backend.available_backends():
        lq.set_backend(backend)
        values = dequantize(stored, name)
        assert values.dtype == np.float32 and values.shape == (3, 64)
        finite = ~np.isnan(expected)
        np.testing.assert_array_equal(
            values[finite].view(np.uint32), expected[finite].view(np.uint32)
        )
        np.testing.assert_array_equal(np.isnan(values), ~finite)
    lq.set_backend(_backend.available_backends()[0])


def test_the_table_is_ggmls() -> None:
    for name, block in TYPES.items():
        assert block.ggml_type == int(ggml(name))
        assert (block.block_size, block.type_size) == gguf.GGML_QUANT_SIZES[ggml(name)]


@pytest.mark.parametrize("name", TYPE_NAMES)
def test_a_large_array_across_threads(name: str) -> None:
    """One row of 4M values (split between threads along it) and many rows."""
    x = np.random.default_rng(3).standard_normal((1, 1 << 22)).astype(np.float32)
    expected = gguf.quants.quantize(x, ggml(name))
    threads = lq.get_num_threads()
    try:
        for n in (1, 2, 3):
            lq.set_num_threads(n)
            np.testing.assert_array_equal(quantize(x, name), expected)
            np.testing.assert_array_equal(
                quantize(x.reshape(-1, 4096), name),
                expected.reshape(-1, 4096 // 32 * TYPES[name].type_size),
            )
    finally:
        lq.set_num_threads(threads)


def test_float16_and_float64_are_quantized_as_float32() -> None:
    x = np.random.default_rng(4).standard_normal((4, 64))
    for name in TYPE_NAMES:
        np.testing.assert_array_equal(quantize(x, name), quantize(x.astype(np.float32), name))
        half = x.astype(np.float16)
        np.testing.assert_array_equal(
            quantize(half, name), gguf.quants.quantize(half.astype(np.float32), ggml(name))
        )


@pytest.mark.parametrize(
    ("value", "where"),
    [(math.nan, "x[1, 32:64]"), (math.inf, "x[1, 32:64]"), (-math.inf, "x[1, 32:64]")],
)
def test_a_block_ggml_leaves_undefined_raises_naming_it(
    backend: str, value: float, where: str
) -> None:
    x = np.ones((2, 96), np.float32)
    x[1, 40] = value
    for name in TYPE_NAMES:
        with pytest.raises(ValueError, match=f"{re.escape(where)} holds a NaN"):
            quantize(x, name)


def test_an_overflowing_range_or_reciprocal_raises(backend: str) -> None:
    wide = np.zeros((1, 32), np.float32)
    wide[0, :2] = -3e38, 3e38  # max - min overflows float32
    for name in ("Q4_1", "Q5_1"):
        with pytest.raises(ValueError, match=r"x\[0, 0:32\]"):
            quantize(wide, name)
    tiny = np.zeros((1, 32), np.float32)
    tiny[0, 1:] = 1e-40  # d is below 2^-128: 1/d overflows
    for name in TYPE_NAMES:
        with pytest.raises(ValueError, match=r"x\[0, 0:32\]"):
            quantize(tiny, name)


def test_bad_arguments(backend: str) -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        quantize(np.ones((2, 33), np.float32), "Q8_0")
    with pytest.raises(ValueError, match="multiple of 32"):
        quantize(np.float32(1), "Q8_0")
    with pytest.raises(ValueError, match="type must be one of"):
        quantize(np.ones(32, np.float32), "Q3_K")
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        quantize(np.ones(32, np.int32), "Q8_0")
    with pytest.raises(ValueError, match="multiple of 34"):
        dequantize(np.ones(33, np.uint8), "Q8_0")
    with pytest.raises(TypeError, match="uint8"):
        dequantize(np.ones(34, np.int8), "Q8_0")


def test_empty_arrays(backend: str) -> None:
    for name, block in TYPES.items():
        assert quantize(np.ones((0, 64), np.float32), name).shape == (0, 2 * block.type_size)
        assert quantize(np.ones((3, 0), np.float32), name).shape == (3, 0)
        assert dequantize(np.ones((3, 0), np.uint8), name).shape == (3, 0)


# --- files ------------------------------------------------------------------------------------


def tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {
        "token_embd.weight": rng.standard_normal((7, 64)).astype(np.float32),
        "blk.0.attn_q.weight": rng.standard_normal((2, 3, 96)).astype(np.float16),
        "v": rng.standard_normal(32),
    }


@pytest.mark.parametrize("name", TYPE_NAMES)
def test_a_written_file_reads_back_with_the_gguf_package(tmp_path: Path, name: str) -> None:
    path = tmp_path / "model.gguf"
    arrays = tensors()
    write(path, arrays, name)
    reader = gguf.GGUFReader(path)
    assert [t.name for t in reader.tensors] == list(arrays)
    assert int(reader.fields["general.quantization_version"].parts[-1][0]) == 2
    ours = read(path)
    for tensor in reader.tensors:
        x = arrays[tensor.name]
        assert tensor.tensor_type == ggml(name)
        assert tuple(reversed(tensor.shape.tolist())) == x.shape
        np.testing.assert_array_equal(tensor.data, quantize(x, name))
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        np.testing.assert_array_equal(ours[tensor.name].dequantize(), values)
        assert ours[tensor.name].type == name and ours[tensor.name].shape == x.shape


def test_a_file_is_never_overwritten_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write(path, tensors(), "Q8_0")
    assert path.read_bytes() == b"precious"
    write(path, tensors(), "Q8_0", overwrite=True)
    assert set(read(path)) == set(tensors())


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"precious")
    arrays = tensors()
    arrays["last"] = np.full((2, 32), np.nan, np.float32)
    with pytest.raises(ValueError, match=r"last\[0, 0:32\]"):
        write(path, arrays, "Q4_0", overwrite=True)
    assert path.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["model.gguf"]
    with pytest.raises(ValueError, match="at most 4 axes"):
        write(tmp_path / "other.gguf", {"w": np.ones((1, 1, 1, 1, 32))}, "Q8_0")
    assert os.listdir(tmp_path) == ["model.gguf"]


def test_a_bad_file_raises_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    write(path, tensors(), "Q5_1")
    whole = path.read_bytes()
    for damaged in (b"", b"GGUF", whole[:100], b"NOPE" + whole[4:], whole[: len(whole) // 2]):
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match=re.escape(str(path))):
            read(path)


def test_files_of_the_gguf_package_read_alike(tmp_path: Path) -> None:
    """Files gguf.GGUFWriter writes: every tensor type it knows how to store, metadata of
    every kind (arrays of strings and of arrays among them), another alignment."""
    path = tmp_path / "theirs.gguf"
    rng = np.random.default_rng(6)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_custom_alignment(64)
    writer.add_array("tokenizer.ggml.tokens", ["a", "bc", ""])
    writer.add_array("nested", [[1, 2], [3]])
    writer.add_float64("x", 1.5)
    writer.add_bool("y", True)
    values = rng.standard_normal((3, 64)).astype(np.float32)
    writer.add_tensor("f32", values)
    writer.add_tensor("f16", values.astype(np.float16))
    writer.add_tensor("i32", np.arange(5, dtype=np.int32))
    for name in TYPE_NAMES:
        blocks = gguf.quants.quantize(values, ggml(name))
        writer.add_tensor(name, blocks, raw_dtype=ggml(name))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    ours = read(path)
    for tensor in gguf.GGUFReader(path).tensors:
        mine = ours[tensor.name]
        assert mine.type == tensor.tensor_type.name
        assert mine.shape == tuple(reversed(tensor.shape.tolist()))
        np.testing.assert_array_equal(mine.data, tensor.data)
        if mine.type in TYPES or mine.type in ("F32", "F16"):
            expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            np.testing.assert_array_equal(mine.dequantize(), expected.reshape(mine.shape))
    with pytest.raises(ValueError, match="I32 tensors are not dequantized"):
        ours["i32"].dequantize()


def crafted(*parts: bytes) -> bytes:
    return b"GGUF" + struct.pack("<I", 3) + b"".join(parts)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (crafted(struct.pack("<QQ", 0, 2**60)), "claims 1152921504606846976 items"),
        (crafted(struct.pack("<QQ", 2**60, 0)), "claims 1152921504606846976 tensors"),
        (  # an array of a billion uint8 in a file of 60 bytes
            crafted(struct.pack("<QQQ", 0, 1, 1), b"k", struct.pack("<IIQ", 9, 0, 10**9)),
            "claims 1000000000 items",
        ),
        (crafted(struct.pack("<QQQ", 0, 1, 2**63), b"k" * 20), "truncated: a key needs"),
        (b"GGUF" + struct.pack("<IQQ", 1, 0, 0), "version 1 is not read"),
        (  # a tensor whose data lies past the end of the file
            crafted(struct.pack("<QQQ", 1, 0, 1), b"w", struct.pack("<IQIQ", 1, 1 << 40, 0, 0)),
            "lies outside the file",
        ),
        (
            crafted(struct.pack("<QQQ", 1, 0, 1), b"w", struct.pack("<IQIQ", 1, 33, 8, 0)),
            "not whole blocks",
        ),
        (
            crafted(struct.pack("<QQQ", 1, 0, 1), b"w", struct.pack("<IQIQ", 1, 32, 99, 0)),
            "unknown ggml type 99",
        ),
        (
            crafted(struct.pack("<QQQ", 1, 0, 1), b"w", struct.pack("<IQIQ", 1, 0, 0, 8)),
            "not aligned",
        ),
    ],
)
def test_claims_a_file_cannot_hold_raise_before_anything_is_built(
    tmp_path: Path, data: bytes, message: str
) -> None:
    """gguf.GGUFReader would loop over a claimed count (and run out of memory): these are
    checked against the file first."""
    path = tmp_path / "crafted.gguf"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: .*{re.escape(message)}"):
        read(path)

"""safetensors files (SPEC §11): written by linquant, read by the safetensors package itself,
and back; files from outside checked."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import linquant as lq

safetensors_numpy = pytest.importorskip(
    "safetensors.numpy", reason="the safetensors package, the oracle, has no wheel here"
)

X = (np.random.default_rng(5).standard_normal((6, 10)) * 3 - 1).astype(np.float32)


def assert_same(expected: lq.QuantizedArray, loaded: object) -> None:
    """Every field of the loaded array is the original's (its codes stored packed where they
    have up to 4 bits), bit for bit."""
    assert isinstance(loaded, lq.QuantizedArray)
    for field in dataclasses.fields(lq.QuantizedArray):
        if field.name in ("data", "length"):
            continue
        mine, theirs = getattr(expected, field.name), getattr(loaded, field.name)
        if isinstance(mine, (np.ndarray, np.generic)):
            assert np.asarray(mine).dtype == np.asarray(theirs).dtype, field.name
            assert np.asarray(mine).tobytes() == np.asarray(theirs).tobytes(), field.name
        else:
            assert mine == theirs, field.name
    assert loaded.packed == (expected.bits <= 4 and expected.shape != ())
    assert loaded.shape == expected.shape and np.array_equal(loaded.codes(), expected.codes())


QUANTIZED = {
    "per tensor": lambda: lq.quantize(X, 8),
    "4-bit symmetric blocks": lambda: lq.quantize(X, 4, "symmetric", axis=1, block_size=4),
    "3-bit packed per row": lambda: lq.quantize(X, 3, axis=0, pack=True),
    "1-bit signs": lambda: lq.quantize(X, 1, "symmetric"),
    "12-bit per column, float64": lambda: lq.quantize(X.astype(np.float64), 12, axis=1),
    "stochastic": lambda: lq.quantize(X, 6, rounding="stochastic", seed=3),
    "fortran": lambda: lq.quantize(np.asfortranarray(X), 7, "symmetric"),
    "0-d": lambda: lq.quantize(np.float32(1.5), 2),
    "empty": lambda: lq.quantize(np.zeros((0, 3), np.float16), 4, axis=1),
}
ARRAYS = {
    "f16": np.arange(6, dtype=np.float16).reshape(2, 3),
    "f64 0-d": np.float64(2.5),
    "i64": np.arange(4, dtype=np.int64),
    "bool": np.array([True, False]),
    "big-endian": np.arange(3, dtype=">f4"),
    "empty array": np.zeros((2, 0), np.float32),
}


def test_quantized_arrays_and_arrays_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    quantized = {name: make() for name, make in QUANTIZED.items()}
    lq.save_safetensors(path, {**quantized, **ARRAYS}, metadata={"note": "hello"})
    for mmap in (False, True):
        loaded = lq.load_safetensors(path, mmap=mmap)
        assert sorted(loaded) == sorted({**quantized, **ARRAYS})
        for name, qa in quantized.items():
            back = loaded[name]
            assert isinstance(back, lq.QuantizedArray)
            assert_same(qa, back)
            np.testing.assert_array_equal(back.dequantize(), qa.dequantize())
        for name, array in ARRAYS.items():
            back = loaded[name]
            assert isinstance(back, np.ndarray) and back.shape == np.shape(array)
            assert np.array_equal(back, array) and back.dtype == np.asarray(
                array
            ).dtype.newbyteorder("=")


def test_the_safetensors_package_reads_the_tensors_and_the_metadata(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    blocks = lq.quantize(X, 4, "symmetric", axis=1, block_size=4)
    per_row = lq.quantize(X, 8, axis=0)
    lq.save_safetensors(path, {"blocks": blocks, "per_row": per_row, "bias": X[0]})
    tensors = safetensors_numpy.load_file(str(path))
    assert sorted(tensors) == [
        "bias",
        "blocks.codes",
        "blocks.scale",
        "per_row.codes",
        "per_row.scale",
        "per_row.zero_point",
    ]
    assert np.array_equal(tensors["per_row.codes"], per_row.data)
    assert np.array_equal(tensors["blocks.codes"], lq.pack(blocks.data, 4))  # packed on save
    assert np.array_equal(tensors["blocks.scale"], blocks.scale)
    assert tensors["per_row.zero_point"].dtype == np.int32
    assert np.array_equal(tensors["bias"], X[0])
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as opened:
        settings = json.loads(opened.metadata()["linquant:blocks"])
    assert settings["code_format"] == "int4" and settings["block_size"] == 4
    assert settings["shape"] == list(X.shape)


def test_a_file_the_package_writes_loads(tmp_path: Path) -> None:
    """Plain tensors, and a quantized array's tensors and metadata written by the package."""
    per_row = lq.quantize(X, 5, axis=0)
    path = tmp_path / "theirs.safetensors"
    meta = {
        "bits": 5,
        "scheme": "asymmetric",
        "axis": 0,
        "block_size": None,
        "source_dtype": "float32",
        "rounding": "half_even",
        "seed": None,
        "shape": list(X.shape),
        "code_format": None,
    }
    tensors = {
        "w.codes": np.asarray(per_row.data),
        "w.scale": np.asarray(per_row.scale),
        "w.zero_point": np.asarray(per_row.zero_point),
        "x": X,
    }
    safetensors_numpy.save_file(tensors, str(path), metadata={"linquant:w": json.dumps(meta)})
    loaded = lq.load_safetensors(path)
    assert np.array_equal(loaded["x"], X)
    assert_same(per_row, loaded["w"])


def test_saving_refuses_clashing_names_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old")
    with pytest.raises(ValueError, match=r"two tensors would be named 'w\.codes'"):
        lq.save_safetensors(path, {"w": lq.quantize(X), "w.codes": X})
    with pytest.raises(TypeError, match="safetensors holds no complex128"):
        lq.save_safetensors(path, {"c": np.zeros(2, complex)})
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "m.safetensors"
    ]


def header_file(path: Path, header: object, data: bytes = b"") -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ([], b"", "not a JSON object"),
        ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "do not hold"),
        ({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "data past"),
        (
            {f"x{i}": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for i in range(2)},
            b"\0" * 4,
            "overlap",
        ),
        ({"x": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, b"\0" * 2, "BF16"),
        ({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}, b"", "shape"),
        ({"x": {"dtype": "F32", "shape": [1]}}, b"", "an entry of"),
        ({"__metadata__": {"a": 1}}, b"", "strings to strings"),
        ({"__metadata__": {"linquant:w": "{"}}, b"", "not valid JSON"),
        ({"__metadata__": {"linquant:w": "{}"}}, b"", "must have the keys"),
    ],
)
def test_bad_headers_raise_naming_the_file(
    tmp_path: Path, header: object, data: bytes, message: str
) -> None:
    path = header_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(ValueError, match=message) as info:
        lq.load_safetensors(path)
    assert str(path) in str(info.value)


def test_a_header_longer_than_the_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(ValueError, match="a header of 1152921504606846976 bytes"):
        lq.load_safetensors(path)


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "good.safetensors"
    lq.save_safetensors(
        path, {"q": lq.quantize(X[:2, :5], 3, axis=0), "s": lq.quantize(X[0, :4], 9, "symmetric")}
    )
    return path.read_bytes()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_files_load_the_same_or_raise_value_error(
    good_file: bytes, data: st.DataObject
) -> None:
    """Flipped bytes and truncations: the file's tensors as before, or ValueError."""
    damaged = bytearray(good_file)
    for offset in data.draw(st.lists(st.integers(0, len(damaged) - 1), max_size=3)):
        damaged[offset] ^= data.draw(st.integers(1, 255))
    damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    path = Path("/tmp") / "linquant-damaged.safetensors"
    path.write_bytes(bytes(damaged))
    try:
        loaded, message = lq.load_safetensors(path), ""
    except ValueError as error:
        loaded, message = None, str(error)
    if loaded is None:
        assert message.startswith(str(path))
    else:
        assert all(isinstance(v, (lq.QuantizedArray, np.ndarray)) for v in loaded.values())


def test_pytorchs_loader_reads_the_tensors(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch is a benchmark dependency, not a test one")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "m.safetensors"
    qa = lq.quantize(X, 8, "symmetric", axis=0)
    lq.save_safetensors(path, {"w": qa})
    tensors = safetensors_torch.load_file(str(path))
    assert tensors["w.codes"].dtype == torch.int8 and tensors["w.scale"].dtype == torch.float32
    x_hat = tensors["w.codes"].float() * tensors["w.scale"][:, None]  # (q - 0) * scale
    assert np.array_equal(x_hat.numpy(), qa.dequantize())

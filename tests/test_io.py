"""linquant files: ``lq.save`` and ``lq.load`` round trips, and every way a file can be bad."""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import linquant as lq

RNG = np.random.default_rng(11)
X = (RNG.standard_normal((6, 10)) * 7 + 2).astype(np.float32)


def assert_same(a: lq.QuantizedArray, b: lq.QuantizedArray) -> None:
    """Every field equal: codes and their dtype, the scale's bits, zero points, settings."""
    assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape
    np.testing.assert_array_equal(a.data, b.data)
    for name in ("scale", "zero_point"):
        left, right = getattr(a, name), getattr(b, name)
        assert type(left) is type(right)
        assert np.asarray(left).dtype == np.asarray(right).dtype
        assert np.asarray(left).tobytes() == np.asarray(right).tobytes()
    for name in ("bits", "scheme", "axis", "block_size", "source_dtype"):
        assert getattr(a, name) == getattr(b, name), name


def round_trip(tmp_path: Path, qa: lq.QuantizedArray) -> lq.QuantizedArray:
    path = tmp_path / "qa.npz"
    lq.save(path, qa)
    return lq.load(path)


@pytest.mark.parametrize("bits", range(2, 17))
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
@pytest.mark.parametrize(("axis", "block_size"), [(None, None), (0, None), (1, None), (1, 3)])
def test_round_trip_is_exact(
    backend: str, tmp_path: Path, bits: int, scheme: str, axis: int | None, block_size: int | None
) -> None:
    qa = lq.quantize(X, bits, scheme, axis=axis, block_size=block_size)
    back = round_trip(tmp_path, qa)
    assert_same(qa, back)
    np.testing.assert_array_equal(back.dequantize(), qa.dequantize())


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, ">f4"])
@pytest.mark.parametrize(
    "x",
    [np.float32(2.5), np.zeros((0, 4)), np.zeros((3, 0, 2)), X[:, :7].T, np.asfortranarray(X)],
    ids=["0-d", "empty", "empty-3d", "strided", "fortran"],
)
def test_round_trip_of_every_shape_layout_and_source_dtype(
    backend: str, tmp_path: Path, dtype: object, x: np.ndarray
) -> None:
    qa = lq.quantize(np.asarray(x).astype(dtype), bits=5)
    assert qa.source_dtype == np.dtype(dtype).newbyteorder("=")
    assert_same(qa, round_trip(tmp_path, qa))


def test_round_trip_of_per_block_on_an_empty_axis(backend: str, tmp_path: Path) -> None:
    qa = lq.quantize(np.zeros((2, 0, 3), np.float64), axis=1, block_size=4)
    assert_same(qa, round_trip(tmp_path, qa))


def test_round_trip_of_a_fortran_ordered_quantized_array(tmp_path: Path) -> None:
    qa = lq.quantize(X, axis=0)
    fortran = lq.QuantizedArray(
        np.asfortranarray(qa.data), qa.scale, qa.zero_point, qa.bits, qa.scheme, qa.axis
    )
    back = round_trip(tmp_path, fortran)
    assert_same(fortran, back)
    assert back.data.flags.f_contiguous


def test_the_file_is_a_plain_npz_readable_without_pickle(tmp_path: Path) -> None:
    qa = lq.quantize(X.astype(np.float64), bits=12, scheme="symmetric", axis=1, block_size=4)
    path = tmp_path / "qa.npz"
    lq.save(str(path), qa)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["codes", "metadata", "scale", "zero_point"]
        np.testing.assert_array_equal(archive["codes"], qa.data)
        np.testing.assert_array_equal(archive["scale"], qa.scale)
        assert archive["zero_point"].dtype == np.int32
        meta = json.loads(str(archive["metadata"]))
    assert meta == {
        "format": "linquant.QuantizedArray",
        "format_version": 1,
        "linquant_version": lq.__version__,
        "bits": 12,
        "scheme": "symmetric",
        "axis": 1,
        "block_size": 4,
        "source_dtype": "float64",
        "shape": [6, 10],
    }
    with zipfile.ZipFile(path) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_save_writes_exactly_the_path_and_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "no_suffix"
    path.write_text("old")
    lq.save(path, lq.quantize(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_suffix"]
    assert_same(lq.load(path), lq.quantize(X))


def test_save_checks_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "qa.npz"
    path.write_bytes(b"kept")
    bad = lq.QuantizedArray(np.array([300], np.uint16), 1.0, 0, bits=8, scheme="asymmetric")
    with pytest.raises(ValueError, match=r"qa\.npz: codes have dtype uint16, not uint8"):
        lq.save(path, bad)
    out_of_range = lq.QuantizedArray(np.array([9], np.uint8), 1.0, 0, 3, "asymmetric")
    with pytest.raises(ValueError, match=r"codes outside \[0, 7\]"):
        lq.save(path, out_of_range)
    with pytest.raises(TypeError, match="QuantizedArray"):
        lq.save(path, X)  # type: ignore[arg-type]
    assert path.read_bytes() == b"kept" and len(list(tmp_path.iterdir())) == 1


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        lq.load(tmp_path / "absent.npz")


# --- bad files -----------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "good.npz"
    lq.save(path, lq.quantize(X, bits=6, axis=1, block_size=4))
    return path


def load_error(path: Path) -> str:
    """The message of the ValueError that loading ``path`` raises; it names the file."""
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: ") as info:
        lq.load(path)
    return str(info.value)


def test_truncated_files(saved: Path, tmp_path: Path) -> None:
    data = saved.read_bytes()
    cut = tmp_path / "cut.npz"
    for size in sorted({0, 1, 4, 30, 100, len(data) // 2, len(data) - 23, len(data) - 1}):
        cut.write_bytes(data[:size])
        assert "not a .npz archive" in load_error(cut)


def test_every_flipped_byte_is_caught_or_harmless(saved: Path, tmp_path: Path) -> None:
    """A damaged byte raises ValueError or (timestamps, padding) changes nothing at all."""
    data = saved.read_bytes()
    original = lq.load(saved)
    damaged = tmp_path / "damaged.npz"
    messages = []
    for offset in range(len(data)):
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        damaged.write_bytes(bytes(flipped))
        try:
            back = lq.load(damaged)
        except ValueError as error:
            messages.append(str(error))
        else:
            assert_same(original, back)
    assert all(message.startswith(f"{damaged}: ") for message in messages)
    assert len(messages) > len(data) // 2


def test_foreign_files(tmp_path: Path) -> None:
    npy = tmp_path / "array.npy"
    np.save(npy, X)
    assert "not a .npz archive" in load_error(npy)
    text = tmp_path / "notes.txt"
    text.write_text("codes, scale, zero_point\n")
    assert "not a .npz archive" in load_error(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, codes=np.zeros(3, np.uint8), scale=np.float32(1))
    message = load_error(plain)
    assert "not a linquant file" in message and "codes.npy, scale.npy" in message
    other_json = tmp_path / "other.npz"
    np.savez(other_json, metadata=np.array(json.dumps({"format": "something else"})))
    assert "not a linquant file" in load_error(other_json)


class _Payload:
    """Unpickling it would create a directory: loading must never do so."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("member", ["metadata", "codes", "scale"])
def test_pickled_members_are_refused_not_unpickled(tmp_path: Path, member: str) -> None:
    marker = tmp_path / "unpickled"
    qa = lq.quantize(X)
    arrays = {
        "codes": qa.data,
        "scale": np.asarray(qa.scale),
        "zero_point": np.asarray(qa.zero_point),
        "metadata": _metadata_of(qa),
    }
    arrays[member] = np.array([_Payload(marker)], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)
    message = load_error(path)
    assert "Python objects" in message and repr(member) in message
    assert not marker.exists()


def _metadata_of(qa: lq.QuantizedArray) -> np.ndarray:
    return np.array(
        json.dumps(
            {
                "format": "linquant.QuantizedArray",
                "format_version": 1,
                "linquant_version": lq.__version__,
                "bits": qa.bits,
                "scheme": qa.scheme,
                "axis": qa.axis,
                "block_size": qa.block_size,
                "source_dtype": qa.source_dtype.name,
                "shape": list(qa.shape),
            }
        )
    )


def _rewritten(tmp_path: Path, source: Path, **changes: object) -> Path:
    """A copy of the file at ``source`` with members or metadata fields replaced.

    A change named ``meta_<field>`` sets that metadata field (``...`` deletes it); others
    replace the member of that name.
    """
    with np.load(source, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays["metadata"]))
    for name, value in changes.items():
        if name.startswith("meta_"):
            if value is ...:
                del meta[name[5:]]
            else:
                meta[name[5:]] = value
        else:
            arrays[name] = np.asarray(value)
    if any(name.startswith("meta_") for name in changes):
        arrays["metadata"] = np.array(json.dumps(meta))
    path = tmp_path / "rewritten.npz"
    np.savez(path, **arrays)
    return path


BAD_FIELDS = [
    ({"meta_format_version": 2}, "format version 2.*upgrade linquant"),
    ({"meta_format_version": "1"}, "format_version must be a positive int"),
    ({"meta_bits": 40}, "bits must be an int from 2 to 16, got 40"),
    ({"meta_bits": 8.0}, "bits must be an int"),
    ({"meta_bits": True}, "bits must be an int"),
    ({"meta_scheme": "affine"}, "scheme must be one of"),
    ({"meta_axis": 2}, "axis 2 is out of range for an array of 2 dimensions"),
    ({"meta_axis": None}, "block_size needs an axis"),
    ({"meta_axis": None, "meta_block_size": None}, "must be 0-d without an axis"),
    ({"meta_axis": "1"}, "axis must be an int or None"),
    ({"meta_block_size": 0}, "block_size must be a positive int"),
    ({"meta_block_size": 5}, r"scale must have shape \(6, 2\)"),
    ({"meta_source_dtype": "int8"}, "source_dtype must be one of"),
    ({"meta_shape": [60]}, r"codes have shape \(6, 10\), the metadata says \(60,\)"),
    ({"meta_shape": "6x10"}, "shape must be a list of non-negative ints"),
    ({"meta_linquant_version": 1}, "linquant_version must be a string"),
    ({"meta_scheme": ...}, "metadata lacks scheme"),
    ({"metadata": np.array(["{}", "{}"])}, "metadata must be a 0-d string array"),
    ({"metadata": np.array("{not json")}, "metadata is not valid JSON"),
    ({"codes": np.zeros((6, 10), np.int8)}, "codes have dtype int8, not uint8"),
    ({"codes": np.full((6, 10), 64, np.uint8)}, r"codes outside \[0, 63\]"),
    ({"codes": np.zeros((6, 10), np.float32)}, "codes have dtype float32"),
    ({"scale": np.ones((6, 4), np.float32)}, r"scale must have shape \(6, 3\)"),
    ({"scale": np.ones((6, 3), np.int32)}, "scale must be float32 or float64"),
    ({"scale": np.zeros((6, 3), np.float32)}, "every scale must be positive and finite"),
    ({"zero_point": np.full((6, 3), 2**31, np.int64)}, "every zero_point must fit in int32"),
    ({"zero_point": np.zeros((6, 3), np.float32)}, "zero_point must be an integer"),
    ({"zero_point": np.zeros(3, np.int32)}, "zero_point must have the shape of scale"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_FIELDS)
def test_bad_fields_are_named(
    saved: Path, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    assert re.search(message, load_error(_rewritten(tmp_path, saved, **changes)))


def test_bad_per_tensor_parameters(tmp_path: Path) -> None:
    path = tmp_path / "tensor.npz"
    lq.save(path, lq.quantize(X, bits=4))
    for changes, message in [
        ({"scale": np.float32(-1)}, "scale must be positive and finite"),
        ({"scale": np.ones(1, np.float32)}, "must be 0-d without an axis"),
        ({"zero_point": np.zeros(2, np.int32)}, "must be 0-d without an axis"),
        ({"zero_point": np.int64(-(2**31) - 1)}, "zero_point must fit in int32"),
        ({"meta_block_size": 2}, "block_size needs an axis"),
    ]:
        assert re.search(message, load_error(_rewritten(tmp_path, path, **changes)))


def test_missing_members_and_a_damaged_npy_header(saved: Path, tmp_path: Path) -> None:
    with np.load(saved, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{k: v for k, v in arrays.items() if k != "zero_point"})
    assert "no zero_point" in load_error(partial)
    # a header that promises more data than the member holds
    short = tmp_path / "short.npz"
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(short, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "codes.npy":
                data = data[:-5]
            target.writestr(info.filename, data)
    assert "does not fit its" in load_error(short)

"""linquant files: ``lq.save`` and ``lq.load`` round trips, and every way a file can be bad."""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import linquant as lq

RNG = np.random.default_rng(11)
X = (RNG.standard_normal((6, 10)) * 7 + 2).astype(np.float32)


def assert_same(a: lq.QuantizedArray, b: lq.QuantizedArray) -> None:
    """Every field equal: codes and their dtype, the scale's bits, zero points, settings.

    Codes of up to 4 bits come back packed (SPEC §8) whether or not they were saved packed.
    """
    assert a.dtype == b.dtype and a.shape == b.shape
    assert b.packed == (a.bits <= 4 and a.shape != ())
    np.testing.assert_array_equal(a.codes(), b.codes())
    for name in ("scale", "zero_point"):
        left, right = getattr(a, name), getattr(b, name)
        assert type(left) is type(right)
        assert np.asarray(left).dtype == np.asarray(right).dtype
        assert np.asarray(left).tobytes() == np.asarray(right).tobytes()
    for name in ("bits", "scheme", "axis", "block_size", "source_dtype", "rounding", "seed"):
        assert getattr(a, name) == getattr(b, name), name


def round_trip(tmp_path: Path, qa: lq.QuantizedArray) -> lq.QuantizedArray:
    """``qa`` saved and loaded; loaded with its codes memory-mapped too, the same."""
    path = tmp_path / "qa.npz"
    lq.save(path, qa)
    back = lq.load(path)
    mapped = lq.load(path, mmap=True)
    assert_same(back, mapped)
    assert not mapped.data.flags.writeable and mapped.data.flags.c_contiguous == (
        back.data.flags.c_contiguous
    )
    assert isinstance(mapped.data.base, np.memmap) or mapped.data.size == 0
    return back


@pytest.mark.parametrize("bits", range(1, 17))
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
    qa = lq.quantize(X.astype(np.float64), bits=12, axis=1, block_size=4)
    path = tmp_path / "qa.npz"
    lq.save(str(path), qa)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["codes", "metadata", "scale", "zero_point"]
        np.testing.assert_array_equal(archive["codes"], qa.data)
        np.testing.assert_array_equal(archive["scale"], qa.scale)
        np.testing.assert_array_equal(archive["zero_point"], qa.zero_point)
        assert archive["zero_point"].dtype == np.uint16  # the narrowest that holds them
        meta = json.loads(str(archive["metadata"]))
    assert meta == {
        "format": "linquant.QuantizedArray",
        "format_version": 1,
        "linquant_version": lq.__version__,
        "bits": 12,
        "scheme": "asymmetric",
        "axis": 1,
        "block_size": 4,
        "source_dtype": "float64",
        "shape": [6, 10],
        "rounding": "half_even",
        "seed": None,
    }
    with zipfile.ZipFile(path) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


ROUNDINGS = [
    ("half_even", None),
    ("half_away", None),
    ("floor", None),
    ("trunc", None),
    ("stochastic", 0),
    ("stochastic", 2**64 - 1),
]


@pytest.mark.parametrize(("rounding", "seed"), ROUNDINGS)
@pytest.mark.parametrize(("axis", "block_size"), [(None, None), (1, 3)])
def test_rounding_and_seed_round_trip(
    tmp_path: Path, rounding: str, seed: int | None, axis: int | None, block_size: int | None
) -> None:
    """Recorded in the metadata, in format version 2 unless the rounding is half to even (a
    reader of version 1 would drop it), and restored by load."""
    qa = lq.quantize(X, 6, axis=axis, block_size=block_size, rounding=rounding, seed=seed)
    back = round_trip(tmp_path, qa)
    assert_same(qa, back)
    assert (back.rounding, back.seed) == (rounding, seed)
    assert repr(back) == repr(qa)
    with np.load(tmp_path / "qa.npz", allow_pickle=False) as archive:
        meta = json.loads(str(archive["metadata"]))
    assert (meta["rounding"], meta["seed"]) == (rounding, seed)
    assert meta["format_version"] == (1 if rounding == "half_even" else 2)


def test_a_reader_of_version_1_refuses_only_files_of_another_rounding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lq.save(tmp_path / "even.npz", lq.quantize(X))
    lq.save(tmp_path / "floor.npz", lq.quantize(X, rounding="floor"))
    monkeypatch.setattr("linquant._io.FORMAT_VERSION", 1)
    assert lq.load(tmp_path / "even.npz").rounding == "half_even"
    message = load_error(tmp_path / "floor.npz")
    assert "format version 2" in message and "reads versions up to 1" in message


@pytest.mark.parametrize("version", [1, 2])
def test_files_without_rounding_round_half_to_even(tmp_path: Path, version: int) -> None:
    """Files written before the rounding was recorded (version 1) have neither field."""
    qa = lq.quantize(X, 5, axis=0)
    lq.save(tmp_path / "qa.npz", qa)
    old = _rewritten(
        tmp_path, tmp_path / "qa.npz", meta_rounding=..., meta_seed=..., meta_format_version=version
    )
    back = lq.load(old)
    assert (back.rounding, back.seed) == ("half_even", None)
    assert_same(qa, back)


def test_save_writes_exactly_the_path_and_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "no_suffix"
    path.write_text("old")
    lq.save(path, lq.quantize(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_suffix"]
    assert_same(lq.load(path), lq.quantize(X))


# zipfile's finalizer reports, as unraisable, the member handle that never came to exist.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_while_a_member_opens_is_raised_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KeyboardInterrupt between the archive marking a member open and handing it out is not
    replaced by the archive's refusal to close, and leaves the old file and nothing else."""
    path = tmp_path / "qa.npz"
    path.write_bytes(b"kept")

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile, "_ZipWriteFile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lq.save(path, lq.quantize(X))
    assert os.listdir(tmp_path) == ["qa.npz"] and path.read_bytes() == b"kept"


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
        for mmap in (False, True):
            try:
                back = lq.load(damaged, mmap=mmap)
            except ValueError as error:
                messages.append(str(error))
            else:
                assert_same(original, back)
    assert all(message.startswith(f"{damaged}: ") for message in messages)
    assert len(messages) > len(data)  # half of the bytes, each read both ways


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
                "format_version": 1 if qa.rounding == "half_even" else 2,
                "linquant_version": lq.__version__,
                "bits": qa.bits,
                "scheme": qa.scheme,
                "axis": qa.axis,
                "block_size": qa.block_size,
                "source_dtype": qa.source_dtype.name,
                "shape": list(qa.shape),
                "rounding": qa.rounding,
                "seed": qa.seed,
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
    ({"meta_format_version": 4}, "format version 4.*upgrade linquant"),
    ({"meta_format_version": "1"}, "format_version must be a positive int"),
    ({"meta_bits": 40}, "bits must be an int from 1 to 16, got 40"),
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
    ({"meta_rounding": "nearest"}, "rounding must be one of"),
    ({"meta_rounding": None}, "rounding must be one of"),
    ({"meta_rounding": ["floor"]}, "rounding must be one of"),
    ({"meta_rounding": "stochastic"}, "rounding='stochastic' needs seed=, an int from 0"),
    ({"meta_seed": 5}, "seed applies to rounding='stochastic' only"),
    ({"meta_rounding": "floor", "meta_seed": 0}, "seed applies to rounding="),
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


# --- damaged and crafted archives: ValueError naming the file, nothing allocated on a claim --


def _members(path: Path) -> dict[str, bytes]:
    """The ``.npy`` bytes of each member of the archive at ``path``, by member name."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename[:-4]: archive.read(info) for info in archive.infolist()}


def _npy(header: str, data: bytes = b"", length_format: str = "<H") -> bytes:
    """A ``.npy`` member of any ``header`` text (format version 2.0 for a ``<I`` length)."""
    version = b"\x01\x00" if length_format == "<H" else b"\x02\x00"
    text = header.encode("latin-1")
    return b"\x93NUMPY" + version + struct.pack(length_format, len(text)) + text + data


def _npy_of(value: object) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """The ``.npy`` header NumPy writes for an array of ``descr`` and ``shape``."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _zipped(
    path: Path,
    members: dict[str, bytes],
    claims: dict[str, int] | None = None,
) -> Path:
    """A zip archive of stored ``members``, written byte by byte so that its entries can claim
    sizes (``claims``, by member) that are not the members' own."""
    local, central = bytearray(), bytearray()
    for name, data in members.items():
        filename = f"{name}.npy".encode()
        size = (claims or {}).get(name, len(data))
        # version needed, flags, method, time, date (1980-01-01), CRC, sizes, name and extra
        fields = struct.pack(
            "<5H3I2H", 20, 0, zipfile.ZIP_STORED, 0, 0x21, zlib.crc32(data), size, size,
            len(filename), 0,
        )  # fmt: skip
        central += b"PK\x01\x02" + struct.pack("<H", 20) + fields
        central += struct.pack("<3H2I", 0, 0, 0, 0, len(local)) + filename
        local += b"PK\x03\x04" + fields + filename + data
    count = len(members)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, count, count, len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


def _with_metadata(members: dict[str, bytes], text: str) -> dict[str, bytes]:
    return {**members, "metadata": _npy_of(np.array(text))}


@contextmanager
def allocating_at_most(limit: int) -> Iterator[None]:
    """Fail unless the block allocates at most ``limit`` bytes at its peak (tracemalloc)."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= limit, f"allocated {peak} bytes"


def test_zipped_writes_an_archive_that_load_reads(saved: Path, tmp_path: Path) -> None:
    assert_same(lq.load(_zipped(tmp_path / "copy.npz", _members(saved))), lq.load(saved))


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
@pytest.mark.parametrize("damaged", [False, True], ids=["intact", "damaged"])
def test_compressed_members_are_refused_before_they_are_inflated(
    saved: Path, tmp_path: Path, method: int, damaged: bool
) -> None:
    """``save`` stores members uncompressed: a compressed one, which could inflate to any size
    or be a stream zlib, bz2 or lzma fails on, is refused unread."""
    path = tmp_path / "compressed.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in _members(saved).items():
            archive.writestr(f"{name}.npy", data, method if name == "codes" else None)
    if damaged:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("codes.npy")
        data = bytearray(path.read_bytes())
        name_length, extra_length = struct.unpack_from("<2H", data, info.header_offset + 26)
        start = info.header_offset + 30 + name_length + extra_length
        for offset in range(start + 4, start + info.compress_size - 4, 3):
            data[offset] ^= 0x5A
        path.write_bytes(bytes(data))
    message = load_error(path)
    assert f"member 'codes' is compressed (zip method {method})" in message


def test_a_decompression_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    """16 MiB of codes deflated to 16 KiB: refused without inflating them."""
    qa = lq.quantize(np.zeros(2**24, np.float32))
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in [
            ("metadata", _metadata_of(qa)),
            ("scale", np.asarray(qa.scale)),
            ("zero_point", np.asarray(qa.zero_point)),
        ]:
            archive.writestr(f"{name}.npy", _npy_of(value))
        archive.writestr("codes.npy", _npy_of(qa.data), zipfile.ZIP_DEFLATED)
    del qa
    assert path.stat().st_size < 2**16
    with allocating_at_most(2**20):
        assert "member 'codes' is compressed" in load_error(path)


CLAIMS = {
    "metadata": (f"<U{2**28}", ()),
    "scale": ("<f4", (2**28,)),
    "zero_point": ("<i4", (2**28,)),
    "codes": ("|u1", (2**30,)),
}


@pytest.mark.parametrize("member", CLAIMS)
def test_sizes_a_zip_entry_claims_are_checked_against_the_file(tmp_path: Path, member: str) -> None:
    """A 1 GiB member in a 1 KiB file, its ``.npy`` header and the metadata agreeing: refused
    unread."""
    path = tmp_path / "tensor.npz"
    lq.save(path, lq.quantize(X, bits=4))
    members = _members(path)
    if member == "codes":
        meta = json.loads(str(_metadata_of(lq.load(path))))
        members = _with_metadata(members, json.dumps({**meta, "shape": [2**30]}))
    header = _npy_header(*CLAIMS[member])
    members[member] = header + members[member][-8:]
    claim = len(header) + 2**30
    crafted = _zipped(tmp_path / "claims.npz", members, {member: claim})
    with allocating_at_most(2**20):
        message = load_error(crafted)
    assert f"damaged member {member!r} (its zip entry says {claim} bytes" in message


def test_a_stored_member_whose_sizes_differ_is_damaged(saved: Path, tmp_path: Path) -> None:
    path = _zipped(tmp_path / "sizes.npz", _members(saved))
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")  # the last entry's: codes
    struct.pack_into("<I", data, central + 24, 7)  # its uncompressed size
    path.write_bytes(bytes(data))
    assert "stored, but its zip entry says" in load_error(path)


def test_the_metadata_member_is_bounded(saved: Path, tmp_path: Path) -> None:
    """Valid JSON, padded past 64 KiB: refused before it is read."""
    text = json.dumps(json.loads(str(_metadata_of(lq.load(saved))))) + " " * 2**14
    path = _zipped(tmp_path / "padded.npz", _with_metadata(_members(saved), text))
    assert "damaged member 'metadata'" in load_error(path)
    assert "takes at most 65536" in load_error(path)


VALID_HEADER = "{'descr': '|u1', 'fortran_order': False, 'shape': (6, 10), }"
BAD_NPY_HEADERS = {
    "unclosed": VALID_HEADER + "(",  # tokenize.TokenError from NumPy's Python 2 filter
    "unterminated string": VALID_HEADER[:-1] + '"""',  # tokenize.TokenError
    "deeply nested": "-" * 9000 + "1",  # MemoryError: the parser's stack
    "unhashable key": "{[]: 1}",  # TypeError
    "python 2 ints": VALID_HEADER.replace("6, 10", "6L, 10L"),  # a warning, then parsed
    "deprecated dtype": VALID_HEADER.replace("|u1", "|a1"),  # a DeprecationWarning
    "structured dtype": VALID_HEADER.replace("'|u1'", "[('a', '|u1')]"),
    "negative shape": VALID_HEADER.replace("6, 10", "-6, -10"),
    "shape past intp": VALID_HEADER.replace("6, 10", f"{2**62}, 4, 0"),
    "65 dimensions": VALID_HEADER.replace("6, 10", "6, 10" + ", 1" * 63),
    "not a dict": "(6, 10)",
    "keys out of order": "{'shape': (6, 10), 'fortran_order': False, 'descr': '|u1', }",
}


@pytest.mark.parametrize("header", BAD_NPY_HEADERS.values(), ids=BAD_NPY_HEADERS.keys())
def test_npy_headers_are_parsed_not_evaluated(saved: Path, tmp_path: Path, header: str) -> None:
    """A ``.npy`` header must be as NumPy writes it; nothing in it is evaluated."""
    members = _members(saved)
    members["codes"] = _npy(header, members["codes"][-60:])
    assert "damaged member 'codes'" in load_error(_zipped(tmp_path / "header.npz", members))


def test_metadata_of_empty_strings_is_damaged(saved: Path, tmp_path: Path) -> None:
    """``<U0`` items have no bytes: NumPy makes no array of them from bytes."""
    members = {**_members(saved), "metadata": _npy_header("<U0", ())}
    message = load_error(_zipped(tmp_path / "empty_strings.npz", members))
    assert "damaged member 'metadata' (dtype <U0 has items of 0 bytes)" in message


def test_npy_header_length_is_bounded(saved: Path, tmp_path: Path) -> None:
    members = _members(saved)
    for header in [VALID_HEADER + " " * 10_000, "{" + " " * 2**20]:
        members["codes"] = _npy(header, length_format="<I")
        message = load_error(_zipped(tmp_path / "long.npz", members))
        assert "damaged member 'codes' (a .npy header of" in message


@pytest.mark.parametrize(("axis", "block_size"), [(None, None), (1, 3), (0, None)])
def test_an_empty_array_of_a_huge_shape_allocates_nothing(
    tmp_path: Path, axis: int | None, block_size: int | None
) -> None:
    """Codes of shape (2**40, 0): per tensor, or per block along the empty axis, it loads; per
    channel along the long axis, the 2**40 scales it needs are not in the file."""
    shape = (2**40, 0)
    param_shape = {None: (), 1: (2**40, 0), 0: (2**40,)}[axis]
    scale, zero_point = (np.float32(1).tobytes(), bytes(4)) if axis is None else (b"", b"")
    meta = json.loads(str(_metadata_of(lq.quantize(np.zeros(0, np.float32)))))
    meta.update(shape=list(shape), axis=axis, block_size=block_size)
    members = {
        "metadata": _npy_of(np.array(json.dumps(meta))),
        "scale": _npy_header("<f4", param_shape) + scale,
        "zero_point": _npy_header("<i4", param_shape) + zero_point,
        "codes": _npy_header("|u1", shape),
    }
    path = _zipped(tmp_path / "empty.npz", members)
    with allocating_at_most(2**20):
        if axis == 0:
            assert "damaged member 'scale'" in load_error(path)
        else:
            assert lq.load(path).shape == shape


BAD_JSON = {
    "nested 100000 deep": "[" * 100_000 + "]" * 100_000,  # RecursionError; past 64 KiB
    "nested 8000 deep": "[" * 8000 + "]" * 8000,  # RecursionError within 64 KiB
    "an int of 5000 digits": '{"format": "linquant.QuantizedArray", "bits": 1' + "0" * 5000 + "}",
}


@pytest.mark.parametrize("text", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_metadata_json_that_python_cannot_read(saved: Path, tmp_path: Path, text: str) -> None:
    path = _zipped(tmp_path / "json.npz", _with_metadata(_members(saved), text))
    assert "metadata" in load_error(path)


@pytest.mark.parametrize("member", ["codes", "scale", "zero_point"])
def test_numbers_are_not_text(tmp_path: Path, member: str) -> None:
    """Text in a member of numbers is refused before a check could show it (0xFF00007B is no
    character, though NumPy makes a str of it)."""
    path = tmp_path / "tensor.npz"
    lq.save(path, lq.quantize(X))
    shape = X.shape if member == "codes" else ()
    members = _members(path)
    members[member] = _npy_header("<U1", shape) + b"\x7b\x00\x00\xff" * math.prod(shape)
    message = load_error(_zipped(tmp_path / "text.npz", members))
    assert f"damaged member {member!r} (dtype <U1: this member holds numbers" in message


@pytest.mark.parametrize("at", ["start", "scheme"])
def test_metadata_must_be_unicode(saved: Path, tmp_path: Path, at: str) -> None:
    """NumPy reads any 4 bytes as a character, 0xFF00007B too (past U+10FFFF): not text."""
    meta = json.loads(str(_metadata_of(lq.load(saved))))
    meta["scheme"] = "@"
    text = json.dumps(meta)
    if at == "start":
        text = "@" + text
    data = np.array(text).tobytes().replace("@".encode("utf-32-le"), b"\x7b\x00\x00\xff")
    members = {**_members(saved), "metadata": _npy_header(f"<U{len(text)}", ()) + data}
    message = load_error(_zipped(tmp_path / "not_text.npz", members))
    assert "metadata is not text ('utf-32-le' codec can't decode" in message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("block_size", "NaN", "NaN is not a JSON number"),
        ("block_size", "Infinity", "Infinity is not a JSON number"),
        ("bits", "-Infinity", "-Infinity is not a JSON number"),
        ("block_size", "1e400", "block_size must be a positive int.*got inf"),
        ("block_size", "4.0", "block_size must be a positive int"),
        ("block_size", "true", "block_size must be a positive int"),
        ("axis", "1.0", "axis must be an int or None"),
        ("axis", "true", "axis must be an int or None"),
        ("shape", "[6.0, 10]", "shape must be a list of non-negative ints"),
        ("shape", "[6, true]", "shape must be a list of non-negative ints"),
        ("format_version", "1.0", "format_version must be a positive int"),
        ("format_version", "true", "format_version must be a positive int"),
    ],
)
def test_metadata_numbers_must_be_ints(
    saved: Path, tmp_path: Path, field: str, value: str, message: str
) -> None:
    """JSON's NaN and Infinity, floats and booleans where the format has ints."""
    meta = json.loads(str(_metadata_of(lq.load(saved))))
    meta[field] = "@"
    text = json.dumps(meta).replace('"@"', value)
    path = _zipped(tmp_path / "numbers.npz", _with_metadata(_members(saved), text))
    assert re.search(message, load_error(path))


@pytest.mark.parametrize(
    "seed", ["-1", "18446744073709551616", "1.0", "true", '"7"', "[7]", "1e400", "NaN"]
)
def test_a_stochastic_seed_is_an_int_below_2_64(tmp_path: Path, seed: str) -> None:
    path = tmp_path / "stochastic.npz"
    lq.save(path, lq.quantize(X, rounding="stochastic", seed=7))
    meta = json.loads(str(_metadata_of(lq.load(path))))
    text = json.dumps({**meta, "seed": "@"}).replace('"@"', seed)
    message = load_error(_zipped(tmp_path / "seed.npz", _with_metadata(_members(path), text)))
    expected = "NaN is not a JSON number" if seed == "NaN" else "needs seed=, an int from 0"
    assert expected in message


@pytest.mark.parametrize("block_size", [2**63, 2**70])
def test_block_sizes_past_int64_are_refused(tmp_path: Path, block_size: int) -> None:
    """One block per row: a block_size past 2**63 - 1 gives the scale's shape as 10 does."""
    path = tmp_path / "blocks.npz"
    lq.save(path, lq.quantize(X, axis=1, block_size=10))
    message = load_error(_rewritten(tmp_path, path, meta_block_size=block_size))
    assert "block_size must be a positive int" in message and str(block_size) in message


@pytest.mark.parametrize(
    "source_dtype", ["a5", "float32 ", [["a", "f4"]], {"names": ["a"], "formats": ["f4"]}]
)
def test_source_dtype_is_a_float_dtype_name(
    saved: Path, tmp_path: Path, source_dtype: object
) -> None:
    """Not what np.dtype would make of it: ``a5`` warns of a deprecated alias, lists and dicts
    are structured dtypes."""
    message = load_error(_rewritten(tmp_path, saved, meta_source_dtype=source_dtype))
    assert "source_dtype must be one of ('float16', 'float32', 'float64')" in message


# --- save over an existing path ----------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and symlinks")
def test_save_writes_through_a_symlink_and_keeps_the_mode(tmp_path: Path) -> None:
    real = tmp_path / "real.npz"
    real.write_bytes(b"old")
    real.chmod(0o600)
    (tmp_path / "link.npz").symlink_to("real.npz")
    lq.save(tmp_path / "link.npz", lq.quantize(X))
    assert os.readlink(tmp_path / "link.npz") == "real.npz"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "real.npz"]
    assert_same(lq.load(real), lq.quantize(X))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_save_writes_a_fifo_in_place(tmp_path: Path) -> None:
    """A FIFO (as ``/dev/null`` or another device) is written, never replaced by a file."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code = "import sys\nwith open(sys.argv[1], 'rb') as f:\n    sys.stdout.buffer.write(f.read())"
    reader = subprocess.Popen([sys.executable, "-c", code, fifo], stdout=subprocess.PIPE)
    try:
        lq.save(fifo, lq.quantize(X))
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        sent, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
        reader.communicate()
    (tmp_path / "sent.npz").write_bytes(sent)
    assert_same(lq.load(tmp_path / "sent.npz"), lq.quantize(X))


def test_save_errors_name_the_path_not_a_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    nowhere = tmp_path / "nowhere" / "x.npz"
    for path, error in [(nowhere, FileNotFoundError), (tmp_path / "folder", IsADirectoryError)]:
        with pytest.raises(error) as info:
            lq.save(path, lq.quantize(X))
        assert info.value.filename == str(path)
    assert os.listdir(tmp_path / "folder") == []


def test_a_mapped_load_reads_the_codes_in_bounded_memory(tmp_path: Path) -> None:
    x = RNG.standard_normal((4096, 4096)).astype(np.float32)
    path = tmp_path / "big.npz"
    lq.save(path, lq.quantize(x, 8))  # 16 MiB of codes, read a chunk of 1 MiB at a time
    tracemalloc.start()
    try:
        mapped = lq.load(path, mmap=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20 and isinstance(mapped.data.base, np.memmap)
    np.testing.assert_array_equal(mapped.data, lq.load(path).data)
    with pytest.raises(ValueError, match="mmap must be True or False"):
        lq.load(path, mmap="r")  # type: ignore[arg-type]

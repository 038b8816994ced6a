"""linquant files: a :class:`QuantizedArray` in one ``.npz`` archive, read without pickle.

Layout (format version 3), an uncompressed zip archive that ``np.load(path,
allow_pickle=False)`` reads:

- ``codes``: codes of up to 4 bits packed into uint8 bytes along the last axis in C order
  (SPEC §8; the shape of the packed rows), wider ones as integers (uint8/int8 up to 8 bits,
  uint16/int16 up to 16) with the array's shape, in C order (or Fortran order, as the header
  of the member says);
- ``scale``: float32 or float64, 0-d per tensor, else the shape of per-axis or per-block
  parameters (``_groups``);
- ``zero_point``: the shape of ``scale``, in the narrowest of uint8, int8, uint16, int16 and
  int32 that holds them; absent for symmetric codes, whose zero points are 0;
- ``metadata``: a 0-d string array holding a JSON object: ``format``
  (``"linquant.QuantizedArray"``), ``format_version``, ``linquant_version``, ``bits``,
  ``scheme``, ``axis`` and ``block_size`` (null for none), ``source_dtype``, ``shape``,
  ``rounding`` and ``seed`` (null but for stochastic rounding), and for packed codes
  ``code_format``, the name of their row in the format table (``_formats``).

``format_version`` is the oldest whose readers read the file right: 3 for packed codes or
absent zero points, else 2 where the rounding is not half to even, else 1. Older readers refuse
the files whose contents they would misread, and read the others. Every earlier version reads:
files without ``rounding`` and ``seed`` round half to even, files without ``code_format`` hold
unpacked codes.

Reading checks every field with the checks of the public API (``_checks``, ``_groups``), so a
file is valid exactly when its parameters would be accepted by a call. A file that is not
a linquant file, is damaged, or comes from a newer format raises ValueError naming the file.
Members are read through their ``.npy`` headers, never unpickled: an object array is refused.

Nothing is allocated on a size a file claims before the claim is checked against the file:
a member must be stored uncompressed (a compressed one is refused, so nothing is inflated),
lie within the file, and hold exactly the bytes its ``.npy`` header's shape and dtype imply;
the header is at most ``NPY_HEADER_MAX`` bytes, parsed by a pattern (never evaluated), and
the metadata member at most ``METADATA_MAX`` bytes. Reading a file thus allocates a small
multiple of its size at most.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from . import _backend, _checks, _rounding
from ._chunks import chunks
from ._formats import CodeFormat, code_format
from ._groups import grouping
from ._layout import FLOAT_DTYPES
from ._output import replacing
from ._packing import CHUNK_ELEMENTS, packed_slices
from ._params import integer_range, storage_dtype
from ._quantized import PACKED_BITS, QuantizedArray
from ._version import __version__

FORMAT = "linquant.QuantizedArray"
FORMAT_VERSION = 3
MEMBERS = ("codes", "scale", "zero_point", "metadata")
SOURCE_DTYPE_NAMES = tuple(dtype.name for dtype in FLOAT_DTYPES)

# The metadata is a JSON object of a few hundred bytes: the bound keeps a damaged file from
# making its read or its parse large.
METADATA_MAX = 64 * 1024
# NumPy's own reader refuses longer .npy headers (np.load's max_header_size).
NPY_HEADER_MAX = 10_000
# NumPy 2's limits on an array, empty or not: its dimensions, and the bytes of its nonzero
# dimensions' product.
NPY_MAXDIMS = 64
NPY_BYTES_MAX = int(np.iinfo(np.intp).max)
# A zip local file header (APPNOTE 4.3.7): its signature and fixed size, then the name and
# the extra field, whose lengths are its last two fields.
LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
LOCAL_HEADER_SIZE = 30

# The .npy format versions a member may have, each with the format of its header's length.
_NPY_VERSIONS = {b"\x93NUMPY\x01\x00": "<H", b"\x93NUMPY\x02\x00": "<I"}
_NPY_DIM = r"(?:0|[1-9][0-9]{0,18})"  # a dimension as Python writes it, below 10**19
# A .npy header as NumPy writes it (its keys sorted, values by repr): a simple dtype, the
# order and a tuple of ints. Only this is accepted, so nothing is evaluated.
_NPY_HEADER = re.compile(
    r"\{\s*'descr'\s*:\s*'(?P<descr>[<>|=]?[A-Za-z][0-9]*)'\s*,"
    r"\s*'fortran_order'\s*:\s*(?P<fortran_order>True|False)\s*,"
    rf"\s*'shape'\s*:\s*\((?P<shape>\s*|(?:\s*{_NPY_DIM}\s*,)+(?:\s*{_NPY_DIM})?\s*)\)"
    r"\s*,?\s*\}\s*"
)

# What reading damaged bytes can raise from zipfile; each becomes a ValueError naming the file.
_READ_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    OSError,
    NotImplementedError,  # zip features zipfile lacks (patched data, strong encryption)
    RuntimeError,  # an encrypted member
    ValueError,
    OverflowError,
)


@dataclass(frozen=True)
class Header:
    """Everything in a linquant file but the codes: checked parameters and the codes' layout."""

    path: str
    shape: tuple[int, ...]
    code_dtype: np.dtype
    fortran_order: bool
    scale: Any
    zero_point: Any
    bits: int
    scheme: str
    axis: int | None
    block_size: int | None
    source_dtype: np.dtype
    rounding: str
    seed: int | None
    linquant_version: str
    packed: bool = False

    @property
    def format(self) -> CodeFormat:
        return code_format(self.bits, self.scheme == "symmetric", self.packed)

    @property
    def length(self) -> int | None:
        """The length of the last axis of packed codes (``QuantizedArray.length``)."""
        return self.shape[-1] if self.packed else None

    @property
    def memory_shape(self) -> tuple[int, ...]:
        """The shape of the codes in the order they are stored."""
        return self.shape[::-1] if self.fortran_order else self.shape

    def quantized(self, codes: np.ndarray) -> QuantizedArray:
        """A QuantizedArray of these parameters and ``codes`` (packed in C order if packed)."""
        return QuantizedArray.with_codes(codes, self)

    def checked_codes(self, stored: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The codes of a chunk of ``shape`` from their stored form (unpacked if packed),
        checked by :meth:`check_codes`."""
        codes = stored
        if self.packed:
            codes = np.empty(shape, self.code_dtype)
            _backend.active().unpack(stored, self.format.width, codes)
        self.check_codes(codes)
        return codes

    def check_stored(self, stored: np.ndarray) -> None:
        """ValueError unless all the codes as stored (packed or not, in C order) fall in the
        range of ``bits``: packed ones unpacked a chunk at a time, never all at once."""
        if not self.packed:
            self.check_codes(stored)
            return
        fmt = self.format
        for chunk in chunks(self.shape, None, CHUNK_ELEMENTS, align=fmt.per_item):
            self.checked_codes(stored[packed_slices(chunk, fmt)], chunk.shape)

    def check_codes(self, codes: np.ndarray) -> None:
        """ValueError if ``codes`` fall outside the range of ``bits``-bit codes (SPEC §1)."""
        qmin, qmax = integer_range(self.bits, self.scheme == "symmetric")
        if codes.size and (int(codes.min()) < qmin or int(codes.max()) > qmax):
            raise ValueError(
                f"{self.path}: codes outside [{qmin}, {qmax}], the range of {self.bits}-bit "
                f"{self.scheme} codes"
            )


def _checked(
    path: str,
    shape: tuple[int, ...],
    code_dtype: np.dtype,
    scale: np.ndarray,
    zero_point: np.ndarray,
    meta: dict[str, Any],
) -> tuple[Any, Any, int, str, int | None, int | None, np.dtype, str, int | None]:
    """The parameters and settings, checked as the API checks arguments; ValueError names the
    file."""
    try:
        bits = _checks.bits(meta["bits"])
        scheme = _checks.scheme(meta["scheme"])
        source_dtype = _checks.source_float(meta["source_dtype"])
        rounding = _rounding.rounding(meta["rounding"], meta["seed"], None, ())
        groups = grouping(shape, meta["axis"], meta["block_size"])
        signed = scheme == "symmetric"
        if meta.get("code_format") is not None:
            _check_packed_member(meta["code_format"], bits, signed, shape, code_dtype)
        elif code_dtype.newbyteorder("=") != storage_dtype(bits, signed):
            raise ValueError(
                f"codes have dtype {code_dtype}, not {storage_dtype(bits, signed)} "
                f"of {bits}-bit {scheme} codes"
            )
        if scale.dtype.newbyteorder("=") not in _checks.OUTPUT_FLOATS:
            raise ValueError(f"scale must be float32 or float64, got dtype {scale.dtype}")
        wf = scale.dtype.newbyteorder("=").type
        if groups is None:
            if scale.shape != () or zero_point.shape != ():
                raise ValueError(
                    f"scale and zero_point must be 0-d without an axis, got shapes "
                    f"{scale.shape} and {zero_point.shape}"
                )
            checked_scale: Any = _checks.scale(scale[()], wf)
            checked_zero_point: Any = np.int32(_checks.zero_point(zero_point[()]))
        else:
            checked_scale = _checks.scales(scale, groups.param_shape, wf)
            if zero_point.shape != scale.shape:
                raise ValueError(
                    f"zero_point must have the shape of scale, {scale.shape}, "
                    f"got {zero_point.shape}"
                )
            checked_zero_point = _checks.zero_points(zero_point, scale.shape).astype(np.int32)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    axis = None if groups is None else groups.axis
    block_size = None if groups is None else groups.block_size
    seed = rounding.seed if rounding.stochastic else None
    return (
        checked_scale,
        checked_zero_point,
        bits,
        scheme,
        axis,
        block_size,
        source_dtype,
        rounding.mode,
        seed,
    )


def _check_packed_member(
    name: object, bits: int, signed: bool, member_shape: tuple[int, ...], member_dtype: np.dtype
) -> None:
    """A packed codes member must hold the format that ``bits`` and the scheme pack to."""
    fmt = code_format(bits, signed, packed=True)
    if name != fmt.name or not fmt.packed:
        raise ValueError(f"code_format must be {fmt.name!r} for {bits}-bit codes, got {name!r}")
    if member_dtype != fmt.container:
        raise ValueError(f"packed codes have dtype {member_dtype}, not {fmt.container}")


def _not_a_number(name: str) -> None:
    """Refuse JSON's NaN and Infinity, which Python's json reads as floats."""
    raise ValueError(f"{name} is not a JSON number")


def _metadata(path: str, value: np.ndarray) -> dict[str, Any]:
    """The JSON object of the ``metadata`` member, its format marker and version checked."""
    if value.shape != ():
        raise ValueError(f"{path}: metadata must be a 0-d string array, got shape {value.shape}")
    # Decoded here: NumPy makes a str of any 4 bytes, code points past U+10FFFF included,
    # which Python's own str functions are not made for.
    little_endian = value.astype(value.dtype.newbyteorder("<"))
    try:
        text = little_endian.tobytes().decode("utf-32-le").rstrip("\0")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: metadata is not text ({error})") from None
    try:
        meta = json.loads(text, parse_constant=_not_a_number)
    except (ValueError, RecursionError) as error:  # ints of over 4300 digits; deep nesting
        raise ValueError(f"{path}: metadata is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a linquant file (its metadata has no linquant format)")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path}: format_version must be a positive int, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written in linquant file format version {version}, by linquant "
            f"{meta.get('linquant_version')}; linquant {__version__} reads versions up to "
            f"{FORMAT_VERSION}: upgrade linquant to read it"
        )
    missing = [key for key in ("bits", "scheme", "axis", "block_size", "source_dtype", "shape",
                               "linquant_version") if key not in meta]  # fmt: skip
    if missing:
        raise ValueError(f"{path}: metadata lacks {', '.join(missing)}")
    if not isinstance(meta["linquant_version"], str):
        raise ValueError(f"{path}: linquant_version must be a string")
    # The file holds a dtype's name: np.dtype never sees what else JSON can hold (it would
    # parse structured dtypes, and warn of deprecated aliases).
    if meta["source_dtype"] not in SOURCE_DTYPE_NAMES:
        raise ValueError(
            f"{path}: source_dtype must be one of {SOURCE_DTYPE_NAMES}, "
            f"got {meta['source_dtype']!r}"
        )
    shape = meta["shape"]
    if not (
        isinstance(shape, list)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise ValueError(f"{path}: shape must be a list of non-negative ints, got {shape!r}")
    meta.setdefault("rounding", _rounding.DEFAULT)  # checked with the parameters
    meta.setdefault("seed", None)
    meta.setdefault("code_format", None)  # checked with the parameters
    return meta


def _read_exactly(member: IO[bytes], size: int, what: str) -> bytes:
    """``size`` bytes of ``member``'s ``what``; ValueError where the member ends first."""
    data = member.read(size)
    if len(data) != size:
        raise ValueError(f"the member ends within its {what}")
    return data


def _read_npy_header(member: IO[bytes], kinds: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The shape, order and dtype (of one of ``kinds``) of a ``.npy`` header; ValueError unless
    NumPy wrote it."""
    length_format = _NPY_VERSIONS.get(_read_exactly(member, 8, ".npy magic"))
    if length_format is None:
        raise ValueError("not a .npy array of format version 1.0 or 2.0")
    (length,) = struct.unpack(
        length_format, _read_exactly(member, struct.calcsize(length_format), ".npy header")
    )
    if length > NPY_HEADER_MAX:
        raise ValueError(f"a .npy header of {length} bytes, over {NPY_HEADER_MAX}")
    text = _read_exactly(member, length, ".npy header").decode("latin-1")
    match = _NPY_HEADER.fullmatch(text)
    if match is None:
        raise ValueError(f"not a .npy header as NumPy writes it: {text[:200]!r}")
    descr = match["descr"]
    if descr.lstrip("<>|=")[0] not in kinds:
        held = "text" if kinds == "U" else "numbers"
        raise ValueError(f"dtype {descr}: this member holds {held}, never Python objects")
    try:
        dtype = np.dtype(descr)
    except TypeError:
        raise ValueError(f"dtype {descr} is not a NumPy dtype") from None
    if dtype.itemsize == 0:  # np.frombuffer refuses it, and no member of a linquant file has it
        raise ValueError(f"dtype {descr} has items of 0 bytes")
    shape = tuple(int(n) for n in match["shape"].replace(",", " ").split())
    if (
        len(shape) > NPY_MAXDIMS
        or math.prod(n for n in shape if n) * dtype.itemsize > NPY_BYTES_MAX
    ):
        raise ValueError(f"no NumPy array has shape {shape} and dtype {dtype}")
    return shape, match["fortran_order"] == "True", dtype


class Reader:
    """An open linquant file: its checked :class:`Header`, and its codes read in order.

    ``read(count)`` returns the next ``count`` codes (1-D, in the order of
    ``header.fortran_order``); the archive's checksum is verified with the last of them.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            try:
                self._archive = zipfile.ZipFile(self._file)
            except _READ_ERRORS as error:
                raise ValueError(
                    f"{self.path}: not a linquant file (not a .npz archive: {error})"
                ) from None
            self._codes = self._open_codes()
        except BaseException:
            self._file.close()
            raise

    def _open(self, name: str, largest: int | None = None) -> tuple[IO[bytes], int]:
        """The member ``name`` and its size, checked before a byte of it is read.

        It must be stored uncompressed (in at most ``largest`` bytes) within the file, so no
        read of it is larger than the file.
        """
        info = self._archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(
                f"{self.path}: member {name!r} is compressed (zip method "
                f"{info.compress_type}): linquant files hold uncompressed members only"
            )
        if info.compress_size != info.file_size:
            raise ValueError(
                f"{self.path}: damaged member {name!r} (stored, but its zip entry says "
                f"{info.compress_size} bytes hold {info.file_size})"
            )
        if info.header_offset + info.file_size > self._size:
            raise ValueError(
                f"{self.path}: damaged member {name!r} (its zip entry says {info.file_size} "
                f"bytes at offset {info.header_offset}, past the end of the file's "
                f"{self._size} bytes)"
            )
        if largest is not None and info.file_size > largest:
            raise ValueError(
                f"{self.path}: damaged member {name!r} ({info.file_size} bytes; a linquant "
                f"file's {name} takes at most {largest})"
            )
        try:
            return self._archive.open(info), info.file_size
        except _READ_ERRORS as error:
            raise ValueError(f"{self.path}: damaged member {name!r} ({error})") from None

    def _npy_header(
        self, name: str, member: IO[bytes], size: int
    ) -> tuple[tuple[int, ...], bool, np.dtype]:
        """The member's ``.npy`` header, its data size checked against the member's ``size``."""
        try:
            # Text in the metadata only: the checks of numbers may show them, and NumPy makes a
            # str of any 4 bytes (see _metadata).
            kinds = "U" if name == "metadata" else "iuf"
            shape, fortran_order, dtype = _read_npy_header(member, kinds)
            offset = member.tell()
        except _READ_ERRORS as error:
            raise ValueError(f"{self.path}: damaged member {name!r} ({error})") from None
        if offset + math.prod(shape) * dtype.itemsize != size:
            raise ValueError(
                f"{self.path}: damaged member {name!r} (its header says {shape} {dtype}, "
                f"which does not fit its {size} bytes)"
            )
        return shape, fortran_order, dtype

    def _read_bytes(self, name: str, member: IO[bytes], size: int, last: bool) -> bytes:
        """``size`` bytes; ``last``: the member must end there (zipfile checks its CRC then)."""
        try:
            data = member.read(size)
            extra = member.read(1) if last else b""
        except _READ_ERRORS as error:
            raise ValueError(f"{self.path}: damaged member {name!r} ({error})") from None
        if len(data) != size or extra:
            raise ValueError(f"{self.path}: damaged member {name!r} (its size is wrong)")
        return data

    def _read_member(self, name: str, largest: int | None = None) -> np.ndarray:
        member, size = self._open(name, largest)
        with member:
            shape, fortran_order, dtype = self._npy_header(name, member, size)
            data = self._read_bytes(name, member, math.prod(shape) * dtype.itemsize, last=True)
        return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")

    def _open_codes(self) -> IO[bytes]:
        """Check the metadata and parameters, set ``header``; the codes member after its header."""
        names = self._archive.namelist()
        if "metadata.npy" not in names:
            raise ValueError(
                f"{self.path}: not a linquant file (an archive without linquant metadata; "
                f"it holds {', '.join(names) or 'nothing'})"
            )
        meta = _metadata(self.path, self._read_member("metadata", METADATA_MAX))
        # Symmetric codes need no zero points: files of version 3 leave them out.
        needed = [n for n in MEMBERS if n != "zero_point" or meta["scheme"] != "symmetric"]
        missing = [name for name in needed if f"{name}.npy" not in names]
        if missing:
            raise ValueError(f"{self.path}: damaged linquant file, no {', '.join(missing)}")
        scale = self._read_member("scale")
        zero_point = (
            self._read_member("zero_point")
            if "zero_point.npy" in names
            else np.zeros(scale.shape, np.int32)
        )
        codes, size = self._open("codes")
        try:
            member_shape, fortran_order, member_dtype = self._npy_header("codes", codes, size)
            # where the codes' bytes start in the file: the member's data, past its .npy header
            self._codes_offset = self._data_start("codes") + codes.tell()
            shape = tuple(meta["shape"])
            if meta["code_format"] is None and member_shape != shape:
                raise ValueError(
                    f"{self.path}: codes have shape {member_shape}, the metadata says {shape}"
                )
            checked = _checked(self.path, shape, member_dtype, scale, zero_point, meta)
            packed = meta["code_format"] is not None
            header = Header(
                self.path,
                shape,
                storage_dtype(checked[2], checked[3] == "symmetric") if packed else member_dtype,
                fortran_order,
                *checked,
                meta["linquant_version"],
                packed,
            )
            if packed and (fortran_order or not shape):
                raise ValueError(
                    f"{self.path}: packed codes are stored in C order with at least one axis"
                )
            stored = header.format.stored_shape(shape)
            if member_shape != stored:
                raise ValueError(
                    f"{self.path}: codes have shape {member_shape}, the metadata says "
                    f"{stored} (for an array of shape {shape})"
                )
        except BaseException:
            codes.close()
            raise
        self.header = header
        return codes

    def _data_start(self, name: str) -> int:
        """The offset in the file of the stored member ``name``'s first byte: past its zip
        local header, whose name and extra field lengths it gives."""
        info = self._archive.getinfo(f"{name}.npy")
        self._file.seek(info.header_offset)  # (zipfile seeks to its own place before reading)
        local = self._file.read(LOCAL_HEADER_SIZE)
        if len(local) != LOCAL_HEADER_SIZE or local[:4] != LOCAL_HEADER_SIGNATURE:
            raise ValueError(f"{self.path}: damaged member {name!r} (no zip local header)")
        lengths: tuple[int, int] = struct.unpack("<2H", local[26:30])  # the name, the extra
        return int(info.header_offset) + LOCAL_HEADER_SIZE + sum(lengths)

    def mapped(self) -> np.ndarray:
        """The codes as stored (packed or not), memory-mapped read-only, once all of them
        were read through chunk by chunk and checked (their range, the member's checksum)."""
        header, fmt = self.header, self.header.format
        for chunk in chunks(header.memory_shape, None, CHUNK_ELEMENTS, align=fmt.per_item):
            self.header.checked_codes(self._read_stored(chunk.shape), chunk.shape)
        self.verify()
        stored_shape = fmt.stored_shape(header.shape)
        dtype = fmt.container if fmt.packed else header.code_dtype
        if math.prod(stored_shape) == 0:  # nothing to map
            return np.empty(stored_shape, dtype)
        flat = np.memmap(self._file, dtype, "r", self._codes_offset, (math.prod(stored_shape),))
        codes: np.ndarray = flat.reshape(stored_shape, order="F" if header.fortran_order else "C")
        return codes

    def _read_stored(self, shape: tuple[int, ...]) -> np.ndarray:
        """The next codes as stored (packed or not), those of a chunk of ``shape``."""
        fmt = self.header.format
        dtype = self.header.code_dtype if not fmt.packed else fmt.container
        data = self._read_bytes("codes", self._codes, fmt.stored_bytes(shape), last=False)
        return np.frombuffer(data, dtype).reshape(fmt.stored_shape(shape))

    def read(self, shape: tuple[int, ...]) -> np.ndarray:
        """The next codes, those of a chunk of ``shape`` in the order they are stored (a
        packed chunk's range along the last axis starts on a byte): unpacked, native, checked
        against the range of ``bits``."""
        codes = self.header.checked_codes(self._read_stored(shape), shape)
        return codes.astype(codes.dtype.newbyteorder("="), copy=False)

    def read_packed(self) -> np.ndarray:
        """All the packed codes, checked chunk by chunk (never all unpacked at once)."""
        fmt = self.header.format
        out = np.empty(fmt.stored_shape(self.header.shape), fmt.container)
        for chunk in chunks(self.header.shape, None, CHUNK_ELEMENTS, align=fmt.per_item):
            stored = self._read_stored(chunk.shape)
            self.header.checked_codes(stored, chunk.shape)
            out[packed_slices(chunk, fmt)] = stored
        return out

    def verify(self) -> None:
        """ValueError unless the codes read so far end the member and match its checksum."""
        self._read_bytes("codes", self._codes, 0, last=True)

    def close(self) -> None:
        self._codes.close()
        self._archive.close()
        self._file.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def load(path: str | os.PathLike[str], mmap: bool = False) -> QuantizedArray:
    """Read a :class:`QuantizedArray` written by :func:`save`, exactly as it was saved (codes
    of up to 4 bits come back packed, as the file holds them: ``qa.codes()`` unpacks them).

    Every field is checked as the API checks its arguments (SPEC §1, §5): a file that is not
    a linquant file (a plain ``.npz``, a ``.npy``, text), is truncated or damaged, has a
    compressed member, holds invalid parameters or codes outside the range of its ``bits``,
    or was written in a newer format raises ValueError naming the file and what is wrong.
    Every size the file claims is checked against the file before anything is allocated
    (see the module). Nothing is unpickled. A missing file raises FileNotFoundError.

    ``mmap=True`` maps the codes read-only from the file instead of reading them into memory
    (``qa.data`` is then a ``np.memmap``): they are read through once, chunk by chunk, for
    the same checks, and the file must stay as it is while ``qa`` is used.

    >>> import numpy as np, linquant as lq, tempfile, os
    >>> qa = lq.quantize(np.array([-1.0, 0.5, 2.0], np.float32), bits=2)
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npz")
    >>> lq.save(path, qa)
    >>> lq.load(path)
    QuantizedArray(shape=(3,), format='uint2', bits=2, scheme='asymmetric', scale=1.0, zero_point=1)
    >>> np.load(path, allow_pickle=False)["codes"]  # packed: 0 | 1 << 2 | 3 << 4
    array([52], dtype=uint8)
    """
    if not isinstance(mmap, (bool, np.bool_)):
        raise ValueError(f"mmap must be True or False, got {mmap!r}")
    with Reader(path) as reader:
        header = reader.header
        if mmap:
            return header.quantized(reader.mapped())
        if header.packed:
            data = reader.read_packed()
        else:
            data = reader.read(header.memory_shape)
            data = data.T if header.fortran_order else data
        reader.verify()
    return header.quantized(data)


def _write_npy(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, array, allow_pickle=False)


@contextmanager
def _archive(file: IO[bytes]) -> Iterator[zipfile.ZipFile]:
    """An uncompressed zip archive written to ``file``. An error inside (Ctrl-C included) is
    raised as it is: the archive's own refusal to close around a member it was opening when
    the error came would replace it."""
    archive = zipfile.ZipFile(file, "w", zipfile.ZIP_STORED)
    try:
        yield archive
    except BaseException:
        with suppress(ValueError):
            archive.close()
        raise
    archive.close()


@contextmanager
def writer(
    path: str | os.PathLike[str],
    header: Header,
) -> Iterator[IO[bytes]]:
    """Write a linquant file of ``header``; the caller writes the codes' bytes, in the order
    of ``header.fortran_order``, to the stream it yields. ``path`` is replaced at the end,
    as :func:`linquant._output.replacing` replaces a file."""
    symmetric = header.scheme == "symmetric"
    meta = {
        "format": FORMAT,
        "format_version": _format_version(header),
        "linquant_version": __version__,
        "bits": header.bits,
        "scheme": header.scheme,
        "axis": header.axis,
        "block_size": header.block_size,
        "source_dtype": header.source_dtype.name,
        "shape": list(header.shape),
        "rounding": header.rounding,
        "seed": header.seed,
    }
    if header.packed:
        meta["code_format"] = header.format.name
    fmt = header.format
    with replacing(path) as file, _archive(file) as archive:
        _write_npy(archive, "metadata", np.array(json.dumps(meta)))
        _write_npy(archive, "scale", np.asarray(header.scale))
        if not symmetric:
            _write_npy(archive, "zero_point", _smallest_int(np.asarray(header.zero_point)))
        with archive.open("codes.npy", "w", force_zip64=True) as member:
            npy_header = {
                "descr": np.lib.format.dtype_to_descr(
                    fmt.container if fmt.packed else header.code_dtype
                ),
                "fortran_order": header.fortran_order,
                "shape": fmt.stored_shape(header.shape),
            }
            np.lib.format.write_array_header_1_0(member, npy_header)
            yield member


def _format_version(header: Header) -> int:
    """The oldest format version whose readers read the file right: 3 for packed codes or
    no zero points (symmetric), 2 for rounding other than half to even, else 1."""
    if header.packed or header.scheme == "symmetric":
        return 3
    return 1 if header.rounding == _rounding.DEFAULT else 2


def _smallest_int(values: np.ndarray) -> np.ndarray:
    """``values`` in the narrowest of uint8, int8, uint16, int16 and int32 that holds them."""
    if not values.size:
        return values.astype(np.uint8)
    lo, hi = int(values.min()), int(values.max())
    dtype = np.promote_types(np.min_scalar_type(lo), np.min_scalar_type(hi))
    return values.astype(dtype)


def write_codes(member: IO[bytes], header: Header, codes: np.ndarray) -> None:
    """Write the codes of a chunk (in the order ``header`` stores them; a packed chunk's range
    along the last axis starts on a byte) to the member :func:`writer` yields: packed when
    ``header.packed``."""
    if header.packed:
        fmt = header.format
        stored = np.empty(fmt.stored_shape(codes.shape), fmt.container)
        _backend.active().pack(codes, fmt.width, stored)
        member.write(stored.data)
    else:
        member.write(np.ascontiguousarray(codes).reshape(-1).data)


def save(path: str | os.PathLike[str], qa: QuantizedArray) -> None:
    """Write ``qa`` to ``path`` (str or path-like) as a linquant ``.npz`` file.

    Codes of up to 4 bits are written packed (SPEC §8), zero points in the narrowest integer
    type that holds them, and none for symmetric codes: a 4-bit file takes an eighth of the
    float32 array's bytes.

    The file is written to exactly ``path``: unlike ``np.savez``, no ``.npz`` is appended. It
    replaces ``path`` only once complete (an error leaves an existing file as it was), through
    a symlink, keeping an existing file's permissions; a FIFO or character device is written
    in place, a directory is refused. The codes, the scale's bits, the zero points and every
    field of ``qa`` (``source_dtype``, ``rounding`` and ``seed`` included) come back from
    :func:`load` unchanged; the parameters are checked first, as :func:`load` checks them, so
    a file that ``save`` writes ``load`` reads. The layout is an uncompressed ``.npz`` that
    ``np.load(path, allow_pickle=False)`` opens (see the module ``linquant._io``).

    >>> import numpy as np, linquant as lq, tempfile, os
    >>> qa = lq.quantize(np.arange(6.0).reshape(2, 3), axis=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npz")
    >>> lq.save(path, qa)
    >>> back = lq.load(path)
    >>> back.scale, back.source_dtype
    (array([0.00784314, 0.01960784]), dtype('float64'))
    """
    if not isinstance(qa, QuantizedArray):
        raise TypeError(f"qa must be a QuantizedArray, got {type(qa).__name__}")
    target = os.fspath(path)
    packs = qa.bits in PACKED_BITS and bool(qa.shape)
    data = qa.data if qa.packed else _checks.codes_input(qa.data)
    fortran_order = not packs and data.flags.f_contiguous and not data.flags.c_contiguous
    checked = _checked(
        target,
        qa.shape,
        qa.dtype if qa.packed else data.dtype,
        np.asarray(qa.scale),
        np.asarray(qa.zero_point),
        {
            "bits": qa.bits,
            "scheme": qa.scheme,
            "axis": qa.axis,
            "block_size": qa.block_size,
            "source_dtype": qa.source_dtype,
            "rounding": qa.rounding,
            "seed": qa.seed,
        },
    )
    header = Header(target, qa.shape, qa.dtype, fortran_order, *checked, __version__, packs)
    if qa.packed:
        for chunk in chunks(qa.shape, None, CHUNK_ELEMENTS, align=qa.format.per_item):
            header.checked_codes(qa.data[packed_slices(chunk, qa.format)], chunk.shape)
    else:
        header.check_codes(data)
    with writer(target, header) as member:
        if qa.packed:
            member.write(np.ascontiguousarray(qa.data).data)
        else:
            write_codes(member, header, data.T if fortran_order else data)

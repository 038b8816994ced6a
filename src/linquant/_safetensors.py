"""safetensors files: quantized arrays as plain tensors any safetensors reader loads.

The format (huggingface/safetensors): an unsigned little-endian 64-bit header size ``N``, a
JSON header of ``N`` bytes (an object: for each tensor its ``dtype``, ``shape`` and
``data_offsets`` ``[begin, end)`` in the data after the header; ``__metadata__``, strings to
strings), then the tensors' bytes, little-endian, C order, back to back.

A :class:`QuantizedArray` named ``NAME`` is three tensors and a metadata entry (SPEC §11):
``NAME.codes`` (the codes as stored: packed ``U8`` rows for codes of up to 4 bits, else the
code dtype), ``NAME.scale`` (``F32``/``F64``, 0-d per tensor) and ``NAME.zero_point`` (``I32``;
none for symmetric codes), and ``__metadata__["linquant:NAME"]``, a JSON object of ``bits``,
``scheme``, ``axis``, ``block_size``, ``source_dtype``, ``shape``, ``rounding``, ``seed`` and
``code_format`` (null unless packed). Other tensors are arrays, read as they are.

Reading trusts nothing: the header's size is checked against the file (and
``HEADER_MAX``) before it is read, every entry's dtype, shape and offsets are checked (the
tensors must tile the data exactly, as the safetensors package requires), and quantized
arrays go through the checks of :func:`linquant.load`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import numpy as np

from ._checks import OUTPUT_FLOATS
from ._formats import code_format
from ._groups import grouping
from ._io import Header, _checked, _not_a_number
from ._output import replacing
from ._packing import pack
from ._params import storage_dtype
from ._quantized import PACKED_BITS, QuantizedArray, quantize
from ._version import __version__

# safetensors' dtype names and the NumPy dtypes they are, little-endian
DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
}
NAMES = {dtype: name for name, dtype in DTYPES.items()}
HEADER_MAX = 100_000_000  # the safetensors package's own bound on a header
PREFIX = "linquant:"  # the metadata key of a quantized array: PREFIX + its name
MEMBERS = ("codes", "scale", "zero_point")
SETTINGS = ("bits", "scheme", "axis", "block_size", "source_dtype", "rounding", "seed")


def _stored(qa: QuantizedArray) -> tuple[QuantizedArray, dict[str, np.ndarray]]:
    """``qa`` as it is stored (codes of up to 4 bits packed, as :func:`linquant.save` packs
    them), and its tensors by member name."""
    if not qa.packed and qa.bits in PACKED_BITS and qa.shape:
        packed = pack(qa.data, qa.bits)
        qa = dataclasses.replace(qa, data=packed, length=qa.shape[-1])
    members = {
        "codes": qa.data,
        "scale": np.asarray(qa.scale),
        "zero_point": np.asarray(qa.zero_point, np.int32),
    }
    if qa.scheme == "symmetric":
        del members["zero_point"]
    return qa, members


def _entry(array: np.ndarray) -> tuple[np.ndarray, str]:
    """``array`` as it is written (little-endian), and its safetensors dtype."""
    dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in NAMES:
        raise TypeError(f"safetensors holds no {array.dtype} tensors")
    return array.astype(dtype, copy=False), NAMES[dtype]


def _settings(qa: QuantizedArray) -> str:
    """The metadata entry of a quantized array, as stored (see the module)."""
    return json.dumps(
        {
            **{key: getattr(qa, key) for key in SETTINGS},
            "source_dtype": qa.source_dtype.name,
            "shape": list(qa.shape),
            "code_format": qa.format.name if qa.packed else None,
        }
    )


@dataclasses.dataclass(frozen=True)
class Planned:
    """A tensor of a file being written: its name, dtype (as stored) and shape."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _planned(name: str, array: np.ndarray) -> Planned:
    return Planned(name, _entry(array)[0].dtype, tuple(array.shape))


@contextmanager
def writing(
    path: str | os.PathLike[str], planned: list[Planned], metadata: Mapping[str, str]
) -> Iterator[Callable[[str, np.ndarray], None]]:
    """Write a safetensors file of the ``planned`` tensors, header first: the caller then
    gives each tensor's values, in order, to the function this yields (checked against the
    plan). ``path`` is replaced once every tensor is written, as :func:`linquant.save`
    replaces a file."""
    header: dict[str, Any] = {}
    offset = 0
    for tensor in planned:
        if tensor.name in header or tensor.name == "__metadata__":
            raise ValueError(f"two tensors would be named {tensor.name!r}")
        header[tensor.name] = {
            "dtype": NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    if metadata:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    remaining = iter(planned)
    with replacing(path) as file:
        file.write(struct.pack("<Q", len(text)))
        file.write(text)

        def put(name: str, array: np.ndarray) -> None:
            stored, _ = _entry(array)
            if _planned(name, array) != next(remaining, None):
                raise RuntimeError(f"tensor {name!r} {stored.dtype} {stored.shape}: not planned")
            file.write(np.ascontiguousarray(stored).reshape(-1).data)

        yield put
        if next(remaining, None) is not None:
            raise RuntimeError("a planned tensor was not written")


def _members(name: str, value: object) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors (by name) and metadata entries that ``value``, named ``name``, is stored
    as: a quantized array's three (two) and its settings, or an array."""
    if not isinstance(value, QuantizedArray):
        return {name: np.asarray(value)}, {}
    qa, stored = _stored(value)
    members = {f"{name}.{member}": array for member, array in stored.items()}
    return members, {PREFIX + name: _settings(qa)}


def save_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, QuantizedArray | np.ndarray],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` (names to :class:`QuantizedArray` or arrays) to the safetensors
    file ``path``: each quantized array as its codes, scale and zero point (see the module,
    SPEC §11), readable by the safetensors package alone; ``metadata`` (strings) goes into
    ``__metadata__`` too. ``path`` is replaced only once complete, as :func:`linquant.save`
    replaces a file.

    >>> import numpy as np, linquant as lq, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    >>> lq.save_safetensors(path, {"w": lq.quantize(w, 4, axis=0), "b": np.zeros(2)})
    >>> loaded = lq.load_safetensors(path)
    >>> loaded["w"].format.name, loaded["w"].scale.shape, loaded["b"]
    ('uint4', (2,), array([0., 0.]))
    """
    meta = {str(key): str(value) for key, value in (metadata or {}).items()}
    arrays: dict[str, np.ndarray] = {}
    planned = []
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"a tensor's name must be a non-empty string, got {name!r}")
        members, settings = _members(name, value)
        meta.update(settings)
        for member_name, array in members.items():
            arrays[member_name] = array
            planned.append(_planned(member_name, array))
    with writing(path, planned, meta) as put:
        for tensor in planned:
            put(tensor.name, arrays[tensor.name])


def _entries(
    path: str, header: Any, data_size: int
) -> dict[str, tuple[np.dtype, tuple[int, ...], int]]:
    """Each tensor's dtype, shape and offset in the data, checked: the tensors tile the data."""
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file (its header is not a JSON object)")
    entries = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or sorted(entry) != ["data_offsets", "dtype", "shape"]:
            raise ValueError(f"{path}: tensor {name!r}: an entry of dtype, shape, data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r}: dtype {dtype!r} is not one linquant reads")
        if not isinstance(shape, list) or not all(_size(n) for n in shape):
            raise ValueError(f"{path}: tensor {name!r}: shape must be a list of sizes")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_size, offsets)):
            raise ValueError(f"{path}: tensor {name!r}: data_offsets must be [begin, end]")
        begin, end = offsets
        if (
            not begin <= end <= data_size
            or end - begin != math.prod(shape) * DTYPES[dtype].itemsize
        ):
            raise ValueError(
                f"{path}: tensor {name!r}: data_offsets {offsets} do not hold {shape} {dtype} "
                f"within the {data_size} bytes of data"
            )
        entries[name] = (DTYPES[dtype], tuple(shape), begin)
    position = 0  # the tensors, by offset, must follow each other to the data's end
    for begin, end in sorted(
        (begin, begin + math.prod(shape) * dtype.itemsize)
        for dtype, shape, begin in entries.values()
    ):
        if begin != position:  # a gap, or an overlap
            raise ValueError(f"{path}: damaged safetensors file (tensors overlap or leave gaps)")
        position = end
    if position != data_size:
        raise ValueError(f"{path}: damaged safetensors file (data past its tensors)")
    return entries


def _metadata(path: str, header: dict[str, Any]) -> dict[str, str]:
    """The header's ``__metadata__``, checked: strings to strings."""
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")
    return metadata


def _mapped(file: IO[bytes], dtype: np.dtype, shape: tuple[int, ...], offset: int) -> np.ndarray:
    """A tensor's values, memory-mapped read-only from ``file`` at ``offset``."""
    count = math.prod(shape)
    if count == 0:  # nothing to map
        return np.empty(shape, dtype)
    flat = np.memmap(file, dtype, "r", offset, (count,))
    values: np.ndarray = flat.reshape(shape)
    return values


def _size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _header(path: str, file: IO[bytes], size: int) -> tuple[Any, int]:
    """The parsed JSON header and the offset of the data, the header's size checked first."""
    prefix = file.read(8)
    if len(prefix) != 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than its header's size)")
    (length,) = struct.unpack("<Q", prefix)
    if length > min(size - 8, HEADER_MAX):
        raise ValueError(
            f"{path}: not a safetensors file (a header of {length} bytes in a file of {size})"
        )
    try:
        header = json.loads(file.read(length).decode(), parse_constant=_not_a_number)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{path}: not a safetensors file (its header: {error})") from None
    return header, 8 + length


def load_safetensors(
    path: str | os.PathLike[str], mmap: bool = False
) -> dict[str, QuantizedArray | np.ndarray]:
    """The tensors of the safetensors file ``path``, by name: a :class:`QuantizedArray` for
    each one :func:`save_safetensors` wrote, the others as arrays (native byte order). With
    ``mmap=True`` the tensors' bytes stay in the file, memory-mapped read-only. A file that
    is not a safetensors file, is damaged, or holds invalid quantized arrays raises
    ValueError naming the file and the tensor."""
    name = os.fspath(path)
    with open(name, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        header, data_start = _header(name, file, size)
        entries = _entries(name, header, size - data_start)
        metadata = _metadata(name, header)
        arrays = {}
        for key, (dtype, shape, begin) in entries.items():
            if mmap:
                arrays[key] = _mapped(file, dtype, shape, data_start + begin)
            else:
                file.seek(data_start + begin)
                data = file.read(math.prod(shape) * dtype.itemsize)
                arrays[key] = np.frombuffer(data, dtype).reshape(shape)
    tensors: dict[str, QuantizedArray | np.ndarray] = {}
    for key, value in metadata.items():
        if key.startswith(PREFIX):
            tensors[key[len(PREFIX) :]] = _quantized(name, key[len(PREFIX) :], value, arrays)
    members = {f"{quantized}.{m}" for quantized in tensors for m in MEMBERS}
    for key, array in arrays.items():
        if key not in members:
            tensors[key] = array if mmap else array.astype(array.dtype.newbyteorder("="))
    return tensors


def _quantized(path: str, name: str, text: str, arrays: dict[str, np.ndarray]) -> QuantizedArray:
    """The quantized array ``name``, from its tensors and metadata, checked as
    :func:`linquant.load` checks a file."""
    where = f"{path}: quantized tensor {name!r}"
    try:
        meta = json.loads(text, parse_constant=_not_a_number)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{where}: its metadata is not valid JSON ({error})") from None
    expected = sorted((*SETTINGS, "shape", "code_format"))
    if not isinstance(meta, dict) or sorted(meta) != expected:
        raise ValueError(f"{where}: its metadata must have the keys {expected}")
    shape = meta["shape"]
    if not isinstance(shape, list) or not all(_size(n) for n in shape):
        raise ValueError(f"{where}: shape must be a list of sizes, got {shape!r}")
    if meta["source_dtype"] not in ("float16", "float32", "float64"):
        raise ValueError(f"{where}: source_dtype must be float16, float32 or float64")
    missing = [m for m in MEMBERS if f"{name}.{m}" not in arrays and m != "zero_point"]
    if missing:
        raise ValueError(f"{where}: no tensor {name}.{missing[0]}")
    codes, scale = arrays[f"{name}.codes"], arrays[f"{name}.scale"]
    if scale.dtype.newbyteorder("=") not in OUTPUT_FLOATS:
        raise ValueError(f"{where}: scale must be F32 or F64, got {scale.dtype}")
    zero_point = arrays.get(f"{name}.zero_point", np.zeros(scale.shape, np.int32))
    try:
        checked = _checked(where, tuple(shape), codes.dtype, scale, zero_point, meta)
    except TypeError as error:  # a setting of the wrong type
        raise ValueError(f"{where}: {error}") from None
    packed = meta["code_format"] is not None
    bits, scheme = checked[2], checked[3]
    fmt = code_format(bits, scheme == "symmetric", packed)
    if codes.shape != fmt.stored_shape(tuple(shape)) or (packed and not shape):
        raise ValueError(
            f"{where}: codes have shape {codes.shape}, not {fmt.stored_shape(tuple(shape))}"
        )
    if scheme == "symmetric" and f"{name}.zero_point" in arrays:
        raise ValueError(f"{where}: symmetric codes have no zero point tensor")
    header = Header(
        where,
        tuple(shape),
        storage_dtype(bits, scheme == "symmetric"),
        False,
        *checked,
        __version__,
        packed,
    )
    native = codes.astype(codes.dtype.newbyteorder("="), copy=False)
    header.check_stored(native)
    return header.quantized(native)


def _quantized_plan(
    name: str, shape: tuple[int, ...], source: np.dtype, settings: dict[str, Any]
) -> tuple[list[Planned], str]:
    """The tensors and the metadata entry that quantizing a tensor of ``shape`` and dtype
    ``source`` with ``settings`` (``lq.quantize``'s) will store, before it is quantized."""
    bits, scheme = settings["bits"], settings["scheme"]
    signed = scheme == "symmetric"
    packed = bits in PACKED_BITS and bool(shape)
    fmt = code_format(bits, signed, packed)
    groups = grouping(shape, settings["axis"], settings["block_size"])
    param_shape = () if groups is None else groups.param_shape
    wf = np.dtype("<f8" if source == np.float64 else "<f4")
    codes_dtype = fmt.container if packed else storage_dtype(bits, signed).newbyteorder("<")
    plan = [
        Planned(f"{name}.codes", np.dtype(codes_dtype), fmt.stored_shape(shape)),
        Planned(f"{name}.scale", wf, param_shape),
    ]
    if not signed:
        plan.append(Planned(f"{name}.zero_point", np.dtype("<i4"), param_shape))
    stochastic = settings["rounding"] == "stochastic"
    entry = {
        "bits": bits,
        "scheme": scheme,
        "axis": None if groups is None else groups.axis,
        "block_size": None if groups is None else groups.block_size,
        "source_dtype": source.newbyteorder("=").name,
        "rounding": settings["rounding"],
        "seed": settings["seed"] if stochastic else None,
        "shape": list(shape),
        "code_format": fmt.name if packed else None,
    }
    return plan, json.dumps({key: entry[key] for key in (*SETTINGS, "shape", "code_format")})


def quantize_safetensors(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    include: tuple[str, ...] = ("*",),
    exclude: tuple[str, ...] = (),
    **settings: Any,
) -> list[str]:
    """Write to ``target`` the safetensors file ``source`` with each float tensor whose name
    matches a pattern of ``include`` and none of ``exclude`` (``fnmatch``) quantized by
    ``lq.quantize(tensor, **settings)`` (``bits``, ``scheme``, ``axis``, ``block_size``,
    ``nan``, ``rounding``, ``seed``, ``calibration``) and stored as
    :func:`save_safetensors` stores it; every other tensor and the metadata as they were.
    One tensor at a time, mapped from ``source``: memory holds the largest tensor and its
    codes at most. Returns the names quantized. Errors name the file and the tensor;
    ``target`` is replaced only once complete."""
    name = os.fspath(source)
    settings = {"bits": 8, "scheme": "asymmetric", "axis": None, "block_size": None, **settings}
    settings.setdefault("rounding", "half_even")
    settings.setdefault("seed", None)
    with open(name, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        header, data_start = _header(name, file, size)
        entries = _entries(name, header, size - data_start)
        metadata = dict(_metadata(name, header))
        chosen = [
            key
            for key, (dtype, _, _) in entries.items()
            if dtype.kind == "f"
            and any(fnmatch.fnmatchcase(key, pattern) for pattern in include)
            and not any(fnmatch.fnmatchcase(key, pattern) for pattern in exclude)
        ]
        planned, order = [], sorted(entries, key=lambda key: entries[key][2])
        for key in order:
            dtype, shape, _ = entries[key]
            if key in chosen:
                try:
                    plan, entry = _quantized_plan(key, shape, dtype, settings)
                except ValueError as error:
                    raise ValueError(f"{name}: tensor {key!r}: {error}") from None
                planned += plan
                metadata[PREFIX + key] = entry
            else:
                planned.append(Planned(key, dtype, shape))
        with writing(target, planned, metadata) as put:
            for key in order:
                dtype, shape, begin = entries[key]
                values = _mapped(file, dtype, shape, data_start + begin)
                if key not in chosen:
                    put(key, values)
                    continue
                try:
                    members, entries_made = _members(key, quantize(values, **settings))
                except ValueError as error:
                    raise ValueError(f"{name}: tensor {key!r}: {error}") from None
                if entries_made[PREFIX + key] != metadata[PREFIX + key]:
                    raise RuntimeError(f"tensor {key!r}: settings other than planned")
                for member, array in members.items():
                    put(member, array)
                del values, members
    return chosen

"""GGUF blocks (SPEC §9): Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 byte for byte as ggml's reference
quantizer (``quantize_row_q8_0_ref`` and its siblings in ggml-quants.c), and GGUF files.

These are ggml's arithmetic, not SPEC §2's: each block of 32 values has its own float16 scale
(and minimum), computed in float32 and multiplied by as a reciprocal. The blocks of an array
``(..., n)`` (``n`` a multiple of 32) are ``uint8`` of shape ``(..., n // 32 * type_size)``,
as the ``gguf`` package stores them.

>>> import numpy as np, linquant.gguf
>>> x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
>>> blocks = linquant.gguf.quantize(x, "Q4_0")
>>> blocks.shape, blocks.dtype
((2, 18), dtype('uint8'))
>>> float(np.abs(linquant.gguf.dequantize(blocks, "Q4_0") - x).max()) < 0.07
True
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from . import _backend
from ._formats import BLOCK_TYPE_BY_NAME, BlockType
from ._layout import as_array
from ._output import replacing

__all__ = ["TYPES", "Tensor", "dequantize", "quantize", "read", "write"]

TYPES: Mapping[str, BlockType] = BLOCK_TYPE_BY_NAME
"""The block types, by name: ``TYPES["Q4_0"].type_size == 18``."""

_INPUT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))  # any order


def _block_type(type: object) -> BlockType:
    if isinstance(type, str) and type.upper() in TYPES:
        return TYPES[type.upper()]
    raise ValueError(f"type must be one of {', '.join(TYPES)}, got {type!r}")


def _undefined_block(shape: tuple[int, ...], block: int, name: str) -> ValueError:
    """The error for block number ``block`` (row-major) of an array of ``shape``."""
    per_row = shape[-1] // 32
    row = np.unravel_index(block // per_row, shape[:-1]) if len(shape) > 1 else ()
    start = block % per_row * 32
    where = ", ".join([*(str(int(i)) for i in row), f"{start}:{start + 32}"])
    return ValueError(
        f"{name}[{where}] holds a NaN or an infinity, or a range or scale that overflows "
        "float32: ggml's reference quantizer leaves its codes undefined (SPEC §9)"
    )


def _values(x: object, name: str = "x") -> np.ndarray:
    """``x`` as the float32 array ggml quantizes, once its dtype and shape are checked."""
    arr = as_array(x)
    if arr.dtype.newbyteorder("=") not in _INPUT_DTYPES:
        raise TypeError(f"{name} must be a float16, float32 or float64 array, got {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] % 32:
        raise ValueError(
            f"{name} must have a last axis that is a multiple of 32 (whole blocks), got shape "
            f"{arr.shape}"
        )
    with np.errstate(over="ignore"):  # float64 beyond float32 rounds to inf: its block raises
        return np.require(arr, np.float32, ["C_CONTIGUOUS", "ALIGNED"])  # as the kernels read it


def quantize(x: object, type: str) -> np.ndarray:
    """The GGUF blocks of ``type`` ("Q8_0", "Q4_0", "Q4_1", "Q5_0" or "Q5_1") for ``x``.

    ``x`` is a float16, float32 or float64 array whose last axis is a multiple of 32
    (float64 is rounded to float32 first, as ggml quantizes float32 rows). The result is
    ``uint8`` of shape ``(*x.shape[:-1], x.shape[-1] // 32 * TYPES[type].type_size)``, byte
    for byte what ggml's reference quantizer and ``gguf.quants.quantize`` write. A block
    holding NaN or an infinity, or whose range (Q4_1, Q5_1) or scale's reciprocal overflows
    float32, raises ValueError naming it: ggml converts such values to integers out of their
    range, which C leaves undefined.

    >>> import numpy as np, linquant.gguf
    >>> blocks = linquant.gguf.quantize(np.arange(32, dtype=np.float32), "Q8_0")
    >>> blocks[:2].view(np.float16), blocks[2:6].view(np.int8)  # d = 31 / 127, the codes
    (array([0.2441], dtype=float16), array([ 0,  4,  8, 12], dtype=int8))
    """
    values = _values(x)
    return _blocks(values, _block_type(type), "x", values.shape, 0)


def _blocks(
    values: np.ndarray, block: BlockType, name: str, shape: tuple[int, ...], first: int
) -> np.ndarray:
    """The blocks of ``values``, rows of the array ``name`` of ``shape`` from its block
    number ``first`` on (for the error)."""
    out = _backend.empty_output(block.stored_shape(values.shape), np.dtype(np.uint8))
    undefined = _backend.active().gguf_quantize(values, block.ggml_type, out)
    if undefined >= 0:
        raise _undefined_block(shape, first + undefined, name)
    return out


def dequantize(blocks: object, type: str) -> np.ndarray:
    """The float32 values of GGUF ``blocks`` of ``type``: ``(..., m)`` bytes give
    ``(..., m // type_size * 32)`` values, each ``code * d`` (``+ m`` for Q4_1 and Q5_1) as
    ggml's ``dequantize_row_*`` and ``gguf.quants.dequantize`` compute it.

    >>> import numpy as np, linquant.gguf
    >>> x = np.arange(32, dtype=np.float32)
    >>> linquant.gguf.dequantize(linquant.gguf.quantize(x, "Q4_1"), "Q4_1")[:4]
    array([0.       , 0.       , 2.0664062, 2.0664062], dtype=float32)
    """
    block = _block_type(type)
    stored = np.asarray(blocks)
    if stored.dtype != np.uint8:
        raise TypeError(f"blocks must be a uint8 array, got {stored.dtype}")
    if stored.ndim == 0 or stored.shape[-1] % block.type_size:
        raise ValueError(
            f"blocks must have a last axis that is a multiple of {block.type_size} (whole "
            f"{block.name} blocks), got shape {stored.shape}"
        )
    stored = np.ascontiguousarray(stored)
    shape = (*stored.shape[:-1], stored.shape[-1] // block.type_size * block.block_size)
    out = _backend.empty_output(shape, np.dtype(np.float32))
    _backend.active().gguf_dequantize(stored, block.ggml_type, out)
    return out


# GGUF files (version 3, little-endian): a header, key-value pairs, tensor infos, then each
# tensor's data at an offset that is a multiple of the alignment.
_MAGIC = b"GGUF"
_VERSION = 3
_ALIGNMENT = 32  # ggml's default (GGUF_DEFAULT_ALIGNMENT)
_UINT32 = 4  # the gguf value type of a uint32
_QUANTIZATION_VERSION = 2  # ggml's GGML_QNT_VERSION: the block layouts of these types
_MAX_DIMS = 4  # ggml's GGML_MAX_DIMS


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _padding(size: int) -> bytes:
    return bytes(-size % _ALIGNMENT)


def _header(arrays: Mapping[str, np.ndarray], block: BlockType) -> bytes:
    """Everything before the first tensor's data, padded to the alignment."""
    parts = [_MAGIC, struct.pack("<IQQ", _VERSION, len(arrays), 1)]
    parts += [
        _string("general.quantization_version"),
        struct.pack("<II", _UINT32, _QUANTIZATION_VERSION),
    ]
    offset = 0
    for name, array in arrays.items():
        ggml_shape = array.shape[::-1]  # ggml counts dimensions from the innermost
        parts += [_string(name), struct.pack(f"<I{len(ggml_shape)}Q", len(ggml_shape), *ggml_shape)]
        parts.append(struct.pack("<IQ", block.ggml_type, offset))
        size = int(np.prod(block.stored_shape(array.shape)))
        offset += size + len(_padding(size))
    header = b"".join(parts)
    return header + _padding(len(header))


def write(
    path: str | os.PathLike[str],
    tensors: Mapping[str, object],
    type: str,
    *,
    overwrite: bool = False,
) -> None:
    """Write ``tensors`` (``{name: array}``) to the GGUF file ``path``, each as blocks of
    ``type`` (see :func:`quantize`), readable by ggml, llama.cpp and ``gguf.GGUFReader``.

    Arrays have 1 to 4 axes, the last a multiple of 32. An existing ``path`` raises
    FileExistsError unless ``overwrite``; the file is written beside it and renamed over it
    once complete, so an error (a NaN in the last tensor) leaves no half-written file.

    >>> import numpy as np, linquant.gguf, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.gguf")
    >>> linquant.gguf.write(path, {"w": np.ones((2, 64), np.float32)}, "Q8_0")
    >>> linquant.gguf.read(path)["w"].dequantize()[:, :3]  # 127 * d, d = 1/127 in float16
    array([[0.99993896, 0.99993896, 0.99993896],
           [0.99993896, 0.99993896, 0.99993896]], dtype=float32)
    """
    block = _block_type(type)
    arrays: dict[str, np.ndarray] = {}
    for name, array in tensors.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"tensor names must be non-empty strings, got {name!r}")
        arrays[name] = _values(array, name)
        if arrays[name].ndim > _MAX_DIMS:
            raise ValueError(
                f"{name} must have at most {_MAX_DIMS} axes, got shape {arrays[name].shape}"
            )
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{os.fspath(path)} exists: pass overwrite=True to replace it")
    with replacing(path) as file:
        file.write(_header(arrays, block))
        for name, array in arrays.items():
            _write_blocks(file, name, array, block)


def _write_blocks(file: IO[bytes], name: str, array: np.ndarray, block: BlockType) -> None:
    """The blocks of ``array``, padded to the alignment, quantized a slab of rows at a time."""
    rows = array.reshape(-1, array.shape[-1])
    step = max(1, (1 << 22) // max(1, array.shape[-1]))  # about 16 MiB of float32 a slab
    per_row = array.shape[-1] // block.block_size
    for start in range(0, len(rows), step):
        slab = rows[start : start + step]
        file.write(_blocks(slab, block, name, array.shape, start * per_row).tobytes())
    file.write(_padding(int(np.prod(block.stored_shape(array.shape)))))


# ggml's storage types (ggml.h's enum ggml_type): name, number, values a block, bytes a block.
# A file's tensors of any of them are read; those of TYPES, F32 and F16 also dequantized.
_STORAGE = {
    number: (name, block_size, type_size)
    for name, number, block_size, type_size in [
        ("F32", 0, 1, 4), ("F16", 1, 1, 2), ("Q4_0", 2, 32, 18), ("Q4_1", 3, 32, 20),
        ("Q5_0", 6, 32, 22), ("Q5_1", 7, 32, 24), ("Q8_0", 8, 32, 34), ("Q8_1", 9, 32, 40),
        ("Q2_K", 10, 256, 84), ("Q3_K", 11, 256, 110), ("Q4_K", 12, 256, 144),
        ("Q5_K", 13, 256, 176), ("Q6_K", 14, 256, 210), ("Q8_K", 15, 256, 292),
        ("IQ2_XXS", 16, 256, 66), ("IQ2_XS", 17, 256, 74), ("IQ3_XXS", 18, 256, 98),
        ("IQ1_S", 19, 256, 50), ("IQ4_NL", 20, 32, 18), ("IQ3_S", 21, 256, 110),
        ("IQ2_S", 22, 256, 82), ("IQ4_XS", 23, 256, 136), ("I8", 24, 1, 1), ("I16", 25, 1, 2),
        ("I32", 26, 1, 4), ("I64", 27, 1, 8), ("F64", 28, 1, 8), ("IQ1_M", 29, 256, 56),
        ("BF16", 30, 1, 2), ("TQ1_0", 34, 256, 54), ("TQ2_0", 35, 256, 66),
        ("MXFP4", 39, 32, 17),
    ]
}  # fmt: skip
_VALUES = {
    "F32": "<f4",
    "F16": "<f2",
    "F64": "<f8",
    "I8": "i1",
    "I16": "<i2",
    "I32": "<i4",
    "I64": "<i8",
}
# gguf value types: the struct format of each fixed-size one (8 is a string, 9 an array).
_VALUE_FORMATS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING_TYPE, _ARRAY_TYPE = 8, 9


@dataclass(frozen=True)
class Tensor:
    """A tensor of a GGUF file: its ``type`` (ggml's name, "Q8_0", "F32"...), its ``shape``
    (NumPy's order: the last axis is ggml's first) and its stored ``data``, a read-only view
    of the file: the values for F32, F16, F64 and the integer types, else ``uint8`` blocks of
    shape ``(*shape[:-1], bytes a row)``."""

    type: str
    shape: tuple[int, ...]
    data: np.ndarray

    def dequantize(self) -> np.ndarray:
        """The values, as float32 (the block types of :data:`TYPES`, F32 and F16)."""
        if self.type in TYPES:
            return dequantize(self.data, self.type)
        if self.type in ("F32", "F16"):
            return self.data.astype(np.float32)
        raise ValueError(f"{self.type} tensors are not dequantized by linquant.gguf")


class _Cursor:
    """Reads a GGUF file's header from ``data``, every read checked against its end."""

    def __init__(self, data: np.ndarray, path: str) -> None:
        self.data, self.path, self.at = data, path, 0

    def error(self, what: str) -> ValueError:
        return ValueError(f"{self.path}: {what}")

    def take(self, size: int, what: str) -> bytes:
        if size > len(self.data) - self.at:
            raise self.error(f"truncated: {what} needs {size} bytes at offset {self.at}")
        chunk = bytes(self.data[self.at : self.at + size])
        self.at += size
        return chunk

    def number(self, code: str, what: str) -> Any:
        return struct.unpack("<" + code, self.take(struct.calcsize(code), what))[0]

    def string(self, what: str) -> str:
        try:
            return self.take(self.number("Q", what), what).decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not UTF-8") from None

    def count(self, what: str, least_bytes: int) -> int:
        """A count of items of at least ``least_bytes`` each, which the file must hold."""
        n: int = self.number("Q", what)
        if n * least_bytes > len(self.data) - self.at:
            raise self.error(f"{what} claims {n} items, more than the file holds")
        return n

    def value(self, value_type: int, what: str) -> Any:
        """A key's value: a number or a string (arrays are skipped, as None)."""
        if value_type == _STRING_TYPE:
            return self.string(what)
        if value_type == _ARRAY_TYPE:
            item_type = self.number("I", what)
            if item_type in _VALUE_FORMATS:
                size = struct.calcsize(_VALUE_FORMATS[item_type])
                self.take(size * self.count(what, size), what)
            elif item_type in (_STRING_TYPE, _ARRAY_TYPE):  # each at least its 8-byte count
                for _ in range(self.count(what, 8)):
                    self.value(item_type, what)
            else:
                raise self.error(f"{what} has items of unknown type {item_type}")
            return None
        if value_type not in _VALUE_FORMATS:
            raise self.error(f"{what} has unknown type {value_type}")
        return self.number(_VALUE_FORMATS[value_type], what)


def read(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of the GGUF file ``path`` (versions 2 and 3, little-endian), by name.

    Every count, size and offset the file claims is checked against the file before anything
    is built on it; a file that is not valid GGUF raises ValueError naming it.
    """
    name = os.fspath(path)
    with open(name, "rb") as file:
        if file.read(4) != _MAGIC:
            raise ValueError(f"{name}: not a GGUF file (no GGUF magic)")
    data = np.memmap(name, np.uint8, "r")
    cursor = _Cursor(data, name)
    cursor.take(4, "the magic")
    version = cursor.number("I", "the version")
    if version not in (2, 3):
        raise cursor.error(f"GGUF version {version} is not read (2 and 3 are)")
    tensor_count = cursor.number("Q", "the tensor count")
    alignment = _ALIGNMENT
    for _ in range(cursor.count("the key-value pairs", 13)):  # key, type, value: 13 bytes
        key = cursor.string("a key")
        value = cursor.value(cursor.number("I", key), key)
        if key == "general.alignment":
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value <= 0
                or value & (value - 1)
            ):
                raise cursor.error(f"general.alignment must be a power of two, got {value!r}")
            alignment = value
    if tensor_count * 24 > len(data) - cursor.at:  # name, dimensions, type, offset: 24 bytes
        raise cursor.error(f"claims {tensor_count} tensors, more than the file holds")
    infos = [_tensor_info(cursor) for _ in range(tensor_count)]
    start = cursor.at + -cursor.at % alignment
    tensors: dict[str, Tensor] = {}
    for tensor_name, type_number, shape, offset in infos:
        if tensor_name in tensors:
            raise cursor.error(f"tensor {tensor_name} is named twice")
        if offset % alignment:
            raise cursor.error(f"tensor {tensor_name} is not aligned to {alignment} bytes")
        tensors[tensor_name] = _tensor(cursor, tensor_name, type_number, shape, start + offset)
    return tensors


def _tensor_info(cursor: _Cursor) -> tuple[str, int, tuple[int, ...], int]:
    name = cursor.string("a tensor name")
    n_dims = cursor.number("I", name)
    if n_dims > _MAX_DIMS:
        raise cursor.error(f"tensor {name} has {n_dims} dimensions, more than {_MAX_DIMS}")
    dims = [cursor.number("Q", name) for _ in range(n_dims)]
    return name, cursor.number("I", name), tuple(reversed(dims)), cursor.number("Q", name)


def _tensor(
    cursor: _Cursor, name: str, type_number: int, shape: tuple[int, ...], at: int
) -> Tensor:
    """A tensor's data as a view of the file, once its type, shape, size and place are checked."""
    if type_number not in _STORAGE:
        raise cursor.error(f"tensor {name} has unknown ggml type {type_number}")
    type_name, block_size, type_size = _STORAGE[type_number]
    if math.prod(n for n in shape if n) * 8 >= 2**63:  # even empty: NumPy's size limit
        raise cursor.error(f"tensor {name} has shape {shape}, more elements than NumPy holds")
    row = shape[-1] if shape else 1
    if row % block_size:
        raise cursor.error(f"tensor {name} of {type_name} has rows of {row}, not whole blocks")
    size = math.prod(shape[:-1]) * (row // block_size * type_size)
    if size > len(cursor.data) - at:
        raise cursor.error(f"tensor {name} lies outside the file (offset {at}, {size} bytes)")
    stored = cursor.data[at : at + size]
    if type_name in _VALUES:
        return Tensor(type_name, shape, stored.view(_VALUES[type_name]).reshape(shape))
    return Tensor(type_name, shape, stored.reshape((*shape[:-1], row // block_size * type_size)))

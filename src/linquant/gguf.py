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

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from . import _backend
from ._formats import BLOCK_TYPE_BY_NAME, BlockType
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
    arr = np.asarray(x)
    if arr.dtype.newbyteorder("=") not in _INPUT_DTYPES:
        raise TypeError(f"{name} must be a float16, float32 or float64 array, got {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] % 32:
        raise ValueError(
            f"{name} must have a last axis that is a multiple of 32 (whole blocks), got shape "
            f"{arr.shape}"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


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
    (array([0.2441], dtype=float16), array([0, 4, 8, 12], dtype=int8))
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
    array([0.     , 2.06543, 2.06543, 4.13086], dtype=float32)
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
    >>> linquant.gguf.read(path)["w"].dequantize()[:, :3]
    array([[1., 1., 1.],
           [1., 1., 1.]], dtype=float32)
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


@dataclass(frozen=True)
class Tensor:
    """A tensor of a GGUF file: its ``type`` (ggml's name, "Q8_0", "F32"...), its ``shape``
    (NumPy's order: the last axis is ggml's first) and its stored ``data`` (``uint8`` blocks
    of a block type, else the values), a read-only view of the file."""

    type: str
    shape: tuple[int, ...]
    data: np.ndarray

    def dequantize(self) -> np.ndarray:
        """The values, as float32 (for the block types of :data:`TYPES`, F32 and F16)."""
        if self.type in TYPES:
            return dequantize(self.data, self.type)
        if self.type in ("F32", "F16"):
            return self.data.astype(np.float32).reshape(self.shape)
        raise ValueError(f"{self.type} tensors are not dequantized by linquant.gguf")


def read(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of the GGUF file ``path``, by name, read by ``gguf.GGUFReader`` (the
    ``gguf`` extra: ``pip install linquant[gguf]``). A file that is not a valid GGUF file
    raises ValueError naming it.
    """
    try:
        import gguf
    except ImportError as error:
        raise ImportError(
            "linquant.gguf.read needs the gguf package: pip install linquant[gguf]"
        ) from error
    try:
        reader = gguf.GGUFReader(path, "r")
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, struct.error) as error:
        raise ValueError(f"{os.fspath(path)}: not a valid GGUF file ({error})") from None
    tensors: dict[str, Tensor] = {}
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
        tensors[tensor.name] = Tensor(tensor.tensor_type.name, shape, _checked(tensor, shape, path))
    return tensors


def _checked(tensor: Any, shape: tuple[int, ...], path: str | os.PathLike[str]) -> np.ndarray:
    """The data of a tensor of a block type, once its size agrees with its shape."""
    name = tensor.tensor_type.name
    if name in TYPES:
        block = TYPES[name]
        if not shape or shape[-1] % block.block_size or tensor.data.dtype != np.uint8:
            raise ValueError(f"{os.fspath(path)}: tensor {tensor.name} of {name} has shape {shape}")
        expected = block.stored_shape(shape)
        if tensor.data.shape != expected:
            raise ValueError(
                f"{os.fspath(path)}: tensor {tensor.name} holds bytes of shape "
                f"{tensor.data.shape}, not {expected}"
            )
    data: np.ndarray = tensor.data
    return data

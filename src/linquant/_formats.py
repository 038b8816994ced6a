"""Code formats (SPEC §8): how codes of a given width are stored, one row per format.

Every reader of codes — the API, ``QuantizedArray``, files, the codec, ``linquant.dask``, the
CLI — asks this table how a format is stored, so that a format is one row plus its pack and
unpack kernels (``pack``/``unpack`` of both backends, which take the row's ``width``).

Packed formats hold ``per_byte`` codes of ``width`` bits in each byte, along the last axis of
the array in C order, each row starting on a byte boundary: the codes ``(..., n)`` are stored
as bytes ``(..., ceil(n / per_byte))``. Element ``j`` of a row lies in byte ``j // per_byte``,
the first from the low bits up for 2- and 4-bit codes (the ONNX layouts) and from the most
significant bit down for 1-bit codes (``np.packbits``); unused bits are zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CodeFormat:
    """Codes of up to ``width`` bits, signed or not, stored in items of ``container``."""

    name: str
    width: int
    signed: bool
    container: np.dtype

    @property
    def per_item(self) -> int:
        """Codes held by one item of the container: 1 unless packed."""
        return 8 * self.container.itemsize // self.width

    @property
    def packed(self) -> bool:
        return self.per_item > 1

    def stored_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the stored codes of an array of ``shape``; a packed 0-d array is one
        row of one code."""
        if not self.packed:
            return shape
        if not shape:
            return (1,)
        return (*shape[:-1], -(-shape[-1] // self.per_item))

    def stored_bytes(self, shape: tuple[int, ...]) -> int:
        return math.prod(self.stored_shape(shape)) * self.container.itemsize


_U8, _I8 = np.dtype(np.uint8), np.dtype(np.int8)
FORMATS = (
    CodeFormat("uint1", 1, False, _U8),
    CodeFormat("int1", 1, True, _U8),  # the codes -1 and +1, stored as the bits 0 and 1
    CodeFormat("uint2", 2, False, _U8),
    CodeFormat("int2", 2, True, _U8),
    CodeFormat("uint4", 4, False, _U8),
    CodeFormat("int4", 4, True, _U8),
    CodeFormat("uint8", 8, False, _U8),
    CodeFormat("int8", 8, True, _I8),
    CodeFormat("uint16", 16, False, np.dtype(np.uint16)),
    CodeFormat("int16", 16, True, np.dtype(np.int16)),
)
BY_NAME = {f.name: f for f in FORMATS}
PACKED_WIDTHS = tuple(sorted({f.width for f in FORMATS if f.packed}))


def code_format(bits: int, signed: bool, packed: bool) -> CodeFormat:
    """The format of ``bits``-bit codes: the narrowest packed one that holds them when
    ``packed`` (codes of over 4 bits are never packed), else 8 or 16 bits a code."""
    return next(
        f for f in FORMATS if f.signed == signed and f.width >= bits and (packed or not f.packed)
    )


class StoredCodes:
    """The shape and format of the codes in ``data``: packed along the last axis where
    ``length`` (that axis' length in codes) is not None. A base of ``QuantizedArray`` and of
    ``linquant.dask``'s, whose fields these are."""

    data: Any
    bits: int
    scheme: str
    length: int | None

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the quantized array (of the codes, unpacked)."""
        if self.length is None:
            return tuple(self.data.shape)
        return (*self.data.shape[:-1], self.length)

    @property
    def packed(self) -> bool:
        """Whether ``data`` holds the codes packed into bytes (SPEC §8)."""
        return self.length is not None

    @property
    def format(self) -> CodeFormat:
        """How the codes are stored: a row of the code format table (``uint4``, ``int8``...)."""
        return code_format(self.bits, self.scheme == "symmetric", self.packed)


@dataclass(frozen=True)
class BlockType:
    """A GGUF block type (SPEC §9): ``block_size`` values a block, stored in ``type_size``
    bytes as a float16 scale ``d`` (and a float16 minimum ``m`` where ``affine``), the bit 4
    of each code (5-bit types) and the codes; ``ggml_type`` is ggml's number for it."""

    name: str
    ggml_type: int
    bits: int
    affine: bool
    type_size: int
    block_size: int = 32

    @property
    def codes_offset(self) -> int:
        """Where the low 4 (or 8) bits of the codes start in a block: after d, m and qh."""
        low_bytes = self.block_size if self.bits == 8 else self.block_size // 2  # nibbles
        return self.type_size - low_bytes

    def stored_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The bytes of an array of ``shape`` (its last axis a multiple of ``block_size``)."""
        return (*shape[:-1], shape[-1] // self.block_size * self.type_size)


BLOCK_TYPES = (
    BlockType("Q4_0", 2, 4, False, 18),
    BlockType("Q4_1", 3, 4, True, 20),
    BlockType("Q5_0", 6, 5, False, 22),
    BlockType("Q5_1", 7, 5, True, 24),
    BlockType("Q8_0", 8, 8, False, 34),
)
BLOCK_TYPE_BY_NAME = {t.name: t for t in BLOCK_TYPES}


def block_type(ggml_type: int) -> BlockType:
    """The row of ggml's type number ``ggml_type``."""
    for row in BLOCK_TYPES:
        if row.ggml_type == ggml_type:
            return row
    raise ValueError(f"ggml_type must be a GGUF block type linquant knows, got {ggml_type}")


def check_block_shapes(
    block: BlockType, values_shape: tuple[int, ...], bytes_shape: tuple[int, ...]
) -> None:
    """Raise ValueError unless values of ``values_shape`` make blocks of ``bytes_shape``."""
    if values_shape[-1] % block.block_size or block.stored_shape(values_shape) != bytes_shape:
        raise ValueError(
            f"{block.name} blocks of values of shape {values_shape} must have whole blocks "
            f"along the last axis and shape {block.stored_shape(values_shape)}, got {bytes_shape}"
        )

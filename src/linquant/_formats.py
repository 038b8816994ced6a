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

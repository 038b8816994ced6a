"""A numcodecs codec: linquant's quantization as a filter or compressor of Zarr chunks.

``Linquant`` quantizes each chunk it encodes, with fixed parameters (``scale=`` given) or
with parameters chosen from the chunk's own range (SPEC §4; per tensor, per channel or per
block), and stores the parameters in the encoded chunk, so that every chunk decodes on its
own. Out-of-range values saturate (SPEC §2): numcodecs' ``FixedScaleOffset`` casts without
clipping, so there -1 is stored as 255.

The codec is registered with numcodecs under the id ``"linquant"`` by the
``numcodecs.codecs`` entry point, so ``numcodecs.get_codec({"id": "linquant", ...})`` finds it
without importing linquant first. It needs the ``numcodecs`` extra:
``pip install linquant[numcodecs]``.

An encoded chunk is a little-endian header, then the parameters, then the codes::

    magic b"LQNT" | version u8 | code dtype u8 | scale dtype u8 | ndim u8 | axis u8 (255: none)
    | 7 padding bytes | block_size u64 (0: none) | shape: ndim x u64
    | scales: the float of the scale dtype, one per group | zero points: int32, one per group
    | codes: prod(shape) of the code dtype, C order

>>> import numpy as np, linquant.codec
>>> codec = linquant.codec.Linquant(bits=8)
>>> x = np.array([[-1.0, 0.0], [0.5, 2.0]], np.float32)
>>> codec.decode(codec.encode(x)).reshape(x.shape)
array([[-1.        ,  0.        ],
       [ 0.49411765,  2.        ]], dtype=float32)
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

# numcodecs has no type information: its names are Any (the ignores also cover type checks
# where it is not installed).
try:
    from numcodecs.abc import Codec  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from numcodecs.compat import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        ensure_contiguous_ndarray,
        ensure_ndarray_like,
        ndarray_copy,
    )
except ImportError as error:  # pragma: no cover - numcodecs is in the test extra
    raise ImportError(
        "linquant.codec needs numcodecs: pip install 'linquant[numcodecs]'"
    ) from error

from . import _checks
from ._api import dequantize_linear, dynamic_settings, quantize_linear
from ._groups import group_args, grouping
from ._params import storage_dtype
from ._quantized import quantize

FORMAT_VERSION = 1
_MAGIC = b"LQNT"
_HEADER = struct.Struct("<4sBBBBB7xQ")
_NO_AXIS = 255
# Codes of the dtypes in a header; never renumbered, so that old chunks stay readable.
_CODE_DTYPES = {1: "uint8", 2: "int8", 3: "uint16", 4: "int16"}
_SCALE_DTYPES = {1: "float32", 2: "float64"}


def _code_of(table: dict[int, str], dtype: np.dtype) -> int:
    return next(code for code, name in table.items() if name == dtype.name)


def _dtype_of(table: dict[int, str], code: int, what: str) -> np.dtype:
    if code not in table:
        raise ValueError(f"corrupted linquant chunk: unknown {what} code {code}")
    dtype: np.dtype = np.dtype(table[code]).newbyteorder("<")
    return dtype


def encode_chunk(
    codes: np.ndarray,
    scale: Any,
    zero_point: Any,
    axis: int | None = None,
    block_size: int | None = None,
) -> bytes:
    """One encoded chunk: header, ``scale`` and ``zero_point`` (one per group), ``codes``."""
    scales = np.asarray(scale).reshape(-1)
    header = _HEADER.pack(
        _MAGIC,
        FORMAT_VERSION,
        _code_of(_CODE_DTYPES, codes.dtype),
        _code_of(_SCALE_DTYPES, scales.dtype),
        codes.ndim,
        _NO_AXIS if axis is None else axis,
        block_size or 0,
    )
    return b"".join(
        (
            header,
            struct.pack(f"<{codes.ndim}Q", *codes.shape),
            scales.astype(scales.dtype.newbyteorder("<")).tobytes(),
            np.asarray(zero_point, dtype="<i4").reshape(-1).tobytes(),
            codes.astype(codes.dtype.newbyteorder("<"), copy=False).tobytes(),
        )
    )


def decode_chunk(buf: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None, int | None]:
    """``(codes, scale, zero_point, axis, block_size)`` of an encoded chunk.

    Raises ValueError if ``buf`` is not a whole chunk of this format (truncated, too long,
    or with a header that makes no sense).
    """
    data = memoryview(ensure_contiguous_ndarray(buf).reshape(-1).view(np.uint8))
    if len(data) < _HEADER.size:
        raise ValueError(f"truncated linquant chunk: {len(data)} bytes, shorter than its header")
    magic, version, code_dtype, scale_dtype, ndim, axis, block_size = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError(f"not a linquant chunk: it starts with {bytes(magic)!r}")
    if version != FORMAT_VERSION:
        raise ValueError(f"linquant chunk format version {version} is not supported")
    codes_dtype = _dtype_of(_CODE_DTYPES, code_dtype, "code dtype")
    scales_dtype = _dtype_of(_SCALE_DTYPES, scale_dtype, "scale dtype")
    offset = _HEADER.size + 8 * ndim
    if len(data) < offset:
        raise ValueError("truncated linquant chunk: its shape is cut off")
    shape = struct.unpack_from(f"<{ndim}Q", data, _HEADER.size)
    try:
        groups = grouping(shape, None if axis == _NO_AXIS else axis, block_size or None)
    except ValueError as error:
        raise ValueError(f"corrupted linquant chunk: {error}") from None
    n_params = 1 if groups is None else math.prod(groups.param_shape)
    n_codes = math.prod(shape)
    sizes = (n_params * scales_dtype.itemsize, n_params * 4, n_codes * codes_dtype.itemsize)
    if len(data) != offset + sum(sizes):
        raise ValueError(
            f"truncated or corrupted linquant chunk: {len(data)} bytes where its header "
            f"says {offset + sum(sizes)}"
        )
    scale = np.frombuffer(data, scales_dtype, n_params, offset)
    zero_point = np.frombuffer(data, "<i4", n_params, offset + sizes[0])
    codes = np.frombuffer(data, codes_dtype, n_codes, offset + sizes[0] + sizes[1])
    if groups is None:
        return codes.reshape(shape), scale[0], zero_point[0], None, None
    return (
        codes.reshape(shape),
        scale.reshape(groups.param_shape),
        zero_point.reshape(groups.param_shape),
        groups.axis,
        groups.block_size,
    )


class Linquant(Codec):  # type: ignore[misc]
    """Quantize chunks to integer codes; decode them to ``astype`` floats.

    Dynamic parameters (the default): each chunk is quantized as :func:`linquant.quantize`
    would quantize it, with ``bits``, ``scheme``, ``axis``, ``block_size``, ``include_zero``,
    ``narrow_range`` and ``nan`` meaning what they mean there (``axis`` counts the chunk's
    dimensions). Fixed parameters (``scale`` given): every chunk is quantized as
    :func:`linquant.quantize_linear` would, with ``scale``, ``zero_point`` and the codes of
    ``bits`` bits and ``scheme`` (unsigned for asymmetric, signed for symmetric). Either way
    decoding is :func:`linquant.dequantize_linear` to ``astype`` (float32 or float64), the
    dtype of the Zarr array it serves. Bad arguments raise ValueError here, not at the first
    chunk.

    >>> import numpy as np, numcodecs
    >>> from linquant.codec import Linquant
    >>> codec = Linquant(scale=0.5, zero_point=10)
    >>> x = np.array([-100.0, -1.0, 0.25, 100.0], np.float32)
    >>> codec.decode(codec.encode(x))  # -100 saturates to code 0: -5.0
    array([ -5.,  -1.,   0., 100.], dtype=float32)
    >>> numcodecs.get_codec(codec.get_config()) == codec
    True
    """

    codec_id = "linquant"

    def __init__(
        self,
        bits: int = 8,
        scheme: str = "asymmetric",
        axis: int | None = None,
        block_size: int | None = None,
        include_zero: bool = True,
        narrow_range: bool = False,
        nan: str = "raise",
        scale: float | None = None,
        zero_point: int = 0,
        astype: str = "float32",
    ) -> None:
        self.bits = _checks.bits(bits)
        self.scheme = _checks.scheme(scheme)
        self.axis, self.block_size = group_args(axis, block_size)
        self.include_zero = bool(include_zero)
        self.narrow_range = bool(narrow_range)
        self.nan = _checks.nan_policy(nan)
        self.scale = None if scale is None else float(_checks.scale(scale, np.float64))
        self.zero_point = _checks.zero_point(zero_point)
        self.astype = _checks.output_float(astype).name
        if self.scale is None:
            if self.zero_point:
                raise ValueError("zero_point applies to fixed parameters (scale=) only")
            dynamic_settings(self.bits, self.scheme, self.nan, self.include_zero, self.narrow_range)
        elif self.axis is not None or not self.include_zero:
            raise ValueError("axis, block_size and include_zero apply to dynamic parameters only")
        else:  # the checks of quantize_linear: narrow_range, and the scale in float64
            self._fixed_codes(np.zeros(0))

    def _fixed_codes(self, x: object) -> np.ndarray:
        return quantize_linear(
            x,
            self.scale,
            self.zero_point,
            dtype=storage_dtype(self.bits, self.scheme == "symmetric"),
            bits=self.bits,
            narrow_range=self.narrow_range,
            nan=self.nan,
        )

    def encode(self, buf: object) -> bytes:
        """The chunk ``buf`` (a float array of any shape) quantized, with its parameters."""
        x = ensure_ndarray_like(buf)
        if self.scale is not None:
            return encode_chunk(self._fixed_codes(x), np.float64(self.scale), self.zero_point)
        qa = quantize(
            x,
            self.bits,
            self.scheme,
            axis=self.axis,
            block_size=self.block_size,
            include_zero=self.include_zero,
            narrow_range=self.narrow_range,
            nan=self.nan,
        )
        return encode_chunk(qa.data, qa.scale, qa.zero_point, qa.axis, qa.block_size)

    def decode(self, buf: object, out: object = None) -> Any:
        """The dequantized chunk, flat (C order), or written into ``out``."""
        codes, scale, zero_point, axis, block_size = decode_chunk(buf)
        x_hat = dequantize_linear(
            codes, scale, zero_point, axis=axis, block_size=block_size, dtype=self.astype
        ).reshape(-1)
        return ndarray_copy(x_hat, out)

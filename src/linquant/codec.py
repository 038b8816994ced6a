"""A numcodecs codec: linquant's quantization as a filter or compressor of Zarr chunks.

``Linquant`` quantizes each chunk it encodes, with fixed parameters (``scale=`` given) or
with parameters chosen from the chunk's own range (SPEC §4; per tensor, per channel or per
block), and stores the parameters in the encoded chunk, so that every chunk decodes on its
own. Out-of-range values saturate (SPEC §2): numcodecs' ``FixedScaleOffset`` casts without
clipping, so there -1 is stored as 255. With ``pack=True``, codes of 1 to 4 bits are stored
packed into bytes (SPEC §8): two 3- or 4-bit codes a byte, four 2-bit, eight 1-bit codes.

The codec is registered with numcodecs under the id ``"linquant"`` by the
``numcodecs.codecs`` entry point, so ``numcodecs.get_codec({"id": "linquant", ...})`` finds it
without importing linquant first. It needs the ``numcodecs`` extra:
``pip install linquant[numcodecs]``.

An encoded chunk is a little-endian header, then the parameters, then the codes::

    magic b"LQNT" | version u8 (2; 3: packed codes) | code dtype u8 | scale dtype u8 | ndim u8
    | axis u8 (255: none) | source dtype u8 | order u8 (0: C, 1: F) | 5 zero bytes
    | block_size u64 (0: none) | shape: ndim x u64
    | scales: the float of the scale dtype, one per group | zero points: int32, one per group
    | codes: version 2: prod(shape) of the code dtype, in the order of the order byte;
             version 3: prod(shape[:-1]) rows of ceil(shape[-1] / per byte) bytes, in C order

The code dtype is 1 (uint8), 2 (int8), 3 (uint16) or 4 (int16) in versions 1 and 2, and a
packed format in version 3 (SPEC §8): 5 (uint1), 6 (int1: -1 and +1 as the bits 0 and 1),
7 (uint2), 8 (int2), 9 (uint4) or 10 (int4; 3-bit codes are stored as 4-bit ones). A packed
chunk has at least one dimension; its codes are those of ``lq.quantize(chunk, pack=True)``,
packed along the chunk's last axis in C order whatever its memory order (the order byte is
then the order it decodes to), each row starting on a byte, the unused bits zero.
Packed chunks alone are version 3, so that decoders that predate them refuse them (format
version 3 is not supported) rather than misread them; all others are written as version 2.
The source dtype (float16, float32 or float64) is the dtype the chunk was encoded from and
decodes to; the order is the chunk's memory order, which numcodecs and Zarr 2 read a chunk's
values in. Format version 1 had 7 padding bytes in place of the source dtype, the order and
the zero bytes: its chunks are in C order and decode to the codec's ``astype``.

>>> import numpy as np, linquant.codec
>>> codec = linquant.codec.Linquant(bits=8)
>>> x = np.array([[-1.0, 0.0], [0.5, 2.0]], np.float32)
>>> codec.decode(codec.encode(x))
array([[-1.        ,  0.        ],
       [ 0.49411765,  2.        ]], dtype=float32)
"""

from __future__ import annotations

import math
import struct
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np

# numcodecs has no type information: its names are Any (the ignores also cover type checks
# where it is not installed).
try:
    from numcodecs.abc import Codec  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from numcodecs.compat import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        ensure_contiguous_ndarray,
        ensure_contiguous_ndarray_like,
        ensure_ndarray_like,
    )
except ImportError as error:  # pragma: no cover - numcodecs is in the test extra
    raise ImportError(
        "linquant.codec needs numcodecs: pip install 'linquant[numcodecs]'"
    ) from error

from . import _checks, _rounding
from ._api import _checked_params, dequantize_linear, dynamic_settings, quantize_linear
from ._formats import BY_NAME, CodeFormat, code_format
from ._groups import group_args, grouping
from ._io import NPY_BYTES_MAX, NPY_MAXDIMS
from ._packing import dequantize_packed, pack, unpack
from ._params import storage_dtype
from ._quantized import PACKED_BITS, quantize

FORMAT_VERSION = 2  # of unpacked chunks
PACKED_VERSION = 3  # of packed chunks (SPEC §8)
_MAGIC = b"LQNT"
_HEADER = struct.Struct("<4sBBBBBBB5sQ")
_NO_AXIS = 255
# Codes of the dtypes and orders in a header; never renumbered, so that old chunks stay
# readable.
_CODE_DTYPES = {1: "uint8", 2: "int8", 3: "uint16", 4: "int16"}
_PACKED_FORMATS = {5: "uint1", 6: "int1", 7: "uint2", 8: "int2", 9: "uint4", 10: "int4"}
_SCALE_DTYPES = {1: "float32", 2: "float64"}
_SOURCE_DTYPES = {1: "float16", 2: "float32", 3: "float64"}
_ORDERS: dict[int, Literal["C", "F"]] = {0: "C", 1: "F"}
# A chunk makes arrays of at most 8-byte items (float64): no shape NumPy refuses them was encoded.
_WIDEST_ITEMSIZE = 8


_T = TypeVar("_T")


def _code_of(table: dict[int, _T], entry: _T) -> int:
    return next(code for code, value in table.items() if value == entry)


def _entry(table: dict[int, _T], code: int, what: str) -> _T:
    if code not in table:
        raise ValueError(f"corrupted linquant chunk: unknown {what} code {code}")
    return table[code]


def _memory_order(a: np.ndarray) -> Literal["C", "F"]:
    """``"F"`` for an array laid out in Fortran order only, else ``"C"`` (as numcodecs'
    ``reshape(-1, order="A")`` reads it: both orders are one where both are contiguous)."""
    return "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"


class Chunk(NamedTuple):
    """The contents of an encoded chunk, views of its bytes.

    ``codes`` are the codes of the chunk's shape, in the memory order it was encoded from, or
    where ``length`` is not None (a packed chunk, format version 3) their packed bytes,
    ``(*shape[:-1], ceil(length / per byte))`` in C order, as ``QuantizedArray.data``.
    """

    codes: np.ndarray
    scale: Any  # a scalar per tensor, else an array of the groups' shape
    zero_point: Any
    axis: int | None
    block_size: int | None
    dtype: np.dtype | None  # what it decodes to; None in format version 1, which has no record
    length: int | None = None  # packed: the chunk's last dimension, as QuantizedArray.length
    format: CodeFormat | None = None  # how the codes are stored (uint8... or uint4...)
    order: Literal["C", "F"] = "C"  # the memory order the chunk decodes to

    @property
    def shape(self) -> tuple[int, ...]:
        """The chunk's shape (of its codes, unpacked)."""
        if self.length is None:
            return tuple(self.codes.shape)
        return (*self.codes.shape[:-1], self.length)

    def unpacked(self) -> np.ndarray:
        """The codes, unpacked (in C order) where packed, else ``codes`` itself."""
        if self.length is None or self.format is None:
            return self.codes
        fmt = self.format
        return unpack(self.codes, fmt.width, self.length, "int8" if fmt.signed else "uint8")


def encode_chunk(
    codes: np.ndarray,
    scale: Any,
    zero_point: Any,
    axis: int | None = None,
    block_size: int | None = None,
    *,
    dtype: np.dtype,
    order: Literal["C", "F"] = "C",
    length: int | None = None,
    fmt: CodeFormat | None = None,
) -> bytes:
    """One encoded chunk of an array of float ``dtype``: header, ``scale`` and ``zero_point``
    (one per group), then ``codes`` in ``order`` ("C" or "F").

    With ``length`` and ``fmt`` (a packed format), ``codes`` are packed codes of that format,
    ``length`` along the last axis (``QuantizedArray.data``, ``.length`` and ``.format``):
    a chunk of format version 3, its codes in C order whatever ``order``.
    """
    scales = np.asarray(scale).reshape(-1)
    if length is None:
        version, code = FORMAT_VERSION, _code_of(_CODE_DTYPES, codes.dtype.name)
        shape = tuple(codes.shape)
        body = codes.astype(codes.dtype.newbyteorder("<"), copy=False).tobytes(order)
    else:
        if fmt is None or not fmt.packed or codes.dtype != np.uint8 or codes.ndim == 0:
            raise ValueError("packed codes need a packed format and uint8 bytes")
        shape = (*codes.shape[:-1], length)
        if codes.shape != fmt.stored_shape(shape):
            raise ValueError(
                f"packed {fmt.name} codes of shape {shape} are bytes of shape "
                f"{fmt.stored_shape(shape)}, got {codes.shape}"
            )
        version, code = PACKED_VERSION, _code_of(_PACKED_FORMATS, fmt.name)
        body = codes.tobytes("C")
    header = _HEADER.pack(
        _MAGIC,
        version,
        code,
        _code_of(_SCALE_DTYPES, scales.dtype.name),
        len(shape),
        _NO_AXIS if axis is None else axis,
        _code_of(_SOURCE_DTYPES, dtype.name),
        _code_of(_ORDERS, order),
        bytes(5),
        block_size or 0,
    )
    return b"".join(
        (
            header,
            struct.pack(f"<{len(shape)}Q", *shape),
            scales.astype(scales.dtype.newbyteorder("<")).tobytes(),
            np.asarray(zero_point, dtype="<i4").reshape(-1).tobytes(),
            body,
        )
    )


def decode_chunk(buf: object) -> Chunk:
    """The contents of an encoded chunk (any contiguous buffer).

    Every claim of the header (version, dtypes, order, dimensions, shape, axis, block size,
    and so the number of parameters and codes, packed or not) is checked before anything is
    made of it: ValueError says what is wrong if ``buf`` is not a whole chunk of this format
    (truncated, too long, or with a header that makes no sense). The values of the parameters
    are checked when the chunk is dequantized; every bit pattern of the codes is a code (the
    bits of a packed row past its last code are not read).
    """
    data = memoryview(ensure_contiguous_ndarray(buf).view(np.uint8))
    if len(data) < _HEADER.size:
        raise ValueError(f"truncated linquant chunk: {len(data)} bytes, shorter than its header")
    magic, version, code_dtype, scale_dtype, ndim, axis, source_dtype, order, zeros, block_size = (
        _HEADER.unpack_from(data)
    )
    if magic != _MAGIC:
        raise ValueError(f"not a linquant chunk: it starts with {bytes(magic)!r}")
    if version not in (1, FORMAT_VERSION, PACKED_VERSION):
        raise ValueError(f"linquant chunk format version {version} is not supported")
    packed = version == PACKED_VERSION
    if packed:
        fmt = BY_NAME[_entry(_PACKED_FORMATS, code_dtype, "packed code format")]
    else:
        fmt = BY_NAME[_entry(_CODE_DTYPES, code_dtype, "code dtype")]
    codes_dtype = fmt.container.newbyteorder("<")
    scales_dtype = np.dtype(_entry(_SCALE_DTYPES, scale_dtype, "scale dtype")).newbyteorder("<")
    # Version 1 has padding there, not a record of them.
    dtype: np.dtype | None = None
    order_name: Literal["C", "F"] = "C"
    if version >= FORMAT_VERSION:
        dtype = np.dtype(_entry(_SOURCE_DTYPES, source_dtype, "source dtype"))
        order_name = _entry(_ORDERS, order, "order")
        if zeros != bytes(5):
            raise ValueError("corrupted linquant chunk: its reserved header bytes are not zero")
    if ndim > NPY_MAXDIMS:
        raise ValueError(f"corrupted linquant chunk: {ndim} dimensions, over NumPy's {NPY_MAXDIMS}")
    if packed and ndim == 0:
        raise ValueError("corrupted linquant chunk: packed codes of 0 dimensions")
    offset = _HEADER.size + 8 * ndim
    if len(data) < offset:
        raise ValueError("truncated linquant chunk: its shape is cut off")
    shape = struct.unpack_from(f"<{ndim}Q", data, _HEADER.size)
    if math.prod(n for n in shape if n) * _WIDEST_ITEMSIZE > NPY_BYTES_MAX:
        raise ValueError(f"corrupted linquant chunk: no NumPy array has shape {shape}")
    try:
        groups = grouping(shape, None if axis == _NO_AXIS else axis, block_size or None)
    except ValueError as error:
        raise ValueError(f"corrupted linquant chunk: {error}") from None
    n_params = 1 if groups is None else math.prod(groups.param_shape)
    stored_shape = fmt.stored_shape(shape)  # packed: rows of whole bytes
    n_codes = math.prod(stored_shape)
    sizes = (n_params * scales_dtype.itemsize, n_params * 4, n_codes * codes_dtype.itemsize)
    if len(data) != offset + sum(sizes):
        raise ValueError(
            f"truncated or corrupted linquant chunk: {len(data)} bytes where its header "
            f"says {offset + sum(sizes)}"
        )
    scale = np.frombuffer(data, scales_dtype, n_params, offset)
    zero_point = np.frombuffer(data, "<i4", n_params, offset + sizes[0])
    codes = np.frombuffer(data, codes_dtype, n_codes, offset + sizes[0] + sizes[1])
    codes = codes.reshape(stored_shape, order="C" if packed else order_name)
    length = shape[-1] if packed else None
    if groups is None:
        return Chunk(codes, scale[0], zero_point[0], None, None, dtype, length, fmt, order_name)
    return Chunk(
        codes,
        scale.reshape(groups.param_shape),
        zero_point.reshape(groups.param_shape),
        groups.axis,
        groups.block_size,
        dtype,
        length,
        fmt,
        order_name,
    )


def _float_name(value: object) -> str:
    try:
        return str(_checks.source_float(value).name)
    except ValueError:
        names = ("float16", "float32", "float64")
        raise ValueError(f"dtype must be None or one of {names}, got {value!r}") from None


def _target(out: np.ndarray, chunk: Chunk, dtype: np.dtype) -> np.ndarray:
    """``out`` as an array of the chunk's shape, checked before anything is written to it.

    An ``out`` of another shape must be contiguous: its memory takes the values in the
    chunk's memory order, as numcodecs' ``ndarray_copy`` fills it.
    """
    shape = chunk.shape
    size = math.prod(shape)
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype.name}, got {out.dtype}")
    if out.size != size:
        raise ValueError(f"out must have {size} elements (shape {shape}), got {out.size}")
    target = out
    if out.shape != shape:
        target = ensure_contiguous_ndarray_like(out).reshape(shape, order=chunk.order)
    inputs = {
        "the chunk's codes": chunk.codes,
        "scale": chunk.scale,
        "zero_point": chunk.zero_point,
    }
    _checks.out_array(target, shape, dtype, inputs)
    return target


def _dequantize_packed(chunk: Chunk, work: np.dtype) -> np.ndarray:
    """The packed chunk dequantized in ``work``, in C order, a piece of its codes at a time;
    its parameters checked first, as :func:`linquant.dequantize_linear` checks them."""
    assert chunk.format is not None  # a packed chunk has its format
    shape = chunk.shape
    try:
        groups = grouping(shape, chunk.axis, chunk.block_size)
        _checked_params(chunk.scale, chunk.zero_point, work.type, groups)
        return dequantize_packed(
            chunk.codes,
            shape,
            chunk.format,
            chunk.scale,
            chunk.zero_point,
            chunk.axis,
            chunk.block_size,
            work,
        )
    except ValueError as error:
        raise ValueError(f"corrupted linquant chunk: {error}") from None


class Linquant(Codec):  # type: ignore[misc]
    """Quantize chunks to integer codes; decode them to the dtype they were encoded from.

    Dynamic parameters (the default): each chunk is quantized as :func:`linquant.quantize`
    would quantize it, with ``bits``, ``scheme``, ``axis``, ``block_size``, ``include_zero``,
    ``narrow_range`` and ``nan`` meaning what they mean there (``axis`` counts the chunk's
    dimensions). Fixed parameters (``scale`` given): every chunk is quantized as
    :func:`linquant.quantize_linear` would, with ``scale``, ``zero_point`` and the codes of
    ``bits`` bits and ``scheme`` (unsigned for asymmetric, signed for symmetric). Either way a
    chunk decodes to an array of its shape, dtype (float16, float32 or float64) and memory
    order: :func:`linquant.dequantize_linear` to float64 for float64, to float32 otherwise,
    then rounded to float16 for float16. ``astype`` (float32 or float64) is the dtype that
    chunks of format version 1, which do not record theirs, decode to.

    ``pack=True`` stores the codes of 1 to 4 bits packed into bytes along each chunk's last
    axis (SPEC §8; format version 3, which linquant versions before it refuse to decode): a
    4-bit chunk of ``n`` values takes about ``n / 2`` bytes of codes, a 1-bit one ``n / 8``.
    Codes of more bits and 0-d chunks are stored as without it, as :func:`linquant.quantize`
    does with ``pack=True``. The configuration holds ``pack`` only where it is True, so that
    arrays without it stay readable by linquant versions that do not take it.

    ``rounding`` and ``seed`` choose how codes round, as for :func:`linquant.quantize_linear`
    (SPEC §2.1); decoding does not depend on them, and chunks do not record them. A chunk does
    not know where it lies in its array: stochastic rounding counts each chunk's indices from
    its own first element (in C order of the chunk), so every chunk draws the same random
    numbers, and the codes of an array depend on its chunking (``linquant.dask.quantize``
    and the command line round each element by its index in the whole array).

    A chunk is a float array, or any buffer whose items are floats; ``dtype`` (float16,
    float32 or float64) reads any other buffer (bytes, bytearray...) as values of that dtype,
    as numcodecs' ``FixedScaleOffset(dtype=)`` does. Bad arguments raise ValueError here, not
    at the first chunk.

    >>> import numpy as np, numcodecs
    >>> from linquant.codec import Linquant
    >>> codec = Linquant(scale=0.5, zero_point=10)
    >>> x = np.array([-100.0, -1.0, 0.25, 100.0], np.float32)
    >>> codec.decode(codec.encode(x))  # -100 saturates to code 0: -5.0
    array([ -5.,  -1.,   0., 100.], dtype=float32)
    >>> numcodecs.get_codec(codec.get_config()) == codec
    True
    >>> y = np.linspace(-1.0, 1.0, 100, dtype=np.float32)  # 40 bytes of header and parameters
    >>> len(Linquant(bits=4).encode(y)), len(Linquant(bits=4, pack=True).encode(y))
    (140, 90)
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
        dtype: str | None = None,
        rounding: str = _rounding.DEFAULT,
        seed: int | None = None,
        pack: bool = False,
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
        self.dtype = None if dtype is None else _float_name(dtype)
        checked = _rounding.rounding(rounding, seed, None, ())
        self.rounding = checked.mode
        self.seed = checked.seed if checked.stochastic else None
        if not isinstance(pack, (bool, np.bool_)):
            raise ValueError(f"pack must be True or False, got {pack!r}")
        self.pack = bool(pack)
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
            rounding=self.rounding,
            seed=self.seed,
        )

    def get_config(self) -> dict[str, Any]:
        """The codec's configuration, without ``rounding`` and ``seed`` where rounding is
        half to even, and without ``pack`` where it is False: arrays that round so and store
        codes unpacked stay readable by linquant versions that take neither."""
        config: dict[str, Any] = super().get_config()
        if self.rounding == _rounding.DEFAULT:
            del config["rounding"], config["seed"]
        if not self.pack:
            del config["pack"]
        return config

    def _chunk(self, buf: object) -> np.ndarray:
        """``buf`` as a float array: its own items if they are floats, else ``dtype`` values."""
        x: np.ndarray = ensure_ndarray_like(buf)
        if x.dtype.kind == "f":
            if self.dtype is not None and x.dtype.name != self.dtype:
                raise TypeError(f"the chunk has dtype {x.dtype}, the codec's dtype= {self.dtype}")
            return x
        if self.dtype is None:
            raise TypeError(
                f"a chunk must be a float16, float32 or float64 array, got dtype {x.dtype} "
                "(dtype= reads raw bytes as floats)"
            )
        data: np.ndarray = ensure_contiguous_ndarray_like(x).view(np.uint8)
        if data.size % np.dtype(self.dtype).itemsize:
            raise ValueError(f"a chunk of {data.size} bytes is not a whole number of {self.dtype}")
        return data.view(self.dtype)

    def encode(self, buf: object) -> bytes:
        """The chunk ``buf`` quantized, with its parameters, dtype and memory order."""
        x = self._chunk(buf)
        order = _memory_order(x)
        # The kernels walk C order, where a Fortran-ordered array of 3 or more dimensions is
        # many small pieces: they quantize a C-ordered copy (errors name the same indices).
        x = np.asarray(x, order="C")
        if self.scale is not None:
            codes = self._fixed_codes(x)
            scale = np.float64(self.scale)
            if not (self.pack and self.bits in PACKED_BITS and x.ndim > 0):
                return encode_chunk(codes, scale, self.zero_point, dtype=x.dtype, order=order)
            fmt = code_format(self.bits, self.scheme == "symmetric", packed=True)
            return encode_chunk(
                pack(codes, self.bits),
                scale,
                self.zero_point,
                dtype=x.dtype,
                order=order,
                length=x.shape[-1],
                fmt=fmt,
            )
        qa = quantize(
            x,
            self.bits,
            self.scheme,
            axis=self.axis,
            block_size=self.block_size,
            include_zero=self.include_zero,
            narrow_range=self.narrow_range,
            nan=self.nan,
            rounding=self.rounding,
            seed=self.seed,
            pack=self.pack,
        )
        return encode_chunk(
            qa.data,
            qa.scale,
            qa.zero_point,
            qa.axis,
            qa.block_size,
            dtype=x.dtype,
            order=order,
            length=qa.length,
            fmt=qa.format,
        )

    def decode(self, buf: object, out: object = None) -> Any:
        """The dequantized chunk (an array of its shape, dtype and memory order), or ``out``
        with it written in.

        ``out`` must have the chunk's dtype and number of elements (TypeError, ValueError);
        one of another shape must be contiguous. A damaged chunk raises ValueError.
        """
        chunk = decode_chunk(buf)
        dtype = np.dtype(self.astype) if chunk.dtype is None else chunk.dtype
        work = np.dtype(np.float64 if dtype == np.float64 else np.float32)
        if out is not None:
            result = ensure_ndarray_like(out)
            target = _target(result, chunk, dtype)
        if chunk.length is not None:  # packed: dequantized into a C-ordered array, then copied
            dequantized = _dequantize_packed(chunk, work)
            if out is None:
                if dtype == work and chunk.order == "C":
                    return dequantized
                result = target = np.empty(chunk.shape, dtype, order=chunk.order)
            with np.errstate(over="ignore"):  # float16: inf past its range
                target[...] = dequantized
            return result
        if out is None:
            result = target = np.empty_like(chunk.codes, dtype)
        codes, scale, zero_point, axis = chunk.codes, chunk.scale, chunk.zero_point, chunk.axis
        fortran = _memory_order(codes) == "F"
        laid_out = target.flags.f_contiguous if fortran else target.flags.c_contiguous
        x_hat = target if dtype == work and laid_out else np.empty_like(codes, work)
        if fortran:  # the kernels walk C order, as the transposed views are laid out
            codes, into = codes.T, x_hat.T
            if axis is not None:
                axis = codes.ndim - 1 - axis
                scale, zero_point = np.transpose(scale), np.transpose(zero_point)
        else:
            into = x_hat
        try:
            dequantize_linear(
                codes,
                scale,
                zero_point,
                axis=axis,
                block_size=chunk.block_size,
                dtype=work,
                out=into,
            )
        except ValueError as error:  # out is checked: what is left is the chunk's parameters
            raise ValueError(f"corrupted linquant chunk: {error}") from None
        if x_hat is not target:  # float16 (rounded: inf past its range), or another layout
            with np.errstate(over="ignore"):
                target[...] = x_hat
        return result

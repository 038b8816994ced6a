"""``QuantizedArray``: integer codes together with the parameters that decode them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from . import _checks, _rounding
from ._api import dequantize_linear, dynamic_quantize
from ._calibrate import Observer, checked_range, observer_for
from ._formats import StoredCodes
from ._groups import grouping
from ._layout import as_array, as_float_input
from ._packing import dequantize_packed, dynamic_quantize_packed, unpack
from ._params import storage_dtype

FLOAT32 = np.dtype(np.float32)
PACKED_BITS = (1, 2, 3, 4)


@dataclass(frozen=True, eq=False, repr=False)
class QuantizedArray(StoredCodes):
    """Codes and parameters of a quantized array, as returned by :func:`linquant.quantize`.

    Immutable: ``data`` (and array parameters) are read-only views.
    ``x_hat = (data - zero_point) * scale``: per tensor, or per channel along ``axis``, or per
    block of ``block_size`` elements along it (then ``scale`` and ``zero_point`` are arrays).
    ``source_dtype`` is the float dtype of the array that was quantized (float16, float32 or
    float64; float32 unless given), recorded by :func:`linquant.quantize` and kept in files,
    as are ``rounding``, the mode that rounded the codes (SPEC §2.1), and ``seed``, its seed
    (stochastic rounding only, else None). Where ``length`` is not None, ``data`` holds codes
    of 1 to 4 bits packed into bytes along the last axis (SPEC §8), ``length`` of them a row:
    ``shape`` is then the array's, ``codes()`` unpacks them and ``dequantize`` reads them as
    they are.

    >>> import numpy as np, linquant as lq
    >>> qa = lq.quantize(np.array([-1.0, 0.5, 2.0]), bits=2)
    >>> qa
    QuantizedArray(shape=(3,), dtype=uint8, bits=2, scheme='asymmetric', scale=1.0, zero_point=1)
    >>> qa.data, qa.dequantize()
    (array([0, 1, 3], dtype=uint8), array([-1.,  0.,  2.], dtype=float32))
    """

    data: np.ndarray
    scale: np.floating | np.ndarray
    zero_point: np.int32 | np.ndarray
    bits: int
    scheme: str
    axis: int | None = None
    block_size: int | None = None
    source_dtype: np.dtype = FLOAT32
    rounding: str = _rounding.DEFAULT
    seed: int | None = None
    length: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_dtype", _checks.source_float(self.source_dtype))
        checked = _rounding.rounding(self.rounding, self.seed, None, ())
        object.__setattr__(self, "seed", checked.seed if checked.stochastic else None)
        if self.length is not None:
            self._check_packed()
        for name in ("data", "scale", "zero_point"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                view = value.view()
                view.flags.writeable = False
                object.__setattr__(self, name, view)

    def _check_packed(self) -> None:
        """Packed codes must be the bytes of ``length`` codes along the last axis (SPEC §8)."""
        length = self.length
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"length must be an int >= 0 or None, got {length!r}")
        object.__setattr__(self, "length", int(length))
        if self.bits not in PACKED_BITS:
            raise ValueError(f"only codes of 1 to 4 bits are packed, got bits={self.bits!r}")
        if not isinstance(self.data, np.ndarray) or self.data.dtype != np.uint8:
            raise TypeError("packed codes must be a uint8 array")
        fmt = self.format
        if self.data.ndim == 0 or self.data.shape != fmt.stored_shape(self.shape):
            raise ValueError(
                f"packed {fmt.name} codes of {length} along the last axis need "
                f"{-(-int(length) // fmt.per_item)} bytes there, got shape {self.data.shape}"
            )

    @classmethod
    def with_codes(cls, data: np.ndarray, settings: object) -> QuantizedArray:
        """``data`` with every other field read by name from ``settings`` (a linquant file's
        header, a Dask quantization), so that a new field reaches each of them."""
        names = [f.name for f in fields(cls) if f.name != "data"]
        return cls(data, **{name: getattr(settings, name) for name in names})

    def __reduce__(self) -> tuple[type[QuantizedArray], tuple[object, ...]]:
        # Pickles and copies are rebuilt through __init__, so their arrays are read-only too.
        return type(self), tuple(getattr(self, f.name) for f in fields(self))

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the codes, unpacked: uint8/int8 up to 8 bits, else uint16/int16."""
        return storage_dtype(self.bits, self.scheme == "symmetric")

    @property
    def nbytes(self) -> int:
        """Bytes of the codes (packed or not) plus those of the scale and zero point."""
        return int(self.data.nbytes + self.scale.nbytes + self.zero_point.nbytes)

    def codes(self) -> np.ndarray:
        """The codes, unpacked: ``data`` itself unless packed."""
        if self.length is None:
            return self.data
        return unpack(self.data, self.bits, self.length, self.dtype)

    def dequantize(self, dtype: str | np.dtype | type = "float32") -> np.ndarray:
        """The dequantized array (SPEC §3), float32 unless ``dtype="float64"``; packed codes
        are unpacked chunk by chunk, never all at once."""
        if self.length is not None:
            return dequantize_packed(
                self.data,
                self.shape,
                self.format,
                self.scale,
                self.zero_point,
                self.axis,
                self.block_size,
                _checks.output_float(dtype),
            )
        return dequantize_linear(
            self.data,
            self.scale,
            self.zero_point,
            axis=self.axis,
            block_size=self.block_size,
            dtype=dtype,
        )

    def to_torch(self) -> tuple[Any, Any, Any]:
        """``(codes, scale, zero_point)`` as PyTorch tensors over this array's memory
        (DLPack: no copy; packed codes are unpacked first, a copy), never a ``torch.ao``
        quantized tensor. They are what ``torch.dequantize``-style code takes:
        ``(codes.to(scale.dtype) - zero_point) * scale`` with the parameters broadcast along
        ``axis`` (repeated ``block_size`` times per block) is :meth:`dequantize`. Write to
        them only after ``.clone()``: this array's codes are read-only. Needs PyTorch
        (``pip install 'linquant[torch]'``).
        """
        try:
            import torch  # type: ignore[import-not-found, unused-ignore]
        except ImportError as error:
            raise ImportError(
                "QuantizedArray.to_torch needs PyTorch: pip install 'linquant[torch]'"
            ) from error
        arrays = (self.codes(), np.asarray(self.scale), np.asarray(self.zero_point, np.int32))
        from_dlpack = torch.from_dlpack  # type: ignore[attr-defined, unused-ignore]
        codes, scale, zero_point = (from_dlpack(array) for array in arrays)
        return codes, scale, zero_point

    def __repr__(self) -> str:
        if self.axis is None:
            params = f"scale={self.scale}, zero_point={int(self.zero_point)}"
        else:
            groups = f"axis={self.axis}"
            if self.block_size is not None:
                groups += f", block_size={self.block_size}"
            shape = np.shape(self.scale)
            params = f"{groups}, scale=<{shape} {self.scale.dtype}>, zero_point=<{shape} int32>"
        if self.rounding != _rounding.DEFAULT:
            params += f", rounding={self.rounding!r}"
        if self.seed is not None:
            params += f", seed={self.seed}"
        stored = f"format={self.format.name!r}" if self.packed else f"dtype={self.dtype}"
        return (
            f"QuantizedArray(shape={self.shape}, {stored}, bits={self.bits}, "
            f"scheme={self.scheme!r}, {params})"
        )


def _clip(
    values: np.ndarray,
    bits: int,
    scheme: str,
    include_zero: bool,
    axis: int | None,
    block_size: int | None,
    calibration: str | Observer | None,
    bounds: tuple[object, object] | None,
) -> tuple[Any, Any] | None:
    """The range ``quantize`` uses instead of the data's, from ``calibration=`` or
    ``range=`` (scalars, or arrays of the groups' parameters' shape), or None."""
    if calibration is None and bounds is None:
        return None
    if calibration is not None and bounds is not None:
        raise ValueError("pass calibration= or range=, not both")
    if calibration is not None:
        settings = (values.shape, axis, block_size, bits, scheme, include_zero)
        return observer_for(calibration, *settings).update(values).range()
    try:
        lo, hi = bounds  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"range must be a pair (lo, hi), got {bounds!r}") from None
    groups = grouping(values.shape, axis, block_size)
    low, high = checked_range(lo, hi, () if groups is None else groups.param_shape)
    wf = values.dtype.type
    return (wf(low), wf(high)) if groups is None else (low.astype(wf), high.astype(wf))


def quantize(
    x: object,
    bits: int = 8,
    scheme: str = "asymmetric",
    *,
    axis: int | None = None,
    block_size: int | None = None,
    include_zero: bool = True,
    narrow_range: bool = False,
    nan: str = "raise",
    rounding: str = "half_even",
    seed: int | None = None,
    position: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    pack: bool = False,
    calibration: str | Observer | None = None,
    range: tuple[object, object] | None = None,
) -> QuantizedArray:
    """Quantize ``x`` with parameters chosen from its range (SPEC §4).

    ``scheme="asymmetric"``: unsigned codes over ``[min(x), max(x)]``, stretched to include 0
    unless ``include_zero=False`` (a tighter grid for data far from zero, whose zero point may
    lie outside the code range). ``scheme="symmetric"``: signed codes, zero point 0, scale
    ``max|x| / (2**(bits-1) - 1)``; ``narrow_range=True`` drops the code ``-2**(bits-1)``.
    Codes are uint8/int8 up to 8 bits, uint16/int16 up to 16. NaN raises ValueError unless
    ``nan="zero"`` (quantized as 0.0, left out of the range); ±inf raise ValueError.
    ``axis=`` gives each channel along that axis its own parameters, ``block_size=`` each
    block of that many elements along it (the last may be shorter); an error names the
    channel or block. ``rounding``, ``seed`` and ``position`` choose how the codes round, as
    for :func:`linquant.quantize_linear` (SPEC §2.1); the parameters do not depend on them.
    ``bits=1``: symmetric codes are -1 and +1, the sign of ``x`` (scale ``max|x|``), asymmetric
    ones 0 and 1. ``pack=True`` packs codes of 1 to 4 bits into bytes along the last axis
    (SPEC §8; ``qa.packed``, ``qa.codes()``), chunk by chunk with no temporary of the input's
    size; wider codes and 0-d arrays stay unpacked. ``calibration=`` ("minmax", "percentile", "mse"
    or "entropy", with :func:`linquant.calibrate`'s defaults, or a new
    :class:`linquant.Observer` of the call's settings for other options) or ``range=(lo, hi)`` (say
    ``lq.calibrate(x, "percentile", percentile=99.9)`` or an :class:`linquant.Observer`'s;
    per channel or block, arrays of the parameters' shape) replaces the data's range: values
    beyond it saturate.

    >>> import numpy as np, linquant as lq
    >>> qa = lq.quantize(np.array([-2.0, 0.5, 4.0]), bits=4, scheme="symmetric")
    >>> qa.data, qa.scale, qa.source_dtype
    (array([-4,  1,  7], dtype=int8), np.float64(0.5714285714285714), dtype('float64'))
    >>> packed = lq.quantize(np.array([-2.0, 0.5, 4.0]), bits=4, scheme="symmetric", pack=True)
    >>> packed.data, packed.codes()  # -4 and 1 share a byte: 0xC | 0x1 << 4
    (array([28,  7], dtype=uint8), array([-4,  1,  7], dtype=int8))
    """
    arr = as_array(x)
    values = as_float_input(arr)  # its TypeError before the rounding's ValueError
    checked_rounding = _rounding.rounding(rounding, seed, position, arr.shape)
    if not isinstance(pack, (bool, np.bool_)):
        raise ValueError(f"pack must be True or False, got {pack!r}")
    packs = bool(pack) and bits in PACKED_BITS and arr.ndim > 0
    settings = (values, bits, scheme, include_zero, narrow_range, nan, axis, block_size)
    quantizer = dynamic_quantize_packed if packs else dynamic_quantize
    clip = _clip(values, bits, scheme, include_zero, axis, block_size, calibration, range)
    data, scale, zero_point = quantizer(*settings, rounding=checked_rounding, clip=clip)
    axis = None if axis is None else int(axis) % arr.ndim
    source_dtype = arr.dtype.newbyteorder("=")  # a float dtype: dynamic_quantize checked it
    return QuantizedArray(
        data,
        scale,
        zero_point,
        int(bits),
        scheme,
        axis,
        block_size,
        source_dtype,
        checked_rounding.mode,
        seed,
        arr.shape[-1] if packs else None,
    )

"""``QuantizationParams``: fitted parameters, applied to batches, saved and loaded.

A params file is a JSON object (UTF-8): ``format`` (``"linquant.QuantizationParams"``),
``format_version`` (1), ``linquant_version``, ``bits``, ``scheme``, ``axis`` and
``block_size`` (null for none), ``scale_dtype`` (``"float32"`` or ``"float64"``), ``shape``
(the parameters' shape, ``[]`` per tensor), and ``scale`` and ``zero_point``, flat lists in C
order. A scale is written as the shortest decimal that reads back as the same float64
(JSON's number, Python's ``repr``), which holds every float32 exactly: the parameters come
back bit for bit. Reading checks every field as the constructor does; anything else raises
ValueError naming the file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _checks, _rounding
from ._api import quantize_given
from ._groups import group_args
from ._layout import FLOAT_DTYPES, as_array, as_float_input
from ._output import replacing
from ._params import storage_dtype
from ._quantized import QuantizedArray
from ._version import __version__

FORMAT = "linquant.QuantizationParams"
FORMAT_VERSION = 1
KEYS = (
    "format",
    "format_version",
    "linquant_version",
    "bits",
    "scheme",
    "axis",
    "block_size",
    "scale_dtype",
    "shape",
    "scale",
    "zero_point",
)
SCALE_DTYPES = tuple(dtype.name for dtype in FLOAT_DTYPES if dtype.itemsize > 2)


@dataclass(frozen=True, eq=False, repr=False)
class QuantizationParams:
    """The scale and zero point of a quantization with its ``bits``, ``scheme``, ``axis``
    and ``block_size``: fitted once (say by :meth:`linquant.Observer.params`), applied to
    every batch after with :meth:`quantize`, kept with :meth:`save` and :meth:`load`.

    Per tensor, ``scale`` is a float32 or float64 scalar and ``zero_point`` an int32 one;
    per channel or block, arrays of the parameters' shape (SPEC §4). ``scale, zero_point =
    params`` unpacks them. Immutable: array fields are read-only copies.

    >>> import numpy as np, linquant as lq
    >>> params = lq.Observer("minmax", bits=4).update(np.array([-1.0, 2.0])).params()
    >>> params
    QuantizationParams(scale=0.2, zero_point=5, bits=4, scheme='asymmetric')
    >>> params.quantize(np.array([0.0, 1.0, 5.0])).data
    array([ 5, 10, 15], dtype=uint8)
    """

    scale: Any
    zero_point: Any
    bits: int = 8
    scheme: str = "asymmetric"
    axis: int | None = None
    block_size: int | None = None

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "bits", _checks.bits(self.bits))
        set_field(self, "scheme", _checks.scheme(self.scheme))
        axis, block_size = group_args(self.axis, self.block_size)
        if axis is not None and axis < 0:
            raise ValueError(f"axis must be >= 0 (the axis of x it groups), got {axis}")
        set_field(self, "axis", axis)
        set_field(self, "block_size", block_size)
        scale = np.asarray(self.scale)
        if scale.dtype.name not in SCALE_DTYPES:
            raise TypeError(f"scale must be float32 or float64, got {scale.dtype}")
        wf = scale.dtype.type
        if axis is None:
            set_field(self, "scale", _checks.scale(scale, wf))
            set_field(self, "zero_point", np.int32(_checks.zero_point(self.zero_point)))
            zero_points = np.asarray(self.zero_point)
        else:
            if block_size is None and scale.ndim != 1:
                raise ValueError(f"per-axis scales must be 1-D, got shape {scale.shape}")
            zero_points = _checks.zero_points(self.zero_point, scale.shape)
            zero_points = np.broadcast_to(zero_points, scale.shape).astype(np.int32)
            for name, value in (
                ("scale", _checks.scales(scale, scale.shape, wf)),
                ("zero_point", zero_points),
            ):
                copy = np.array(value)
                copy.flags.writeable = False
                set_field(self, name, copy)
        if self.scheme == "symmetric" and np.any(zero_points != 0):
            raise ValueError("symmetric codes have zero point 0")

    def __iter__(self) -> Any:
        return iter((self.scale, self.zero_point))

    def __eq__(self, other: object) -> bool:
        """The same settings and parameters, bit for bit."""
        if not isinstance(other, QuantizationParams):
            return NotImplemented
        settings = ("bits", "scheme", "axis", "block_size")
        return all(getattr(self, name) == getattr(other, name) for name in settings) and all(
            np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)
            for a, b in ((self.scale, other.scale), (self.zero_point, other.zero_point))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self.axis is None:
            params = f"scale={self.scale}, zero_point={int(self.zero_point)}"
        else:
            params = f"scale=<{self.scale.shape} {self.scale.dtype}>, zero_point=<int32>"
        groups = "" if self.axis is None else f", axis={self.axis}"
        if self.block_size is not None:
            groups += f", block_size={self.block_size}"
        return f"QuantizationParams({params}, bits={self.bits}, scheme={self.scheme!r}{groups})"

    def quantize(
        self,
        x: object,
        *,
        nan: str = "raise",
        rounding: str = "half_even",
        seed: int | None = None,
        position: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    ) -> QuantizedArray:
        """``x`` quantized with these parameters (SPEC §2): a :class:`QuantizedArray` whose
        codes saturate where ``x`` leaves the fitted range. ``nan``, ``rounding``, ``seed``
        and ``position`` as for :func:`linquant.quantize`. ``x`` must have the parameters'
        channels or blocks along ``axis``."""
        arr = as_array(x)
        values = as_float_input(arr)
        checked_rounding = _rounding.rounding(rounding, seed, position, arr.shape)
        data = quantize_given(
            values,
            self.scale,
            self.zero_point,
            checked_rounding,
            axis=self.axis,
            block_size=self.block_size,
            dtype=storage_dtype(self.bits, self.scheme == "symmetric"),
            bits=self.bits,
            nan=nan,
        )
        return QuantizedArray(
            data,
            self.scale,
            self.zero_point,
            self.bits,
            self.scheme,
            self.axis,
            self.block_size,
            arr.dtype.newbyteorder("="),
            checked_rounding.mode,
            seed,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the parameters to ``path`` as JSON (see the module); an existing file is
        replaced only once the new one is complete, as :func:`linquant.save` does."""
        scale = np.asarray(self.scale)
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "linquant_version": __version__,
            "bits": self.bits,
            "scheme": self.scheme,
            "axis": self.axis,
            "block_size": self.block_size,
            "scale_dtype": scale.dtype.name,
            "shape": list(scale.shape),
            "scale": [float(v) for v in scale.reshape(-1)],
            "zero_point": [int(v) for v in np.asarray(self.zero_point).reshape(-1)],
        }
        with replacing(path) as file:
            file.write(json.dumps(document).encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> QuantizationParams:
        """Read parameters written by :meth:`save`, exactly as they were saved. A file that
        is not a params file, or holds invalid parameters, raises ValueError naming it."""
        name = os.fspath(path)
        with open(name, "rb") as file:
            text = file.read()
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise ValueError(f"{name}: not a linquant params file ({error})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"{name}: not a linquant params file (no {FORMAT!r} format)")
        version = document.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"{name}: format_version {version!r}; this linquant reads up to {FORMAT_VERSION}"
            )
        if sorted(document) != sorted(KEYS):
            raise ValueError(f"{name}: damaged params file (its keys are {sorted(document)})")
        try:
            return cls._from_document(document)
        except (TypeError, ValueError, OverflowError) as error:
            raise ValueError(f"{name}: damaged params file ({error})") from None

    @classmethod
    def _from_document(cls, document: dict[str, Any]) -> QuantizationParams:
        shape = document["shape"]
        if not isinstance(shape, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise ValueError(f"shape must be a list of sizes, got {shape!r}")
        scale_dtype = _checks._choice("scale_dtype", document["scale_dtype"], SCALE_DTYPES)
        values = {}
        for key, kinds in (("scale", (int, float)), ("zero_point", (int,))):
            flat = document[key]
            if not isinstance(flat, list) or len(flat) != math.prod(shape):
                raise ValueError(f"{key} must be a list of {math.prod(shape)} numbers")
            if not all(isinstance(v, kinds) and not isinstance(v, bool) for v in flat):
                raise ValueError(f"{key} must hold numbers only")
            values[key] = flat
        written = np.array(values["scale"], np.float64)
        scale = written.astype(scale_dtype)
        if not np.array_equal(scale, written):
            raise ValueError(f"a scale is not a {scale_dtype}")
        scale = scale.reshape(shape)
        zero_point = np.array(values["zero_point"], np.int64).reshape(shape)
        per_tensor = document["axis"] is None
        return cls(
            scale[()] if per_tensor else scale,
            zero_point[()] if per_tensor else zero_point,
            document["bits"],
            document["scheme"],
            document["axis"],
            document["block_size"],
        )

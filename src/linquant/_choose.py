"""``lq.choose``: the fewest bits, then the coarsest grouping, that meet a target SQNR."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._layout import as_float_input
from ._metrics import error_metrics
from ._quantized import QuantizedArray, quantize

DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8)
PER_TENSOR: tuple[None, None] = (None, None)


@dataclass(frozen=True)
class Trial:
    """One setting :func:`choose` tried: its bits and grouping, the SQNR it reached (dB),
    and the bytes its codes and parameters take (codes packed only with ``pack=True``)."""

    bits: int
    axis: int | None
    block_size: int | None
    sqnr_db: float
    nbytes: int


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` chose: ``quantized``, the array quantized with ``bits``, ``axis``
    and ``block_size``, its ``sqnr_db``, and ``tried``, every setting tried in order (the
    chosen one last)."""

    quantized: QuantizedArray
    tried: tuple[Trial, ...]

    @property
    def bits(self) -> int:
        return self.tried[-1].bits

    @property
    def axis(self) -> int | None:
        return self.tried[-1].axis

    @property
    def block_size(self) -> int | None:
        return self.tried[-1].block_size

    @property
    def sqnr_db(self) -> float:
        return self.tried[-1].sqnr_db


def _groupings(granularities: object) -> list[tuple[int | None, int | None]]:
    """``granularities`` as ``(axis, block_size)`` pairs, ``(None, None)`` per tensor."""
    if granularities is None:
        return [PER_TENSOR]
    if not isinstance(granularities, Iterable) or isinstance(granularities, (str, bytes)):
        raise TypeError(f"granularities must be a list, got {granularities!r}")
    pairs: list[tuple[int | None, int | None]] = []
    for item in granularities:
        if item is None:
            pairs.append(PER_TENSOR)
        elif isinstance(item, tuple) and len(item) == 2:
            pairs.append(item)
        else:
            raise ValueError(
                f"a granularity is None (per tensor) or (axis, block_size), got {item!r}"
            )
    if not pairs:
        raise ValueError("granularities must not be empty")
    return pairs


def choose(
    x: object,
    target_sqnr_db: float,
    *,
    bits: Iterable[int] = DEFAULT_BITS,
    granularities: Iterable[tuple[int | None, int | None] | None] | None = None,
    **options: Any,
) -> Choice:
    """Quantize ``x`` with the fewest ``bits`` whose SQNR (:func:`linquant.error_metrics`)
    is at least ``target_sqnr_db``; at those bits, with the first (coarsest) of
    ``granularities`` that meets it: ``None`` per tensor (the default, alone) or ``(axis,
    block_size)``, coarsest first. ``options`` go to :func:`linquant.quantize` (``scheme``,
    ``calibration``, ``pack``...). Settings are tried bits by bits, each grouping in turn,
    and the search stops at the first that meets the target; the :class:`Choice` reports
    every trial. Raises ValueError, with the trials, when none meets it.

    >>> import numpy as np, linquant as lq
    >>> x = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    >>> choice = lq.choose(x, 30.0, granularities=[None, (1, 32)])
    >>> choice.bits, choice.axis, choice.block_size, round(choice.sqnr_db, 1)
    (6, 1, 32, 34.3)
    >>> [(t.bits, t.block_size, round(t.sqnr_db, 1)) for t in choice.tried][-4:]
    [(5, None, 22.6), (5, 32, 28.2), (6, None, 28.7), (6, 32, 34.3)]
    """
    values = as_float_input(x)
    target = float(target_sqnr_db)
    if np.isnan(target):
        raise ValueError("target_sqnr_db must be a number, got NaN")
    for name in ("axis", "block_size", "bits"):
        if name in options:
            raise TypeError(f"choose() chooses {name}: pass bits= and granularities= instead")
    groupings = _groupings(granularities)
    tried: list[Trial] = []
    for n_bits in bits:
        for axis, block_size in groupings:
            qa = quantize(values, n_bits, axis=axis, block_size=block_size, **options)
            sqnr_db = error_metrics(values, qa.dequantize(values.dtype))["sqnr_db"]
            tried.append(Trial(qa.bits, qa.axis, qa.block_size, sqnr_db, qa.nbytes))
            if sqnr_db >= target:
                return Choice(qa, tuple(tried))
    report = "; ".join(
        f"{t.bits} bits {'per tensor' if t.axis is None else (t.axis, t.block_size)}: "
        f"{t.sqnr_db:.1f} dB"
        for t in tried
    )
    raise ValueError(f"no setting tried reaches {target} dB SQNR (tried {report})")

"""``python -m linquant demo``: both schemes at 4 and 8 bits on the notebook's data and on a
generated array, with error metrics and the time of each backend."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from . import _backend
from ._metrics import error_metrics
from ._quantized import QuantizedArray, quantize

NOTEBOOK_PARAMS = np.array(
    [134.85372037, -34.5079855, 0.0, 135.85372037, -17.51774727, -16.11701896,
     102.23461091, -33.5079855, 111.25202791, 121.4723397, 93.89520017,
     36.7436026, 85.58463402, -27.62545839, -29.72305535, -25.13061787,
     20.13014606, 36.91993243, 45.82819097, 89.02619806]
)  # fmt: skip


def _median_ms(call: Callable[..., object], args: tuple[object, ...], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call(*args)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _same(a: QuantizedArray, b: QuantizedArray) -> bool:
    return (
        np.array_equal(a.data, b.data)
        and a.scale.tobytes() == b.scale.tobytes()
        and a.zero_point == b.zero_point
    )


def run(size: int = 1_000_000, repeat: int = 5, seed: int = 0) -> str:
    """The demo's table as text."""
    generated = np.random.default_rng(seed).uniform(-50, 150, size).astype(np.float32)
    datasets = [("notebook", NOTEBOOK_PARAMS), (f"uniform {size:,} f32", generated)]
    backends = _backend.available_backends()
    previous = _backend.get_backend()
    header = ["data", "scheme", "bits", "scale", "zero pt", "MSE", "SQNR dB", "max err"]
    header += [f"{name} ms" for name in backends] + ["backends agree"]
    rows = [header]
    try:
        for label, x in datasets:
            for scheme in ("asymmetric", "symmetric"):
                for bits in (4, 8):
                    results, times = [], []
                    for name in backends:
                        _backend.set_backend(name)
                        results.append(quantize(x, bits, scheme))
                        times.append(_median_ms(quantize, (x, bits, scheme), repeat))
                    qa = results[0]
                    m = error_metrics(x, qa.dequantize(dtype=x.dtype))
                    rows.append(
                        [label, scheme, str(bits), f"{qa.scale:.6g}", str(qa.zero_point),
                         f"{m['mse']:.4g}", f"{m['sqnr_db']:.2f}", f"{m['max_abs_error']:.4g}"]
                        + [f"{t:.3f}" for t in times]
                        + ["yes" if all(_same(qa, r) for r in results) else "NO"]
                    )  # fmt: skip
    finally:
        _backend.set_backend(previous)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    title = f"linquant demo: backends {', '.join(backends)} (active: {previous})"
    return "\n".join([title, "", *lines])

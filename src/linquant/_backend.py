"""Backend dispatch (SPEC §6): which implementation of the kernels runs.

``"cython"`` is the compiled backend (``linquant._compiled``), the default when the extension
is built; ``"numpy"`` is the NumPy reference (``linquant._numpy_backend``). The choice is made
once at import from ``LINQUANT_BACKEND`` and can be changed with :func:`set_backend`.
The extension is imported lazily and only here, so a build without it imports and works.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

import numpy as np

from . import _numpy_backend

BACKENDS = ("cython", "numpy")
ENV_VARIABLE = "LINQUANT_BACKEND"

_compiled: ModuleType | None = None
_compiled_error: ImportError | None = None
_buffers: ModuleType | None = None
try:
    from . import _buffers, _compiled
except ImportError as error:  # built with LINQUANT_DISABLE_CEXT=1, or a broken build
    _compiled_error = error


def empty_output(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A new array for a result: from linquant._buffers' pool when built (large results)."""
    result: np.ndarray = (
        np.empty(shape, dtype) if _buffers is None else _buffers.empty(shape, dtype)
    )
    return result


POOL_LIMIT_VARIABLE = "LINQUANT_POOL_LIMIT"


def get_pool_limit() -> int:
    """The most bytes of freed result memory kept for reuse (0 without the compiled build).

    Results of 256 KiB or more come from a pool of reusable buffers: when the last view of
    one is gone its memory waits there for the next result of the same size, so that
    repeated calls do not fault in fresh pages. Memory beyond the limit goes back to the
    operating system at once. The default is 1 GiB (at most 8 buffers), or
    ``LINQUANT_POOL_LIMIT`` (bytes) when set at import.

    >>> import linquant as lq
    >>> lq.get_pool_limit() >= 0
    True
    """
    return 0 if _buffers is None else int(_buffers.get_limit())


def set_pool_limit(nbytes: int) -> None:
    """Keep at most ``nbytes`` (an int >= 0) of freed result memory; 0 keeps none.

    What the pool holds beyond the new limit goes back to the operating system now. Without
    the compiled build there is no pool, and the call only checks ``nbytes``.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise ValueError(f"the pool limit must be an int >= 0 (bytes), got {nbytes!r}")
    if _buffers is not None:
        _buffers.set_limit(min(int(nbytes), 2**63 - 1))


def clear_pool() -> int:
    """Return every buffer waiting in the pool to the operating system; the bytes freed.

    Results still alive keep their memory; the pool fills again as results are freed.
    """
    return 0 if _buffers is None else int(_buffers.clear())


def _pool_limit_from_environment() -> None:
    """Apply ``LINQUANT_POOL_LIMIT`` once, at import; warn instead of failing import."""
    requested = os.environ.get(POOL_LIMIT_VARIABLE, "").strip()
    if not requested:
        return
    try:
        set_pool_limit(int(requested))
    except ValueError:
        warnings.warn(
            f"{POOL_LIMIT_VARIABLE}={requested!r} ignored: it must be an int >= 0 (bytes)",
            RuntimeWarning,
            stacklevel=2,
        )


_active: ModuleType = _numpy_backend


def available_backends() -> tuple[str, ...]:
    """The backends this installation can run, the compiled one first when it is built."""
    return BACKENDS if _compiled is not None else ("numpy",)


def get_backend() -> str:
    """Name of the backend in use: ``"cython"`` or ``"numpy"``.

    >>> import linquant as lq
    >>> lq.get_backend() in ("cython", "numpy")
    True
    """
    return "cython" if _active is _compiled and _compiled is not None else "numpy"


def set_backend(name: str) -> None:
    """Select the backend by name, ``"cython"`` or ``"numpy"``.

    Raises ValueError for an unknown name and ImportError when the compiled backend is asked
    for but was not built (install without ``LINQUANT_DISABLE_CEXT`` to build it).
    """
    global _active
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "numpy":
        _active = _numpy_backend
        return
    if _compiled is None:
        raise ImportError(
            f"the compiled backend of linquant is not available ({_compiled_error}); "
            "reinstall without LINQUANT_DISABLE_CEXT to build it"
        )
    _active = _compiled


def active() -> ModuleType:
    """The module of the backend in use (``minmax``, ``quantize``, ``dequantize``)."""
    return _active


def get_cpu_level() -> str | None:
    """Instruction-set level of the compiled kernels in use, or None if they are not built.

    ``"avx512"``, ``"avx2"`` or ``"baseline"`` (x86-64; other platforms have the baseline
    build only, which on aarch64 includes NEON). The widest level the CPU supports is chosen
    at import; ``LINQUANT_CPU=baseline|avx2|avx512`` forces one.
    """
    return _compiled.get_level() if _compiled is not None else None


def _select_from_environment() -> None:
    """Apply ``LINQUANT_BACKEND`` once, at import; warn (once) instead of failing import."""
    if _compiled is not None:
        set_backend("cython")
    requested = os.environ.get(ENV_VARIABLE, "").strip().lower()
    if not requested:
        return
    try:
        set_backend(requested)
    except (ValueError, ImportError) as error:
        warnings.warn(
            f"{ENV_VARIABLE}={requested!r} ignored, using the {get_backend()} backend: {error}",
            RuntimeWarning,
            stacklevel=2,
        )


_select_from_environment()
_pool_limit_from_environment()

"""Threads of the compiled kernels: how many, and the pool that runs them.

The kernels release the GIL, so a plain thread pool runs them in parallel. The default count
is the CPUs this process may use: its CPU affinity, capped by a cgroup CPU quota (containers)
and by ``OMP_NUM_THREADS`` when set. Results never depend on the count: each thread writes its
own part of the output, and min/max combine exactly.

threadpoolctl (optional) sees the pool as ``user_api="linquant"``: ``threadpool_info()``
lists it with its count, and ``threadpool_limits(n)`` sets the count for its block, as it does
for BLAS and OpenMP (``threadpool_limits(n, user_api="blas")`` leaves it alone). Nothing is
needed for this: linquant registers its controller when threadpoolctl is imported, before
linquant or after, without importing threadpoolctl itself. Example::

    import linquant as lq
    from threadpoolctl import threadpool_info, threadpool_limits

    [info["num_threads"] for info in threadpool_info() if info["user_api"] == "linquant"]
    with threadpool_limits(1):  # e.g. inside processes that already use every core
        lq.quantize_linear(x, 0.1)  # on one thread; the count is restored after the block

The pool is listed where the compiled kernels are loaded; a pure-NumPy installation
(``LINQUANT_DISABLE_CEXT=1``) has no pool, and threadpoolctl lists nothing for linquant.
"""

from __future__ import annotations

import importlib.util
import math
import operator
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._version import __version__

if TYPE_CHECKING:
    from importlib.abc import Loader  # not at run time: it imports importlib.resources
    from importlib.machinery import ModuleSpec

T = TypeVar("T")

_CGROUP_V2_FILE = "/sys/fs/cgroup/cpu.max"
_CGROUP_V1_FILES = ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def _cgroup_cpu_limit() -> int | None:
    """CPUs allowed by a cgroup (v2, else v1) CPU quota, or None when there is none."""
    try:
        quota, period = Path(_CGROUP_V2_FILE).read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota, period = (Path(path).read_text().strip() for path in _CGROUP_V1_FILES)
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def default_num_threads() -> int:
    """CPUs this process may use, honouring affinity, cgroup quotas and OMP_NUM_THREADS."""
    if hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        count = min(count, limit)
    requested = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if requested.isdigit() and int(requested) > 0:
        count = min(count, int(requested)) if limit is not None else int(requested)
    return max(1, count)


_num_threads = default_num_threads()
_pool: ThreadPoolExecutor | None = None
# Guards _pool and _num_threads: a call hands its pieces to the pool under it, so that
# set_num_threads never retires a pool between another thread's finding it and submitting.
_lock = threading.Lock()


def get_num_threads() -> int:
    """Threads the compiled kernels use for a large array.

    >>> import linquant as lq
    >>> lq.get_num_threads() >= 1
    True
    """
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (an int ≥ 1) for large arrays; results are identical for every ``n``.

    Safe while other threads compute: calls under way finish on the threads they started with.
    """
    global _num_threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be an int >= 1, got {n!r}")
    with _lock:
        retired = _pool if n != _num_threads else None
        if retired is not None:
            _pool = None
        _num_threads = n
    if retired is not None:
        retired.shutdown(wait=False)  # its threads end once the work already given is done


def _forget_pool() -> None:
    global _pool, _lock
    _pool = None  # a forked child has none of the parent's threads,
    _lock = threading.Lock()  # and the lock may have been held by one of them


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


_THREAD_PREFIX = "linquant"


def run(task: Callable[..., T], pieces: Sequence[tuple[object, ...]], *args: object) -> list[T]:
    """``[task(*piece, *args) for piece in pieces]``, the pieces spread over the threads.

    The calling thread does the first piece itself while the pool does the others, so a call
    with ``n`` pieces wakes ``n - 1`` pool threads.
    """
    global _pool
    # A task that calls run again from a pool thread runs its pieces itself: waiting there on
    # the pool that runs it could wait forever.
    nested = threading.current_thread().name.startswith(_THREAD_PREFIX)
    if len(pieces) <= 1 or nested:
        return [task(*piece, *args) for piece in pieces]
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, _num_threads - 1), thread_name_prefix=_THREAD_PREFIX)
        futures = [_pool.submit(task, *piece, *args) for piece in pieces[1:]]
    first = task(*pieces[0], *args)
    return [first, *(future.result() for future in futures)]


def _register_controller(threadpoolctl: ModuleType) -> None:
    """Register linquant's controller with ``threadpoolctl`` (3.2 and later: earlier releases
    take no controllers from other libraries, and then this does nothing)."""
    register = getattr(threadpoolctl, "register", None)
    if register is None:
        return

    base: Any = threadpoolctl.LibController  # threadpoolctl has no types

    class LinquantController(base):  # type: ignore[misc]
        """The pool of linquant's compiled kernels, for threadpoolctl.

        threadpoolctl finds a library by the names of the shared objects loaded in the process:
        here ``_kernels_baseline``, the kernel build that the compiled backend always loads (it
        loads the wider builds the CPU runs too; matching those would list the pool again).
        The count is the process's, as ``set_num_threads`` sets it, not the calling thread's.
        """

        user_api = "linquant"
        internal_api = "linquant"
        filename_prefixes = ("_kernels_baseline",)
        check_symbols = ("PyInit__kernels_baseline",)  # not "_kernels_baseline2", say

        def get_num_threads(self) -> int:
            return get_num_threads()

        def set_num_threads(self, num_threads: int) -> None:
            set_num_threads(operator.index(num_threads))

        def get_version(self) -> str:
            return __version__

        def set_additional_attributes(self) -> None:
            from ._backend import get_cpu_level  # _backend imports this module

            self.cpu_level = get_cpu_level()

    register(LinquantController)


class _RegisterAfterExecuting:
    """Loads threadpoolctl with its own loader, then registers linquant's controller.

    A loader by its methods, as the finder below is a finder: subclassing ``importlib.abc``'s
    would make importing linquant import it, and ``importlib.resources`` with it.
    """

    def __init__(self, loader: Loader) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader  # the module keeps its own loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _register_controller(module)


class _RegisterOnImport:
    """Finds threadpoolctl as the other finders do, its loader wrapped to register linquant's
    controller once threadpoolctl has run; finds nothing else."""

    def __init__(self) -> None:
        self._finding = threading.local()  # the search below asks this finder too

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "threadpoolctl" or getattr(self._finding, "active", False):
            return None
        self._finding.active = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding.active = False
        if spec is not None and spec.loader is not None:
            spec.loader = cast("Loader", _RegisterAfterExecuting(spec.loader))
        return spec


def _register_with_threadpoolctl() -> None:
    """Make the pool visible to threadpoolctl, an optional dependency, at no cost to import.

    Registered now if threadpoolctl is imported already, else as soon as it is (by the user,
    or by a library such as scikit-learn, before or after linquant), so that nobody has to call
    anything; importing it here would slow every import of linquant where it is installed,
    and where it is not, nothing happens. The finder stays in ``sys.meta_path``: removing it
    could make another thread's import, going through that list meanwhile, skip the finder
    after it.
    """
    module = sys.modules.get("threadpoolctl")
    if module is not None:
        _register_controller(module)
    else:
        sys.meta_path.insert(0, _RegisterOnImport())


_register_with_threadpoolctl()

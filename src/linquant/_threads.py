"""Threads of the compiled kernels: how many, and the pool that runs them.

The kernels release the GIL, so a plain thread pool runs them in parallel. The default count
is the CPUs this process may use: its CPU affinity, capped by a cgroup CPU quota (containers)
and by ``OMP_NUM_THREADS`` when set. Results never depend on the count: each thread writes its
own part of the output, and min/max combine exactly.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

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


def run(task: Callable[..., T], pieces: Sequence[tuple[object, ...]], *args: object) -> list[T]:
    """``[task(*piece, *args) for piece in pieces]``, the pieces spread over the threads.

    The calling thread does the first piece itself while the pool does the others, so a call
    with ``n`` pieces wakes ``n - 1`` pool threads.
    """
    global _pool
    if len(pieces) <= 1:
        return [task(*piece, *args) for piece in pieces]
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, _num_threads - 1), thread_name_prefix="linquant")
        futures = [_pool.submit(task, *piece, *args) for piece in pieces[1:]]
    first = task(*pieces[0], *args)
    return [first, *(future.result() for future in futures)]

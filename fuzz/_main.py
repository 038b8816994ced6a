"""The command line every harness shares: ``--seeds DIR`` writes the harness's seed corpus to
DIR; anything else goes to libFuzzer, as atheris passes it on."""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable

import atheris


def run(
    write_seeds: Callable[[str], None],
    test_one_input: Callable[[bytes], None],
    mutate: Callable[[bytes, int, int], bytes],
    *,
    trace_memory: bool = False,
) -> None:
    """Write the seeds, or fuzz ``test_one_input`` with the custom mutator ``mutate``.

    ``trace_memory`` starts tracemalloc once, for harnesses that bound each input's
    allocations (starting and stopping it for each input grows the process).
    """
    if sys.argv[1:2] == ["--seeds"]:
        write_seeds(sys.argv[2])
        return
    if trace_memory:
        tracemalloc.start()
    atheris.Setup(sys.argv, test_one_input, custom_mutator=mutate)
    atheris.Fuzz()


def allocation_start() -> int:
    """tracemalloc's count now, its peak reset: what :func:`check_allocation` compares to."""
    tracemalloc.reset_peak()
    return tracemalloc.get_traced_memory()[0]


def check_allocation(before: int, size: int, per_byte: int, fixed: int) -> None:
    """MemoryError if more than ``per_byte`` bytes per byte of an input of ``size`` bytes
    (and ``fixed``) were allocated at the peak since ``before`` (tracemalloc's count)."""
    peak = tracemalloc.get_traced_memory()[1] - before
    if peak > per_byte * size + fixed:
        raise MemoryError(f"reading {size} bytes allocated {peak}")


def raw_mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's own mutation of the bytes."""
    return bytes(atheris.Mutate(data, max_size))

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

#!/usr/bin/env bash
# The stress tests: `pytest -m stress` over tests/ (tests/test_stress.py, deselected from the
# plain suite), under a time limit for the whole run.
#
#   - 2**31 + 1000 float32 values quantized per tensor and per block (blocks of 32 along the
#     last axis) and dequantized, on one thread and every CPU level, compared bit for bit with
#     the NumPy backend on the head, around element 2**31 and on the tail. Each of these two
#     tests needs about 11 GiB of memory, and skips, saying so, where less is available.
#   - Eight threads calling the API on arrays split across the pool's threads while another
#     keeps changing lq.set_num_threads, for LINQUANT_STRESS_SECONDS.
#   - Forks, again and again, while threads take pooled results and drop them; a child or a
#     parent that deadlocks fails the test (every thread's stack is printed).
#   - Resident memory over 10**5 calls, small and large: flat within 50 MiB.
# Each test runs its scenario in a new interpreter with a time limit of its own.
#
# Usage: scripts/stress.sh [PYTEST_ARGS ...]      e.g. scripts/stress.sh -k fork
# Environment:
#   PYTHON                   an interpreter with linquant and pytest installed (default: the
#                            checkout's .venv/bin/python if there is one, else python3)
#   STRESS_TIMEOUT           seconds for the whole run (default: 2400); past them it is killed
#   LINQUANT_STRESS_SECONDS  how long the threaded tests run (default: 20)
# Exit status: pytest's (0: every stress test passed or skipped), 124 when the run timed out.
# Takes a few minutes with the default settings; most of it goes to the tests past 2**31.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON=python3
    [[ -x "$ROOT/.venv/bin/python" ]] && PYTHON="$ROOT/.venv/bin/python"
fi
LIMIT=${STRESS_TIMEOUT:-2400}

cd "$ROOT"
"$PYTHON" -c 'import linquant as lq; print("linquant", lq.__version__, "from", lq.__file__, "|", lq.get_backend(), lq.get_cpu_level(), "|", lq.get_num_threads(), "threads")'
echo "stress tests, at most $LIMIT s; threaded tests ${LINQUANT_STRESS_SECONDS:-20} s each"
rc=0
timeout -k 30 "$LIMIT" "$PYTHON" -m pytest -m stress -p no:cacheprovider -v -rA --durations=0 \
    tests "$@" || rc=$?
if ((rc == 124 || rc == 137)); then
    echo "stress tests: still running after $LIMIT s, killed" >&2
fi
exit "$rc"

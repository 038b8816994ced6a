#!/usr/bin/env bash
# Coverage-guided fuzzing: every atheris harness fuzz/fuzz_<name>.py, one after the other, each
# for a bounded time, then a summary per harness (executions, new corpus entries, time, result).
#
#   - Each harness runs as `python fuzz/fuzz_<name>.py NEW fuzz/corpus/<name> -max_total_time=N
#     -print_final_stats=1 -artifact_prefix=ARTIFACTS/ -timeout=T`. libFuzzer adds the inputs it
#     finds to the first directory named, NEW, a temporary one: the repository's corpus is read,
#     never written. New entries are kept only with KEEP=1 (or after a failure).
#   - A harness fails when libFuzzer stops on a crash (an uncaught Python exception, a signal),
#     on an input slower than T seconds or on memory past -rss_limit_mb (2048 by default), or
#     when it is still running N + 300 seconds after it started; the input that did it is kept
#     under ARTIFACTS, and the command that replays it is printed.
#   - Without FUZZ_VENV, a fresh virtual environment gets atheris and linquant with its
#     numcodecs extra, built from a copy of the checkout (the files git tracks, and untracked
#     ones it does not ignore), and the copy's harnesses run. With FUZZ_VENV, that environment
#     is used as it is, with this checkout's harnesses.
#
# Usage: scripts/fuzz.sh [SECONDS] [NAME ...]
#   SECONDS: fuzzing time per harness (default: $FUZZ_SECONDS, else 120)
#   NAME: the harnesses to run, e.g. `codec load` (default: every fuzz/fuzz_*.py)
# Environment:
#   FUZZ_SECONDS   as SECONDS
#   FUZZ_VENV      an existing virtual environment with linquant[numcodecs] and atheris
#   FUZZ_DIR       the harnesses' directory (default: fuzz/ of the checkout, or of its copy)
#   FUZZ_TIMEOUT   T, the seconds one input may take (default: 60)
#   FUZZ_ARGS      more libFuzzer arguments for every harness, e.g. "-rss_limit_mb=4096"
#   PYTHON         the interpreter for a fresh virtual environment (default: python3)
#   KEEP=1         keep the temporary directory (new corpus entries, logs, the venv)
# Exit status: 0 when every harness ran its time without a finding, 1 otherwise (2: usage).
# Takes SECONDS per harness (five harnesses: 10 minutes by default), plus a few minutes to
# build the package when FUZZ_VENV is not given. Needs PyPI without FUZZ_VENV.
set -euo pipefail

usage() {
    sed -n '/^# Usage:/,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

SECONDS_EACH=${FUZZ_SECONDS:-120}
NAMES=()
for arg in "$@"; do
    case "$arg" in
        -h | --help) usage ;;
        *[!0-9]*) name=${arg##*/}; name=${name#fuzz_}; NAMES+=("${name%.py}") ;;
        *) SECONDS_EACH=$arg ;;
    esac
done
[[ "$SECONDS_EACH" =~ ^[0-9]+$ && "$SECONDS_EACH" -gt 0 ]] ||
    { echo "the time per harness must be a positive number of seconds" >&2; usage; }
INPUT_TIMEOUT=${FUZZ_TIMEOUT:-60}
read -r -a EXTRA_ARGS <<<"${FUZZ_ARGS:-}"

PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/linquant-fuzz.XXXXXX")
keep=${KEEP:-0}
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ "$keep" == "1" ]]; then
        echo "== kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
unset LINQUANT_BACKEND LINQUANT_CPU PYTHONPATH
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s\n' "$*"; }

if [[ -n "${FUZZ_VENV:-}" ]]; then
    PY="$FUZZ_VENV/bin/python"
    [[ -x "$PY" ]] || { echo "FUZZ_VENV=$FUZZ_VENV has no bin/python" >&2; exit 2; }
    HARNESSES=${FUZZ_DIR:-$ROOT/fuzz}
    step "environment: $FUZZ_VENV (as it is)"
else
    step "source: the working tree of $ROOT"
    SRC="$WORK/src"
    mkdir "$SRC"
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
        (cd "$ROOT" && while IFS= read -r -d '' path; do
            [[ -f "$path" ]] && printf '%s\0' "$path"
        done) |
        (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$SRC"
    HARNESSES=${FUZZ_DIR:-$SRC/fuzz}
    step "fresh virtual environment: linquant[numcodecs] and atheris ($("$PYTHON" --version))"
    "$PYTHON" -m venv "$WORK/env"
    PY="$WORK/env/bin/python"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q "${SRC}[numcodecs]" atheris
fi
"$PY" -c 'import atheris, linquant as lq; print("  linquant", lq.__version__, "from", lq.__file__, "|", lq.get_backend(), lq.get_cpu_level())'

if ((${#NAMES[@]} == 0)); then
    for harness in "$HARNESSES"/fuzz_*.py; do
        [[ -f "$harness" ]] || continue
        name=${harness##*/fuzz_}
        NAMES+=("${name%.py}")
    done
fi
((${#NAMES[@]})) || { echo "no harness: $HARNESSES/fuzz_*.py" >&2; exit 1; }
for name in "${NAMES[@]}"; do
    [[ -f "$HARNESSES/fuzz_$name.py" ]] || { echo "no harness $HARNESSES/fuzz_$name.py" >&2; exit 2; }
done

# final_stat NAME LOG: a value of libFuzzer's final statistics (-print_final_stats=1), or "-".
final_stat() { sed -n "s/^stat::$1: *\([0-9.]*\).*/\1/p" "$2" | tail -1 | grep . || echo -; }

rows=()
failed=0
for name in "${NAMES[@]}"; do
    harness="$HARNESSES/fuzz_$name.py"
    new="$WORK/corpus/$name"
    artifacts="$WORK/artifacts/$name"
    log="$WORK/logs/$name.log"
    mkdir -p "$new" "$artifacts" "$WORK/logs"
    corpora=("$new")
    [[ -d "$HARNESSES/corpus/$name" ]] && corpora+=("$HARNESSES/corpus/$name")
    command=("$PY" "$harness" "${corpora[@]}" "-max_total_time=$SECONDS_EACH"
        -print_final_stats=1 "-artifact_prefix=$artifacts/" "-timeout=$INPUT_TIMEOUT"
        "${EXTRA_ARGS[@]}")
    step "$name: ${command[*]:1}"
    start=$SECONDS
    rc=0 what=
    (cd "$WORK" && timeout -k 30 $((SECONDS_EACH + 300)) "${command[@]}") >"$log" 2>&1 || rc=$?
    elapsed=$((SECONDS - start))
    grep -E '^(INFO: seed corpus|#[0-9]+ +(INITED|DONE))|^Done [0-9]+ runs' "$log" | sed 's/^/  /' || true
    runs=$(final_stat number_of_executed_units "$log")
    if [[ "$runs" == - ]]; then  # no final statistics (killed): the last status line
        runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' | grep . || echo -)
    fi
    crashes=$(find "$artifacts" -type f | sort)
    if ((rc == 0)) && [[ -z "$crashes" ]]; then
        result=ok
    else
        failed=1
        keep=1
        # libFuzzer's own word for what stopped it: crash, timeout, out-of-memory, ...
        what=$(sed -n 's/^SUMMARY: libFuzzer: //p' "$log" | tail -1)
        case $rc in
            124 | 137) result=HUNG what="killed after $((SECONDS_EACH + 300)) s" ;;
            *) result=FAILED what="${what:-no libFuzzer summary}, exit $rc" ;;
        esac
        printf '\n---- %s: the end of its output\n' "$name"
        tail -60 "$log"
        for crash in $crashes; do
            printf '\n---- %s: %s (%s bytes); replay with:\n  %s %s %s\n' "$name" \
                "$(basename "$crash")" "$(stat -c %s "$crash" 2>/dev/null || wc -c <"$crash")" \
                "$PY" "$harness" "$crash"
        done
    fi
    rows+=("$(printf '%-10s %-7s %12s %10s %9s %9s %8s s  %s' "$name" "$result" "$runs" \
        "$(final_stat average_exec_per_sec "$log")" "$(find "$new" -type f | wc -l)" \
        "$(final_stat peak_rss_mb "$log")" "$elapsed" "${what:-}" | sed "s/ *$//")")
done

step "summary ($SECONDS_EACH s per harness)"
printf '%-10s %-7s %12s %10s %9s %9s %10s\n' harness result executions "exec/s" "new units" \
    "peak MiB" time
printf '%s\n' "${rows[@]}"
exit "$failed"

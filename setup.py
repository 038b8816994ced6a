"""Build script: the Cython kernels, with compiler flags chosen per compiler.

Environment variables read at build time:

- ``LINQUANT_DISABLE_CEXT=1``: build no extension (pure-Python install, NumPy backend).
- ``LINQUANT_CYTHON_DEBUG=1``: compile the kernels with bounds checking and no optimisation.
- ``CFLAGS``: added to the compiler's flags before this script's own; a ``-g`` option there
  keeps the debug information that other builds leave out.

The extensions build side by side, one job per CPU (``setup.py build_ext -j N`` to choose).
"""

import glob
import os
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build"))
from backend import cext_enabled

DEBUG = os.environ.get("LINQUANT_CYTHON_DEBUG", "0") not in ("", "0")

# SPEC §2 needs true IEEE division and no fused multiply-add: never -ffast-math, and
# -ffp-contract=off so that no compiler turns `(q - zp) * s` or `x / s` into an FMA.
UNIX_FLAGS = ["-O0", "-g"] if DEBUG else ["-O3"]
# Python's own CFLAGS carry -g. Debug information changes no instruction but costs much of the
# compile time of the kernels' large generated C: left out, unless the user's CFLAGS ask for it
# (scripts/sanitize.sh does, for its reports).
if not DEBUG and not any(flag.startswith("-g") for flag in os.environ.get("CFLAGS", "").split()):
    UNIX_FLAGS.append("-g0")
# -fopenmp-simd honours the `omp simd` pragma of _c/lq_portable.h without linking an OpenMP
# runtime.
# -fno-trapping-math lets the vectorizer turn the clamps of the quantize loop into selects
# (without it GCC keeps the SSE2 loop scalar); it only concerns floating-point exception
# traps, never a value, and the kernels install no trap handler.
UNIX_FLAGS += ["-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"]
MSVC_FLAGS = ["/Od"] if DEBUG else ["/O2"]
MSVC_FLAGS += ["/fp:precise"]

# The kernels are built once per instruction-set level; linquant._compiled picks the widest
# one the CPU supports at import. Never tuned to the build machine (no native -march): a
# wheel must run on any CPU of its platform, and only the chosen module ever executes wider
# instructions. On other
# architectures (aarch64 has NEON in its baseline) and with MSVC, the baseline build only.
X86_LEVEL_FLAGS = {
    "avx2": ["-mavx2"],
    "avx512": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"],
}

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}


def _cython_knows(directive: str) -> bool:
    try:
        from Cython.Compiler.Options import directive_types
    except ImportError:  # an sdist build, or LINQUANT_DISABLE_CEXT=1: no Cython needed
        return False
    return directive in directive_types


# Free-threaded CPython (3.14t): every module built with these directives declares itself safe
# to run without the GIL; otherwise importing it would switch the GIL back on for the whole
# process. The kernels are: their only globals are constants, they write only into the buffers
# they are handed and touch no Python object without the GIL. A module with mutable state must
# guard it with a lock of its own, since no GIL does. Cython 3.1 and later know the directive
# (and only they support free-threaded builds); on a GIL build it changes nothing.
if _cython_knows("freethreading_compatible"):
    DIRECTIVES["freethreading_compatible"] = True
CYTHON_ARGS = ["-X", ",".join(f"{name}={value}" for name, value in DIRECTIVES.items())]


class BuildExt(build_ext):
    """Compiler flags per compiler type; the extensions built side by side.

    Each extension is cythonized, then compiled, on a thread of build_ext's pool (``-j``; one
    per CPU unless the user says). Cython is a build requirement whenever the extension is built.
    """

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:  # no -j given (pip gives none): one job per CPU
            self.parallel = True

    def build_extensions(self) -> None:
        msvc = self.compiler.compiler_type == "msvc"
        if msvc:
            wide = tuple(f"_{level}" for level in X86_LEVEL_FLAGS)
            self.extensions = [ext for ext in self.extensions if not ext.name.endswith(wide)]
        for ext in self.extensions:
            level = ext.name.rsplit("_", 1)[-1]
            flags = MSVC_FLAGS if msvc else UNIX_FLAGS + X86_LEVEL_FLAGS.get(level, [])
            ext.extra_compile_args = flags + list(ext.extra_compile_args)
        super().build_extensions()

    def build_extension(self, ext: Extension) -> None:
        # Cythonized in a process of its own, by Cython's command line: the Cython compiler holds
        # the GIL, so the pool's threads would take turns, and cythonize()'s own process pool
        # re-runs setup.py in its workers where processes are spawned (Windows, macOS). Like
        # build_ext's own cythonizing, it skips a module whose C is newer than its sources.
        pyx = [source for source in ext.sources if source.endswith(".pyx")]
        if pyx:
            force = ["--force"] if self.force else []
            self.spawn([sys.executable, "-m", "Cython.Build.Cythonize", *CYTHON_ARGS, *force, *pyx])
            ext.sources = [
                source.removesuffix(".pyx") + ".c" if source in pyx else source
                for source in ext.sources
            ]
        super().build_extension(ext)


def kernel_levels() -> list[str]:
    platform = sysconfig.get_platform()
    if platform.endswith(("x86_64", "amd64")):
        return ["baseline", *X86_LEVEL_FLAGS]
    return ["baseline"]


extensions = []
if cext_enabled():
    # Widest level first: its kernels take longest to compile, and build_ext's pool starts the
    # extensions in this order.
    for level in reversed(kernel_levels()):
        kernels = Extension(
            f"linquant._kernels_{level}",
            [f"src/linquant/_kernels_{level}.pyx"],
            depends=[
                *sorted(glob.glob("src/linquant/*.pxi")),
                *sorted(glob.glob("src/linquant/_c/*.h")),
            ],
            include_dirs=["src/linquant/_c"],
        )
        extensions.append(kernels)
    buffers = Extension("linquant._buffers", ["src/linquant/_buffers.pyx"])
    extensions.append(buffers)

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})

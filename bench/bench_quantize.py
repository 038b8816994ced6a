"""Benchmark linquant against plain NumPy, ONNX Runtime and PyTorch.

Four operations, each measured with every available method on the same input array:

- ``dynamic``: parameters from the data (ONNX DynamicQuantizeLinear), then uint8 codes;
- ``quantize``: uint8 codes with given scale and zero point (ONNX QuantizeLinear);
- ``dequantize``: uint8 codes back to float32 (ONNX DequantizeLinear);
- ``floor``: ``x.min()`` and ``x.max()``, two read passes: the floor for two-pass methods.

Each method, at each thread count, is timed in a process of its own that makes the input
from the seed: in a shared process, ONNX Runtime's and PyTorch's pool threads spin on after a
call and hold a core through whatever is timed next. The methods take turns for ``--rounds``
rounds; each process reports the median of ``--repeats`` runs, and the tables give the median
over the rounds of those medians, so that the machine's swings fall on every method alike.
Methods from packages that are not installed are skipped and listed in the header. Results
are checked against linquant's (compiled backend, one thread), computed in the same process;
a mismatch is marked in the table and never stops the timing.

Run ``python bench/bench_quantize.py --help`` for the options; see bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import linquant as lq
from linquant._bench import ChildFailed, apart, in_turns, measure, onnx_model

OPS = ("dynamic", "quantize", "dequantize", "floor")
OPTIONAL_PACKAGES = ("onnx", "onnxruntime", "torch", "matplotlib")
SEED = 20240601
LOW, HIGH = -50.0, 150.0
DEFAULT_SIZE = 16 * 2**20
SWEEP_SIZES = tuple(2**k for k in range(10, 27, 2))  # 1K, 4K, ..., 16M, 64M
QUICK_SIZES = (2**12, 2**16)
CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512dq",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "asimd",
    "sve",
    "sve2",
)


class NotApplicable(Exception):
    """A method that cannot run this case (e.g. float32-only, input is float64)."""


# --- the input ---------------------------------------------------------------------------


@dataclass
class Case:
    """One input array, the parameters and codes derived from it, and the expected results."""

    x: np.ndarray
    scale: np.floating
    zero_point: int
    codes: np.ndarray
    expected: dict[str, np.ndarray]

    @classmethod
    def make(cls, size: int, dtype: str) -> Case:
        rng = np.random.default_rng(SEED)
        x = rng.uniform(LOW, HIGH, size).astype(dtype)
        lq.set_num_threads(1)
        dynamic_codes, scale, zero_point = lq.dynamic_quantize_linear(x)
        codes = lq.quantize_linear(x, scale, zero_point)
        expected = {
            "dynamic": dynamic_codes,
            "quantize": codes,
            "dequantize": lq.dequantize_linear(codes, scale, zero_point),
            "floor": np.array(lq.minmax(x)),
        }
        return cls(x, scale, int(zero_point), codes, expected)

    @property
    def scale32(self) -> np.float32:
        return np.float32(self.scale)


# --- the methods -------------------------------------------------------------------------

Call = Callable[[], Any]


@dataclass(frozen=True)
class Method:
    """One way to do an operation: ``prepare(case, threads)`` sets threads, returns the call."""

    op: str
    name: str
    prepare: Callable[[Case, int], Call]
    output: Callable[[Any], np.ndarray]
    requires: tuple[str, ...] = ()
    threaded: bool = True

    @property
    def key(self) -> str:
        return f"{self.op}/{self.name}"


REGISTRY: list[Method] = []


def _first(result: Any) -> np.ndarray:
    return np.asarray(result[0])


def method(
    op: str,
    name: str,
    *,
    output: Callable[[Any], np.ndarray] = np.asarray,
    requires: tuple[str, ...] = (),
    threaded: bool = True,
) -> Callable[[Callable[[Case, int], Call]], Callable[[Case, int], Call]]:
    """Register ``prepare`` as the method ``name`` of operation ``op``."""

    def register(prepare: Callable[[Case, int], Call]) -> Callable[[Case, int], Call]:
        REGISTRY.append(Method(op, name, prepare, output, requires, threaded))
        return prepare

    return register


def _needs_float32(case: Case) -> None:
    if case.x.dtype != np.float32:
        raise NotApplicable("float32 input only")


# linquant


@method("dynamic", "linquant", output=_first)
def linquant_dynamic(case: Case, threads: int) -> Call:
    lq.set_num_threads(threads)
    return lambda: lq.dynamic_quantize_linear(case.x)


@method("dynamic", "linquant numpy-backend", output=_first, threaded=False)
def linquant_numpy_dynamic(case: Case, threads: int) -> Call:
    previous = lq.get_backend()

    def call() -> Any:
        lq.set_backend("numpy")
        try:
            return lq.dynamic_quantize_linear(case.x)
        finally:
            lq.set_backend(previous)

    return call


@method("quantize", "linquant")
def linquant_quantize(case: Case, threads: int) -> Call:
    lq.set_num_threads(threads)
    return lambda: lq.quantize_linear(case.x, case.scale, case.zero_point)


@method("dequantize", "linquant")
def linquant_dequantize(case: Case, threads: int) -> Call:
    lq.set_num_threads(threads)
    return lambda: lq.dequantize_linear(case.codes, case.scale, case.zero_point)


@method("floor", "linquant minmax")
def linquant_minmax(case: Case, threads: int) -> Call:
    lq.set_num_threads(threads)
    return lambda: lq.minmax(case.x)


# plain NumPy (single-threaded)


@method("dynamic", "numpy notebook (fixed)", threaded=False)
def numpy_dynamic(case: Case, threads: int) -> Call:
    x = case.x

    def call() -> np.ndarray:
        # the notebook's asymmetric_quantization as written, with its bugs fixed: the clamp
        # applies to the codes (not the input) and a zero range takes scale 1
        alpha, beta = np.max(x), np.min(x)
        scale = (alpha - beta) / (2**8 - 1) if alpha > beta else x.dtype.type(1)
        zero = -1 * np.round(beta / scale)
        quantized = np.round(x / scale) + zero
        quantized[quantized < 0] = 0
        quantized[quantized > 255] = 255
        return quantized.astype(np.int32)

    return call


@method("quantize", "numpy", threaded=False)
def numpy_quantize(case: Case, threads: int) -> Call:
    x, scale, zero_point = case.x, case.x.dtype.type(case.scale), case.zero_point
    return lambda: np.clip(np.rint(x / scale) + zero_point, 0, 255).astype(np.uint8)


@method("dequantize", "numpy", threaded=False)
def numpy_dequantize(case: Case, threads: int) -> Call:
    codes, scale, zero_point = case.codes, case.scale32, np.float32(case.zero_point)

    def call() -> np.ndarray:
        out = codes.astype(np.float32)
        out -= zero_point
        out *= scale
        return out

    return call


@method("floor", "numpy max+min", output=lambda r: np.array(r), threaded=False)
def numpy_floor(case: Case, threads: int) -> Call:
    x = case.x
    return lambda: (x.min(), x.max())


# ONNX Runtime: one-node models, one session per process

ORT = ("onnx", "onnxruntime")


def ort_session(op_type: str, threads: int) -> Any:
    """A session running one ``op_type`` node on 1-D input, ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(onnx_model(op_type), options, providers=["CPUExecutionProvider"])


def _ort_params(case: Case) -> dict[str, np.ndarray]:
    return {"scale": np.array(case.scale32), "zero_point": np.array(case.zero_point, np.uint8)}


@method("dynamic", "onnxruntime", output=_first, requires=ORT)
def ort_dynamic(case: Case, threads: int) -> Call:
    _needs_float32(case)
    session, feeds = ort_session("DynamicQuantizeLinear", threads), {"x": case.x}
    return lambda: session.run(None, feeds)


@method("quantize", "onnxruntime", output=_first, requires=ORT)
def ort_quantize(case: Case, threads: int) -> Call:
    _needs_float32(case)
    session, feeds = ort_session("QuantizeLinear", threads), {"x": case.x, **_ort_params(case)}
    return lambda: session.run(None, feeds)


@method("dequantize", "onnxruntime", output=_first, requires=ORT)
def ort_dequantize(case: Case, threads: int) -> Call:
    session = ort_session("DequantizeLinear", threads)
    feeds = {"x": case.codes, **_ort_params(case)}
    return lambda: session.run(None, feeds)


# PyTorch: torch.from_numpy shares the NumPy buffers


def _torch(threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    return torch


def _torch_codes(result: Any) -> np.ndarray:
    return result.int_repr().numpy()


@method("dynamic", "torch", output=_torch_codes, requires=("torch",))
def torch_dynamic(case: Case, threads: int) -> Call:
    _needs_float32(case)
    torch = _torch(threads)
    x = torch.from_numpy(case.x)

    def call() -> Any:
        lo, hi = torch.aminmax(x)
        lo, hi = torch.clamp(lo, max=0), torch.clamp(hi, min=0)  # the range includes 0, as ONNX
        scale = (hi - lo) / 255
        zero_point = torch.round(torch.clamp(-lo / scale, 0, 255))
        return torch.quantize_per_tensor(x, scale.item(), int(zero_point.item()), torch.quint8)

    return call


@method("quantize", "torch", output=_torch_codes, requires=("torch",))
def torch_quantize(case: Case, threads: int) -> Call:
    _needs_float32(case)
    torch = _torch(threads)
    x, scale, zero_point = torch.from_numpy(case.x), float(case.scale32), case.zero_point
    return lambda: torch.quantize_per_tensor(x, scale, zero_point, torch.quint8)


@method("dequantize", "torch", output=lambda r: r.numpy(), requires=("torch",))
def torch_dequantize(case: Case, threads: int) -> Call:
    torch = _torch(threads)
    codes = torch.from_numpy(case.codes)
    q = torch._make_per_tensor_quantized_tensor(codes, float(case.scale32), case.zero_point)
    return q.dequantize


# --- timing and checking, one method in a process of its own -------------------------------


def compare(actual: np.ndarray, expected: np.ndarray) -> str:
    """``"ok"`` when equal value for value, else how many differ and by how much."""
    if actual.shape != expected.shape:
        return f"MISMATCH {actual.dtype}{actual.shape} vs {expected.dtype}{expected.shape}"
    differ = actual != expected
    count = int(np.count_nonzero(differ))
    if not count:
        return "ok"
    delta = np.abs(actual[differ].astype(np.float64) - expected[differ].astype(np.float64))
    return f"MISMATCH {count}/{actual.size} (max diff {delta.max():.3g})"


def measure_one(
    key: str, threads: int, size: int, dtype: str, repeats: int, batch: float
) -> dict[str, Any]:
    """The child's side of :func:`measure_apart`: seconds per call and the check of the method
    ``key`` ("op/name"), or why it did not run."""
    method = next(m for m in REGISTRY if m.key == key)
    case = Case.make(size, dtype)
    try:
        seconds, result = measure(method.prepare(case, threads), repeats, batch)
    except NotApplicable as reason:
        return {"not_applicable": str(reason)}
    except Exception as error:  # reported in the table; the other methods go on
        return {"error": f"{type(error).__name__}: {error}"}
    return {"seconds": seconds, "check": compare(method.output(result), case.expected[method.op])}


def measure_apart(method: Method, threads: int, size: int, options: Options) -> dict[str, Any]:
    """:func:`measure_one` in a process of its own (this script with ``--measure``)."""
    spec = {
        "key": method.key,
        "threads": threads,
        "size": size,
        "dtype": options.dtype,
        "repeats": options.repeats_for(size),
        "batch": options.batch,
    }
    try:
        return apart([sys.executable, __file__, "--measure", json.dumps(spec)])
    except ChildFailed as error:
        return {"error": str(error)}


@dataclass
class Row:
    """One method on one input: per thread count, the seconds of each round and the check;
    notes (errors, or why the method does not apply)."""

    method: Method
    rounds: dict[int, list[float]] = field(default_factory=dict)
    checks: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    applies: bool = True

    @property
    def seconds(self) -> dict[int, float]:
        """Per thread count, the median over the rounds."""
        return {n: statistics.median(times) for n, times in self.rounds.items()}

    def add(self, threads: int, measured: dict[str, Any]) -> None:
        """One round at ``threads`` threads, as :func:`measure_one` reported it."""
        if "seconds" in measured:
            self.rounds.setdefault(threads, []).append(measured["seconds"])
            self.checks[threads] = measured["check"]
            return
        if "not_applicable" in measured:
            self.applies = False
            note = f"n/a: {measured['not_applicable']}"
        else:
            note = f"{threads} thr: {measured['error']}"
        if note not in self.notes:
            self.notes.append(note)

    def summary(self) -> str:
        """The notes, then the check: once if the same at every thread count, else each."""
        checks = sorted(set(self.checks.values()))
        if len(checks) > 1:
            checks = [f"{n} thr: {check}" for n, check in self.checks.items()]
        return "; ".join(self.notes + checks)


def run_size(size: int, methods: dict[str, list[Method]], options: Options) -> dict[str, list[Row]]:
    """Every method at every thread count (once if single-threaded), in turns for the rounds."""
    rows = {op: [Row(m) for m in op_methods] for op, op_methods in methods.items()}
    jobs = [
        (row, n)
        for op_rows in rows.values()
        for row in op_rows
        for n in (options.threads if row.method.threaded else [1])
    ]
    for row, n in in_turns(jobs, options.rounds):
        if row.applies:
            row.add(n, measure_apart(row.method, n, size, options))
    return rows


# --- options -----------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``"16M"`` -> 16 * 2**20; K, M and G are binary multiples."""
    text = text.strip().upper()
    factor = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    number = text[:-1] if factor > 1 else text
    try:
        return int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1000, 64K, 16M)") from None


def parse_list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        return [kind(item) for item in text.split(",") if item.strip()]

    return parse


@dataclass
class Options:
    sizes: list[int]
    dtype: str
    threads: list[int]
    repeats: int
    rounds: int
    batch: float
    sweep: bool
    methods: list[str]
    json: Path | None
    plot: Path | None
    measure: str | None

    def repeats_for(self, size: int) -> int:
        """All the repeats in a table; in a sweep, fewer for the big sizes."""
        if not self.sweep or size < 2**22:
            return self.repeats
        return min(self.repeats, 5 if size < 2**25 else 3)


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_list(parse_size),
        default=[DEFAULT_SIZE],
        help="comma-separated array sizes in elements, K/M/G binary suffixes (default 16M)",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument(
        "--threads",
        type=parse_list(int),
        default=[1, 2],
        help="comma-separated thread counts; 1 is always measured (default 1,2)",
    )
    parser.add_argument("--repeats", type=int, default=11, help="timed runs in each process")
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds of every method in turn, median reported (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--methods",
        type=parse_list(str.lower),
        default=[],
        help="comma-separated substrings of 'op/method' to run, e.g. 'dynamic' or 'linquant,torch'",
    )
    parser.add_argument("--sweep", action="store_true", help="sizes 1K to 64M in powers of 4")
    parser.add_argument("--json", type=Path, help="write all timings to this JSON file")
    parser.add_argument("--plot", type=Path, help="plot throughput against size to this PNG")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, 3 repeats, 1 round (smoke test)"
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # JSON: measure_one's arguments
    args = parser.parse_args(argv)

    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if any(n < 1 for n in args.threads):
        parser.error("--threads must be positive")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib: pip install matplotlib")
    sizes = list(SWEEP_SIZES) if args.sweep else args.sizes
    repeats, rounds, batch = args.repeats, 3, 2e-3
    if args.quick:
        sizes = list(QUICK_SIZES) if args.sweep else [QUICK_SIZES[-1]]
        repeats, rounds, batch = min(repeats, 3), 1, 2e-4
    return Options(
        sizes=sizes,
        dtype=args.dtype,
        threads=sorted({1, *args.threads}),
        repeats=repeats,
        rounds=args.rounds or rounds,
        batch=batch,
        sweep=args.sweep,
        methods=args.methods,
        json=args.json,
        plot=args.plot,
        measure=args.measure,
    )


# --- environment -------------------------------------------------------------------------


def cpu_info() -> tuple[str, list[str]]:
    """CPU model and its SIMD features of interest, from /proc/cpuinfo where there is one."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware") and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    return model, [flag for flag in CPU_FLAGS if flag in flags]


def environment(packages: dict[str, Any]) -> dict[str, Any]:
    model, features = cpu_info()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    versions = {name: getattr(module, "__version__", "?") for name, module in packages.items()}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "linquant": lq.__version__,
        "linquant_backend": lq.get_backend(),
        "linquant_cpu_level": lq.get_cpu_level(),
        "linquant_default_threads": lq.get_num_threads(),
        "packages": {name: versions.get(name) for name in OPTIONAL_PACKAGES},
        "cpu_model": model,
        "cpu_features": features,
        "cpu_count": os.cpu_count(),
        "cpus_available": affinity,
        "seed": SEED,
    }


def format_header(env: dict[str, Any], options: Options) -> str:
    packages = env["packages"]
    installed = ", ".join(f"{n} {v}" for n, v in packages.items() if v) or "none"
    missing = ", ".join(n for n, v in packages.items() if not v)
    lines = [
        f"Python {env['python']} on {env['platform']}",
        f"NumPy {env['numpy']}; linquant {env['linquant']} (backend {env['linquant_backend']}, "
        f"cpu level {env['linquant_cpu_level']}, "
        f"default threads {env['linquant_default_threads']})",
        f"optional: {installed}" + (f"; not installed: {missing}" if missing else ""),
        f"CPU: {env['cpu_model']}; {env['cpu_count']} CPUs "
        f"({env['cpus_available']} available); features: {' '.join(env['cpu_features']) or '?'}",
        f"input: {options.dtype} uniform in [{LOW:g}, {HIGH:g}], seed {SEED}; "
        "each method in a process of its own; ratio = method time / linquant time (>1: "
        "linquant faster); single-threaded methods appear under 1 thread",
    ]
    return "\n".join(lines)


# --- reporting ---------------------------------------------------------------------------


def reference_name(op: str) -> str:
    return "linquant minmax" if op == "floor" else "linquant"


def format_table(op: str, rows: list[Row], threads: list[int]) -> str:
    reference = next((r for r in rows if r.method.name == reference_name(op)), None)
    width = max(len(op), *(len(r.method.name) for r in rows))
    header = f"{op:<{width}}" + "".join(f"  {f'{n} thr ms':>10} {'ratio':>6}" for n in threads)
    lines = [header + "  check", "-" * (len(header) + 7)]
    for row in rows:
        cells = []
        for n in threads:
            seconds = row.seconds.get(n)
            base = reference.seconds.get(n) if reference else None
            time_text = f"{seconds * 1e3:10.3f}" if seconds is not None else f"{'-':>10}"
            ratio_text = f"{seconds / base:6.2f}" if seconds and base else f"{'-':>6}"
            cells.append(f"  {time_text} {ratio_text}")
        lines.append(f"{row.method.name:<{width}}" + "".join(cells) + "  " + row.summary())
    return "\n".join(lines)


def goals_line(rows: dict[str, list[Row]]) -> str:
    def one_thread(op: str, name: str) -> float | None:
        row = next((r for r in rows.get(op, []) if r.method.name == name), None)
        return row.seconds.get(1) if row else None

    dynamic, floor = one_thread("dynamic", "linquant"), one_thread("floor", "numpy max+min")
    if dynamic is None or floor is None:
        return "goals: needs dynamic/linquant and floor/numpy max+min"
    return (
        f"goals: dynamic linquant 1 thread / floor (x.max(); x.min()) = {dynamic / floor:.2f} "
        f"({dynamic * 1e3:.3f} ms / {floor * 1e3:.3f} ms)"
    )


def records(size: int, repeats: int, rows: dict[str, list[Row]]) -> list[dict[str, Any]]:
    out = []
    for op, op_rows in rows.items():
        reference = next((r for r in op_rows if r.method.name == reference_name(op)), None)
        for row in op_rows:
            for n, seconds in row.seconds.items():
                base = reference.seconds.get(n) if reference else None
                out.append(
                    {
                        "op": op,
                        "method": row.method.name,
                        "size": size,
                        "threads": n,
                        "threaded": row.method.threaded,
                        "repeats": repeats,
                        "round_seconds": row.rounds[n],
                        "seconds": seconds,
                        "elements_per_s": size / seconds,
                        "ratio_to_linquant": seconds / base if base else None,
                        "check": row.checks.get(n),
                    }
                )
    return out


def plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = [op for op in OPS if any(r["op"] == op for r in results)]
    columns = min(2, len(ops))
    rows = -(-len(ops) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.5 * rows), squeeze=False)
    styles = ["-", "--", ":", "-."]  # by thread count; colours by method, the same in every op
    colors = {name: f"C{i}" for i, name in enumerate(dict.fromkeys(r["method"] for r in results))}
    for ax, op in zip(axes.flat, ops, strict=False):
        names = list(dict.fromkeys(r["method"] for r in results if r["op"] == op))
        threads = sorted({r["threads"] for r in results if r["op"] == op})
        for name in names:
            for style, n in enumerate(threads):
                points = sorted(
                    (r["size"], r["elements_per_s"] / 1e9)
                    for r in results
                    if (r["op"], r["method"], r["threads"]) == (op, name, n)
                )
                if points:
                    label = name if n == 1 else f"{name}, {n} threads"
                    sizes, throughput = zip(*points, strict=True)
                    ax.plot(
                        sizes,
                        throughput,
                        styles[style % len(styles)],
                        color=colors[name],
                        marker="o",
                        markersize=3,
                        label=label,
                    )
        ax.set(xscale="log", title=op, xlabel="array size (elements)", ylabel="G elements/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.flat[len(ops) :]:
        ax.set_visible(False)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


# --- main --------------------------------------------------------------------------------


def load_optional() -> dict[str, Any]:
    packages = {}
    for name in OPTIONAL_PACKAGES:
        try:
            packages[name] = importlib.import_module(name)
        except ImportError:
            continue
    return packages


def select(packages: dict[str, Any], patterns: list[str]) -> dict[str, list[Method]]:
    chosen: dict[str, list[Method]] = {op: [] for op in OPS}
    for m in REGISTRY:
        if all(name in packages for name in m.requires) and (
            not patterns or any(p in m.key.lower() for p in patterns)
        ):
            chosen[m.op].append(m)
    return {op: methods for op, methods in chosen.items() if methods}


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    # torch warns that its quantized tensors are deprecated: it is measured as it is today
    warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
    if options.measure:
        print(json.dumps(measure_one(**json.loads(options.measure))))
        return 0
    packages = load_optional()
    methods = select(packages, options.methods)
    if not methods:
        print(f"no method matches {options.methods}", file=sys.stderr)
        return 2
    env = environment(packages)
    print(format_header(env, options), flush=True)

    results: list[dict[str, Any]] = []
    for size in options.sizes:
        rows = run_size(size, methods, options)
        repeats = options.repeats_for(size)
        print(
            f"\n== {size:,} {options.dtype} values ({size / 2**20:g} Mi), median over "
            f"{options.rounds} rounds of the median of {repeats} runs"
        )
        for op, op_rows in rows.items():
            print("\n" + format_table(op, op_rows, options.threads))
        print("\n" + goals_line(rows), flush=True)
        results += records(size, repeats, rows)

    config = {
        "dtype": options.dtype,
        "sizes": options.sizes,
        "threads": options.threads,
        "repeats": options.repeats,
        "rounds": options.rounds,
    }
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        document = {"environment": env, "config": config, "results": results}
        options.json.write_text(json.dumps(document, indent=1) + "\n")
        print(f"\nwrote {options.json}")
    if options.plot:
        title = (
            f"linquant {env['linquant']} ({env['linquant_cpu_level']}), {options.dtype}; "
            f"{env['cpu_model']}, {env['cpu_count']} CPUs"
        )
        plot(results, options.plot, title)
        print(f"wrote {options.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

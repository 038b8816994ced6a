"""Command line: ``linquant quantize|dequantize|info|demo|bench`` (also ``python -m linquant``).

Exit status: 0 on success, 2 on a usage error (bad options or option values), 1 on a data
error (a missing or bad file, NaN under ``--nan raise``, non-float input, an output that is
the input or exists without ``--force``...), reported on one line ``linquant: error: ...``
without a traceback; 130 on Ctrl-C, 128 + the signal's number on SIGTERM or SIGHUP, after the
temporary output file is removed.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import stat
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

import numpy as np

from . import _checks, _rounding
from ._calibrate import Observer
from ._chunked import CHUNK_BYTES, compare_file, dequantize_file, quantize_file
from ._io import Reader
from ._onnx import from_onnx
from ._output import existing, remove_temporaries
from ._quantized import QuantizedArray
from ._safetensors import load_safetensors, quantize_safetensors
from ._version import __version__

QUANTIZE_SETTINGS = ("bits", "scheme", "axis", "block_size", "nan", "rounding", "seed")


def _bits(text: str) -> int:
    try:
        return _checks.bits(int(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _calibration(text: str) -> tuple[str, float | None]:
    """``METHOD`` or ``percentile:P`` (SPEC §10)."""
    method, _, percentile = text.partition(":")
    if method not in Observer.METHODS or (percentile and method != "percentile"):
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(Observer.METHODS)}, or percentile:P, got {text!r}"
        )
    try:
        return method, float(percentile) if percentile else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"percentile:P needs a number P, got {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < _rounding.SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be an int from 0 to 2**64 - 1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linquant", description="Fast, exact linear quantization of NumPy arrays."
    )
    parser.add_argument("--version", action="version", version=f"linquant {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="print nothing, show no progress")
    common.add_argument(
        "-f", "--force", action="store_true", help="overwrite the output file if it exists"
    )
    common.add_argument(
        "--chunk-bytes",
        type=_positive,
        default=CHUNK_BYTES,
        help=f"bytes of floats processed at a time (default {CHUNK_BYTES}): bounds the memory",
    )

    quantize = commands.add_parser(
        "quantize",
        parents=[common],
        help="quantize a .npy file into a linquant .npz file, or the tensors of a .safetensors "
        "file into a .safetensors file",
    )
    quantize.add_argument("input", metavar="IN.npy|IN.safetensors")
    quantize.add_argument("-o", "--output", metavar="OUT.npz|OUT.safetensors", required=True)
    quantize.add_argument("--bits", type=_bits, default=8, help="2 to 16 (default 8)")
    quantize.add_argument("--scheme", choices=_checks.SCHEMES, default="asymmetric")
    quantize.add_argument("--axis", type=int, help="a scale and zero point per channel along it")
    quantize.add_argument(
        "--block-size", type=_positive, help="with --axis: per block of this many elements"
    )
    quantize.add_argument(
        "--nan", choices=_checks.NAN_POLICIES, default="raise", help="zero: quantize NaN as 0.0"
    )
    quantize.add_argument(
        "--rounding",
        choices=_rounding.MODES,
        default=_rounding.DEFAULT,
        help=f"how x / scale rounds to an integer (default {_rounding.DEFAULT})",
    )
    quantize.add_argument(
        "--seed", type=_seed, help="with --rounding stochastic (required there): 0 to 2**64 - 1"
    )
    quantize.add_argument(
        "--calibrate",
        type=_calibration,
        metavar="METHOD[:P]",
        help="clip to a calibrated range (per tensor, or per channel or block with --axis): "
        "minmax (default), percentile[:P] (P default 99.99), mse or entropy (SPEC §10)",
    )
    for option, default in (("--include", "every float tensor"), ("--exclude", "none")):
        quantize.add_argument(
            option,
            action="append",
            metavar="PATTERN",
            help=f"safetensors input: the float tensors to quantize, by name (fnmatch; "
            f"repeatable; default {default})",
        )
    quantize.set_defaults(usage_error=quantize.error)

    dequantize = commands.add_parser(
        "dequantize", parents=[common], help="dequantize a linquant .npz file into a .npy file"
    )
    dequantize.add_argument("input", metavar="IN.npz")
    dequantize.add_argument("-o", "--output", metavar="OUT.npy", required=True)
    dequantize.add_argument(
        "--dtype",
        choices=[d.name for d in _checks.OUTPUT_FLOATS],
        help="default: float64 if the quantized array was float64, else float32",
    )

    info = commands.add_parser(
        "info",
        help="print the parameters of a linquant .npz file, or the tensors of a .safetensors "
        "file or an ONNX model",
    )
    info.add_argument("input", metavar="FILE.npz|FILE.safetensors|FILE.onnx")
    info.add_argument(
        "--compare", metavar="ORIGINAL.npy", help="error metrics against the original array"
    )
    info.set_defaults(usage_error=info.error)

    demo = commands.add_parser(
        "demo", help="quantize the notebook's data and a generated array; print a table"
    )
    demo.add_argument("--size", type=int, default=1_000_000, help="generated array size")
    demo.add_argument("--repeat", type=int, default=5, help="timed runs per backend")

    bench = commands.add_parser(
        "bench", help="time linquant against NumPy (and ONNX Runtime, PyTorch if installed)"
    )
    bench.add_argument("--size", type=_positive, default=4 * 2**20, help="float32 elements")
    bench.add_argument("--repeat", type=_positive, default=7, help="timed runs per method")
    return parser


class _Progress:
    """A carriage-return progress bar on stderr, drawn only when stderr is a terminal."""

    WIDTH = 30

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.drawn: tuple[str, int] | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        if not self.enabled or self.drawn == (stage, percent):
            return
        self.drawn = (stage, percent)
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "." * (self.WIDTH - filled)
        sys.stderr.write(f"\r{stage:<10} [{bar}] {percent:3d}%")
        sys.stderr.flush()

    def close(self) -> None:
        if self.drawn is not None:
            sys.stderr.write("\n")


def _size(nbytes: float) -> str:
    if nbytes < 1024:
        return f"{nbytes:.0f} B"
    for unit in ("KiB", "MiB"):
        nbytes /= 1024
        if nbytes < 1024:
            return f"{nbytes:.1f} {unit}"
    return f"{nbytes / 1024:.1f} GiB"


def _summary(values: np.ndarray) -> str:
    if values.ndim == 0:
        return f"{values[()]!r}".removeprefix("np.")
    if values.size == 0:
        return f"{values.shape} {values.dtype} (empty)"
    return (
        f"{values.shape} {values.dtype}, min {values.min()}, max {values.max()}, "
        f"mean {values.astype(np.float64).mean():.6g}"
    )


def _data_error(message: str) -> int:
    """Print ``message`` on one line, ``linquant: error: ...``; the exit status of a data error.

    Characters that are not printable (a newline or a terminal escape, from a file name or the
    name of a member of an archive) are escaped as ``repr`` escapes them.
    """
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    print(f"linquant: error: {line}", file=sys.stderr)
    return 1


def _check_output(source: str, target: str, force: bool) -> None:
    """ValueError if writing ``target`` would lose data: it is ``source`` (the same file,
    through a symlink or a hard link), or an existing regular file without ``force``. A FIFO or
    device (``/dev/null``) takes the output without loss; OSError for a missing ``source``."""
    output = existing(target)
    if output is None:
        return
    if os.path.samestat(os.stat(source), output):
        raise ValueError(f"{target} is the input file {source}: write the output elsewhere")
    if stat.S_ISREG(output.st_mode) and not force:
        raise ValueError(f"{target} exists: pass --force to overwrite it")


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM or SIGHUP: remove the temporary output file and end the process at once with
    128 + signum. Raising instead, where the program happens to be, could leave a library's
    state (a zip archive, a thread pool) half-changed and its error in place of the signal's."""
    remove_temporaries()
    os._exit(128 + signum)


def _quantize(args: argparse.Namespace) -> None:
    observer = None
    if args.calibrate is not None:
        method, percentile = args.calibrate
        options = {} if percentile is None else {"percentile": percentile}
        observer = Observer(
            method,
            axis=args.axis,
            block_size=args.block_size,
            bits=args.bits,
            scheme=args.scheme,
            **options,
        )
    # what both inputs take: lq.quantize's settings
    settings = {name: getattr(args, name) for name in QUANTIZE_SETTINGS}
    start = time.perf_counter()
    if args.input.endswith(".safetensors"):
        _quantize_safetensors(args, {**settings, "calibration": observer}, start)
        return
    if args.include or args.exclude:
        args.usage_error("--include and --exclude take a .safetensors input")
    progress = _Progress(not args.quiet)
    try:
        header = quantize_file(
            args.input,
            args.output,
            **settings,
            chunk_bytes=args.chunk_bytes,
            progress=progress,
            calibration=observer,
        )
    finally:
        progress.close()
    if not args.quiet:
        size = math.prod(header.shape) * header.source_dtype.itemsize
        print(
            f"{args.input} -> {args.output}: {header.shape} {header.source_dtype} to "
            f"{header.bits}-bit {header.scheme} {header.format.name}, {_size(size)} -> "
            f"{_size(os.path.getsize(args.output))} in {time.perf_counter() - start:.2f} s"
        )


def _quantize_safetensors(args: argparse.Namespace, settings: dict[str, Any], start: float) -> None:
    """``quantize`` of a safetensors file: its float tensors one at a time (SPEC §11)."""
    include, exclude = tuple(args.include or ["*"]), tuple(args.exclude or [])
    quantized = quantize_safetensors(args.input, args.output, include, exclude, **settings)
    if not args.quiet:
        print(
            f"{args.input} -> {args.output}: {len(quantized)} tensors to {args.bits}-bit "
            f"{args.scheme}, {_size(os.path.getsize(args.input))} -> "
            f"{_size(os.path.getsize(args.output))} in {time.perf_counter() - start:.2f} s"
        )


def _dequantize(args: argparse.Namespace) -> None:
    progress = _Progress(not args.quiet)
    try:
        header = dequantize_file(
            args.input, args.output, args.dtype, chunk_bytes=args.chunk_bytes, progress=progress
        )
    finally:
        progress.close()
    if not args.quiet:
        print(f"{args.input} -> {args.output}: {header.shape}")


def _info_tensors(args: argparse.Namespace) -> None:
    """``info`` of a safetensors file or an ONNX model: each tensor, quantized ones with
    their settings (read and checked; a safetensors file's bytes stay in the file)."""
    if args.compare is not None:
        args.usage_error("--compare takes a linquant .npz file")
    if args.input.endswith(".onnx"):
        tensors: dict[str, Any] = dict(from_onnx(args.input))
    else:
        tensors = dict(load_safetensors(args.input, mmap=True))
    lines = [f"file:        {args.input} ({_size(os.path.getsize(args.input))})"]
    for name, value in tensors.items():
        if isinstance(value, QuantizedArray):
            groups = "" if value.axis is None else f", axis {value.axis}"
            if value.block_size is not None:
                groups += f", block size {value.block_size}"
            lines.append(
                f"  {name}: {value.shape} {value.source_dtype} as {value.format.name} "
                f"{value.bits}-bit {value.scheme}{groups}"
            )
        else:
            lines.append(f"  {name}: {value.shape} {value.dtype}")
    print("\n".join(lines))


def _info(args: argparse.Namespace) -> None:
    if args.input.endswith((".safetensors", ".onnx")):
        _info_tensors(args)
        return
    with Reader(args.input) as reader:  # the header, checked; no code is read
        header = reader.header
    groups = "per tensor" if header.axis is None else f"axis {header.axis}"
    if header.block_size is not None:
        groups += f", block size {header.block_size}"
    seed = header.seed
    rounding = header.rounding if seed is None else f"{header.rounding}, seed {seed}"
    file_size = os.path.getsize(args.input)
    source_size = math.prod(header.shape) * header.source_dtype.itemsize
    code_size = header.format.stored_bytes(header.shape)
    lines = [
        f"file:        {args.input} ({_size(file_size)})",
        f"shape:       {header.shape}",
        f"source:      {header.source_dtype} ({_size(source_size)})",
        f"codes:       {header.format.name}{' packed' if header.packed else ''}, "
        f"{header.bits}-bit {header.scheme} ({_size(code_size)})",
        f"grouping:    {groups}",
        f"rounding:    {rounding}",
        f"scale:       {_summary(np.asarray(header.scale))}",
        f"zero point:  {_summary(np.asarray(header.zero_point))}",
    ]
    if args.compare is not None:
        metrics = compare_file(args.input, args.compare)
        dtype = np.float64 if header.source_dtype == np.float64 else np.float32
        lines.append(f"compared with {args.compare} (dequantized to {np.dtype(dtype).name}):")
        lines += [f"  {name:<14} {value:.6g}" for name, value in metrics.items()]
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (argparse exits with 2 on usage errors).

    Call it from the main thread: it handles SIGTERM and SIGHUP while it runs.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "quantize":
        if args.block_size is not None and args.axis is None:
            args.usage_error("--block-size needs --axis")
        if args.rounding == "stochastic" and args.seed is None:
            args.usage_error("--rounding stochastic needs --seed")
        if args.rounding != "stochastic" and args.seed is not None:
            args.usage_error("--seed applies to --rounding stochastic only")
    signums = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, _exit_on_signal) for signum in signums}
    try:
        if args.command in ("quantize", "dequantize"):
            _check_output(args.input, args.output, args.force)
        if args.command == "quantize":
            _quantize(args)
        elif args.command == "dequantize":
            _dequantize(args)
        elif args.command == "info":
            _info(args)
        elif args.command == "demo":
            from ._demo import run

            print(run(size=args.size, repeat=args.repeat))
        else:
            from ._bench import run as bench

            print(bench(size=args.size, repeat=args.repeat))
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        return _data_error(f"{where}{error.strerror or error}")
    except (ValueError, ImportError) as error:  # ImportError: an optional extra is missing
        return _data_error(str(error))
    except KeyboardInterrupt:
        print("linquant: interrupted", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0

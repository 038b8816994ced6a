"""The command line, driven as users run it (a subprocess), and its chunked engine.

Chunked quantization must equal the in-memory call bit for bit, whatever the chunk size,
layout, grouping, scheme or rounding (stochastic rounding included: each chunk rounds by its
elements' indices in the array, in C order whatever the file's order); bad input exits with
status 1 (data) or 2 (usage) and one line ``linquant: error: ...`` on stderr, never a
traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import linquant as lq
from linquant import _chunked, _chunks, _output
from linquant._groups import grouping
from linquant._safetensors import quantize_safetensors

RNG = np.random.default_rng(3)


def cli(cwd: Path, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    """``python -m linquant ARGS`` in ``cwd``; its exit status must be ``status``."""
    result = subprocess.run(
        [sys.executable, "-m", "linquant", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == status, result.stdout + result.stderr
    return result


def fails(cwd: Path, *args: str, status: int = 1) -> str:
    """The one-line error of a run that must exit with ``status``; nothing is written."""
    before = sorted(os.listdir(cwd))
    result = cli(cwd, *args, status=status)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert re.match(r"linquant( \w+)?: error: ", lines[-1])
    if status == 1:
        assert len(lines) == 1 and result.stdout == ""
    assert sorted(os.listdir(cwd)) == before
    return lines[-1]


def assert_same(a: lq.QuantizedArray, b: lq.QuantizedArray) -> None:
    """The same codes (packed or not) and fields."""
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.codes(), b.codes())
    for name in ("scale", "zero_point"):
        left, right = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert left.dtype == right.dtype and left.tobytes() == right.tobytes(), name
    for name in ("bits", "scheme", "axis", "block_size", "source_dtype", "rounding", "seed"):
        assert getattr(a, name) == getattr(b, name), name


# --- the chunked engine, in process ----------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axis", "block_size"),
    [((37,), 0, 5), ((4, 6, 5), 0, 3), ((4, 6, 5), 1, 4), ((4, 6, 5), 2, None), ((7, 1, 9), 1, 1)],
)
@pytest.mark.parametrize("max_elements", [1, 4, 7, 30, 10**6])
def test_chunks_cover_the_array_in_order(
    shape: tuple[int, ...], axis: int, block_size: int | None, max_elements: int
) -> None:
    groups = grouping(shape, axis, block_size)
    seen = np.zeros(shape, np.int64)
    expected_start = 0
    for chunk in _chunks.chunks(shape, groups, max_elements):
        assert chunk.start == expected_start
        view = seen[chunk.slices]
        assert view.shape == chunk.shape
        flat = np.arange(math.prod(shape)).reshape(shape)[chunk.slices]
        assert (flat.reshape(-1) == np.arange(chunk.start, chunk.start + flat.size)).all()
        view += 1
        expected_start += chunk.size
        one_block = groups.block * math.prod(shape[axis + 1 :])  # the least a chunk can hold
        assert chunk.size <= max(max_elements, one_block)
        first = chunk.slices[axis].indices(shape[axis])[0]
        assert first % groups.block == 0 or chunk.shape[axis] == 1  # blocks are not cut
    assert (seen == 1).all()


CASES = [
    ((50, 9), "C", None, None),
    ((50, 9), "F", None, None),
    ((12, 7, 5), "C", 0, None),
    ((12, 7, 5), "F", 2, None),
    ((12, 7, 5), "C", 1, 3),
    ((12, 7, 5), "F", 0, 5),
    ((12, 7, 5), "F", 1, 2),
    ((300,), "C", 0, 16),
    ((), "C", None, None),
    ((0, 4), "C", 1, 2),
]


@pytest.mark.parametrize(("shape", "order", "axis", "block_size"), CASES)
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
@pytest.mark.parametrize("chunk_bytes", [1, 64, 1000])
def test_chunked_quantize_is_the_in_memory_result(
    backend: str,
    tmp_path: Path,
    shape: tuple[int, ...],
    order: str,
    axis: int | None,
    block_size: int | None,
    scheme: str,
    chunk_bytes: int,
) -> None:
    x = np.asarray(RNG.normal(2, 9, shape).astype(np.float32), order=order)
    np.save(tmp_path / "x.npy", x)
    _chunked.quantize_file(
        tmp_path / "x.npy", tmp_path / "q.npz", 7, scheme, axis, block_size, chunk_bytes=chunk_bytes
    )
    expected = lq.quantize(x, 7, scheme, axis=axis, block_size=block_size)
    back = lq.load(tmp_path / "q.npz")
    assert_same(back, expected)
    _chunked.dequantize_file(tmp_path / "q.npz", tmp_path / "y.npy", chunk_bytes=chunk_bytes)
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, expected.dequantize())


@pytest.mark.parametrize(("shape", "order", "axis", "block_size"), CASES)
@pytest.mark.parametrize(("rounding", "seed"), [("half_up", None), ("stochastic", 2**64 - 1)])
@pytest.mark.parametrize("chunk_bytes", [1, 64])
def test_chunked_rounding_is_the_in_memory_result(
    backend: str,
    tmp_path: Path,
    shape: tuple[int, ...],
    order: str,
    axis: int | None,
    block_size: int | None,
    rounding: str,
    seed: int | None,
    chunk_bytes: int,
) -> None:
    """Chunks of one element and of a few: stochastic codes of a chunk depend on where its
    elements lie in the array (a Fortran-ordered file's chunks are boxes of its transpose)."""
    x = np.asarray(RNG.normal(2, 9, shape).astype(np.float32), order=order)
    np.save(tmp_path / "x.npy", x)
    _chunked.quantize_file(
        tmp_path / "x.npy", tmp_path / "q.npz", 5, "symmetric", axis, block_size,
        rounding=rounding, seed=seed, chunk_bytes=chunk_bytes,
    )  # fmt: skip
    expected = lq.quantize(
        x, 5, "symmetric", axis=axis, block_size=block_size, rounding=rounding, seed=seed
    )
    assert_same(lq.load(tmp_path / "q.npz"), expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, ">f4", "<f8"])
def test_chunked_source_dtypes(backend: str, tmp_path: Path, dtype: str) -> None:
    x = RNG.normal(0, 3, (40, 6)).astype(dtype)
    x[3, 2] = 0.0  # with -0.0 below: equal zeros in different chunks
    x[30, 1] = -0.0
    np.save(tmp_path / "x.npy", x)
    _chunked.quantize_file(tmp_path / "x.npy", tmp_path / "q.npz", 12, chunk_bytes=40)
    assert_same(lq.load(tmp_path / "q.npz"), lq.quantize(x, 12))
    _chunked.dequantize_file(tmp_path / "q.npz", tmp_path / "y.npy", chunk_bytes=40)
    wide = np.dtype(dtype).newbyteorder("=") == np.float64
    assert np.load(tmp_path / "y.npy").dtype == (np.float64 if wide else np.float32)


def test_chunked_nan_zero_and_the_first_nan_of_a_fortran_array(tmp_path: Path) -> None:
    x = np.asfortranarray(RNG.normal(size=(6, 8)).astype(np.float32))
    x[4, 1] = x[1, 6] = x[5, 0] = np.nan  # first in C order (1, 6); in memory order (5, 0)
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match=r"3 NaN values, the first at index \(1, 6\)") as info:
        _chunked.quantize_file(tmp_path / "x.npy", tmp_path / "q.npz", chunk_bytes=8)
    with pytest.raises(ValueError, match=r"the first at index \(1, 6\)") as in_memory:
        lq.quantize(x)
    assert str(in_memory.value).split(";")[0] in str(info.value)
    assert not (tmp_path / "q.npz").exists()
    _chunked.quantize_file(tmp_path / "x.npy", tmp_path / "q.npz", nan="zero", chunk_bytes=8)
    assert_same(lq.load(tmp_path / "q.npz"), lq.quantize(x, nan="zero"))


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path: Path) -> np.ndarray:
    x = RNG.normal(1, 5, (64, 24)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return x


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--bits", "4", "--scheme", "symmetric"],
        ["--axis", "0", "--bits", "16"],
        ["--axis", "1", "--block-size", "5", "--scheme", "symmetric"],
        ["--axis", "-2", "--block-size", "7"],
        ["--rounding", "trunc", "--axis", "1"],
        ["--rounding", "stochastic", "--seed", "0", "--bits", "3"],
        ["--rounding", "stochastic", "--seed", "18446744073709551615", "--axis", "0"],
        ["--bits", "1", "--scheme", "symmetric", "--axis", "1", "--block-size", "5"],
        ["--bits", "2", "--axis", "-1", "--block-size", "3", "--chunk-bytes", "40"],
    ],
)
def test_quantize_and_dequantize_round_trip(
    tmp_path: Path, data: np.ndarray, options: list[str]
) -> None:
    result = cli(tmp_path, "quantize", "x.npy", "-o", "q.npz", "--chunk-bytes", "256", *options)
    assert "x.npy -> q.npz" in result.stdout and result.stderr == ""  # no progress when piped
    settings = dict(zip(options[::2], options[1::2], strict=True))
    axis = settings.get("--axis")
    block_size = settings.get("--block-size")
    seed = settings.get("--seed")
    expected = lq.quantize(
        data,
        int(settings.get("--bits", 8)),
        settings.get("--scheme", "asymmetric"),
        axis=None if axis is None else int(axis),
        block_size=None if block_size is None else int(block_size),
        rounding=settings.get("--rounding", "half_even"),
        seed=None if seed is None else int(seed),
    )
    assert_same(lq.load(tmp_path / "q.npz"), expected)
    cli(tmp_path, "dequantize", "q.npz", "-o", "y.npy", "--dtype", "float64", "--quiet")
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected.dequantize("float64"))


def test_console_script_and_quiet(tmp_path: Path, data: np.ndarray) -> None:
    script = shutil.which("linquant", path=str(Path(sys.executable).parent))
    assert script is not None, "the linquant console script is not installed"
    result = subprocess.run(
        [script, "quantize", "x.npy", "-o", "q.npz", "--quiet", "--nan", "zero"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == result.stderr == ""
    assert_same(lq.load(tmp_path / "q.npz"), lq.quantize(data))


def test_a_header_numpy_reads_by_its_fallback_parser_prints_nothing(tmp_path: Path) -> None:
    # A header that ends in a line break and an indent: NumPy reads it with the parser
    # it keeps for Python 2 files and warns that it did. The file is read as np.load reads it;
    # the command prints nothing but its own lines (here none: --quiet).
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 4), }".ljust(115) + "\n  "
    (tmp_path / "x.npy").write_bytes(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + x.tobytes()
    )
    with pytest.warns(UserWarning, match="additional header parsing"):
        np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), x)
    result = cli(tmp_path, "quantize", "x.npy", "-o", "q.npz", "--quiet")
    assert result.stdout == result.stderr == ""
    assert_same(lq.load(tmp_path / "q.npz"), lq.quantize(x))


def test_info(tmp_path: Path, data: np.ndarray) -> None:
    cli(tmp_path, "quantize", "x.npy", "-o", "q.npz", "--axis", "1", "--block-size", "8")
    qa = lq.load(tmp_path / "q.npz")
    out = cli(tmp_path, "info", "q.npz").stdout
    assert "shape:       (64, 24)" in out and "source:      float32" in out
    assert "uint8, 8-bit asymmetric" in out and "axis 1, block size 8" in out
    assert f"(64, 3) float32, min {qa.scale.min()}, max {qa.scale.max()}" in out
    assert "mse" not in out
    out = cli(tmp_path, "info", "q.npz", "--compare", "x.npy").stdout
    for name, value in lq.error_metrics(data, qa.dequantize()).items():
        assert f"{name:<14} {value:.6g}" in out
    cli(tmp_path, "quantize", "x.npy", "-o", "t.npz", "--bits", "3")
    tensor = lq.load(tmp_path / "t.npz")
    out = cli(tmp_path, "info", "t.npz").stdout
    assert f"scale:       {tensor.scale!r}".replace("np.", "") in out and "per tensor" in out
    assert "rounding:    half_even\n" in out
    assert "codes:       uint4 packed, 3-bit asymmetric (768 B)" in out  # 64 rows of 12 bytes


def test_a_fortran_ordered_file_with_stochastic_rounding(tmp_path: Path) -> None:
    """Small chunks of the file's memory order; codes and info as of the in-memory call."""
    x = np.asfortranarray(RNG.normal(0, 4, (9, 5, 6)).astype(np.float64))
    np.save(tmp_path / "f.npy", x)
    options = ["--axis", "2", "--block-size", "2", "--rounding", "stochastic", "--seed", "77"]
    cli(tmp_path, "quantize", "f.npy", "-o", "q.npz", "--chunk-bytes", "100", *options)
    expected = lq.quantize(x, axis=2, block_size=2, rounding="stochastic", seed=77)
    back = lq.load(tmp_path / "q.npz")
    assert_same(back, expected)
    assert back.data.flags.f_contiguous
    assert "rounding:    stochastic, seed 77\n" in cli(tmp_path, "info", "q.npz").stdout


def test_progress_bar_on_a_terminal(tmp_path: Path, data: np.ndarray) -> None:
    pty = pytest.importorskip("pty", reason="no pseudo-terminals on this platform")
    leader, follower = pty.openpty()
    try:
        subprocess.run(
            [sys.executable, "-m", "linquant", "quantize", "x.npy", "-o", "q.npz"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=follower,
            check=True,
        )
        shown = os.read(leader, 65536).decode()
    finally:
        os.close(leader)
        os.close(follower)
    assert "\rrange" in shown and "\rquantize" in shown and "100%" in shown


def test_bench_runs_and_checks(tmp_path: Path) -> None:
    out = cli(tmp_path, "bench", "--size", "20000", "--repeat", "1").stdout
    assert "each method in a process of its own: median over 3 rounds" in out
    for op in ("dynamic", "quantize", "dequantize"):
        assert any(line.startswith(op) for line in out.splitlines())
    names = ["linquant", "numpy", "onnxruntime", "torch"]
    rows = [row for row in map(str.split, out.splitlines()) if row[:1] and row[0] in names]
    rows = rows[1:]  # the header line names linquant too
    left_out = sum(name in out.splitlines()[2] for name in ("onnxruntime", "torch"))
    assert len(rows) == 3 * (4 - left_out)
    # PyTorch multiplies by the reciprocal of the scale: a code may differ by one
    assert all(row[-1] == "ok" for row in rows if row[0] != "torch")
    assert all(row[2] == "1.00" for row in rows if row[0] == "linquant")


BAD_DATA = [
    (["quantize", "absent.npy", "-o", "q.npz"], "absent.npy: No such file or directory"),
    (["quantize", "ints.npy", "-o", "q.npz"], "ints.npy: x must be a float16, float32 or float64"),
    (["quantize", "nan.npy", "-o", "q.npz"], r"nan.npy: x contains 1 NaN value, the first at"),
    (["quantize", "inf.npy", "-o", "q.npz"], "inf.npy: x contains infinite values"),
    (["quantize", "x.npy", "-o", "q.npz", "--axis", "2"], "x.npy: axis 2 is out of range"),
    (["quantize", "notes.txt", "-o", "q.npz"], "notes.txt: not a .npy file"),
    (["quantize", "plain.npz", "-o", "q.npz"], "plain.npz: not a .npy file"),
    (["quantize", "short.npy", "-o", "q.npz"], "short.npy: damaged .npy file"),
    (["quantize", "objects.npy", "-o", "q.npz"], "objects.npy: x must be a float16, float32"),
    (["quantize", "x.npy", "-o", "nowhere/q.npz"], "No such file or directory"),
    (["dequantize", "x.npy", "-o", "y.npy"], "x.npy: not a linquant file"),
    (["dequantize", "plain.npz", "-o", "y.npy"], "plain.npz: not a linquant file"),
    (["dequantize", "absent.npz", "-o", "y.npy"], "absent.npz: No such file or directory"),
    (["info", "plain.npz"], "plain.npz: not a linquant file"),
    (["info", "good.npz", "--compare", "ints.npy"], "ints.npy: x must be a float16, float32"),
    (["info", "good.npz", "--compare", "nan.npy"], "nan.npy has shape (3,), good.npz has"),
    (["info", "good.npz", "--compare", "notes.txt"], "notes.txt: not a .npy file"),
]


@pytest.mark.parametrize(("args", "message"), BAD_DATA)
def test_data_errors_exit_1(
    tmp_path: Path, data: np.ndarray, args: list[str], message: str
) -> None:
    np.save(tmp_path / "ints.npy", np.arange(5))
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan, 2.0]))
    np.save(tmp_path / "inf.npy", np.array([1.0, np.inf], np.float32))
    np.save(tmp_path / "objects.npy", np.array([{}, 1], dtype=object))
    (tmp_path / "notes.txt").write_text("1 2 3\n")
    np.savez(tmp_path / "plain.npz", a=data)
    (tmp_path / "short.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:-100])
    lq.save(tmp_path / "good.npz", lq.quantize(data))
    assert message in fails(tmp_path, *args)


DAMAGED_HEADERS = {
    "unclosed bracket": "{'descr': (\n",  # tokenize.TokenError
    "bad indentation": "a\n  b\n c\n",  # IndentationError
    "unhashable key": "{{}: 1}",  # TypeError
    "deep nesting": "-" * 5000 + "1",  # RecursionError
    "dimension past int64": f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({2**70},)}}",
    # np.memmap warned of an overflow (more lines on stderr) before its error
    "size past int64": f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({2**31}, {2**31})}}",
    # np.load reads it as (0, 3) float64, np.memmap as (0, 3, 8)
    "sub-array dtype": "{'descr': '8f8', 'fortran_order': False, 'shape': (0, 3), }",
}


@pytest.mark.parametrize("header", DAMAGED_HEADERS.values(), ids=DAMAGED_HEADERS.keys())
def test_a_damaged_npy_header_is_a_data_error(tmp_path: Path, header: str) -> None:
    text = header.encode("latin1")
    (tmp_path / "bad.npy").write_bytes(
        np.lib.format.MAGIC_PREFIX + b"\x01\x00" + struct.pack("<H", len(text)) + text
    )
    assert "bad.npy: damaged .npy file" in fails(tmp_path, "quantize", "bad.npy", "-o", "q.npz")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_input_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    assert fails(tmp_path, "quantize", "pipe", "-o", "q.npz") == (
        "linquant: error: pipe: not a regular file (a .npy input is memory-mapped)"
    )


def test_an_error_is_one_line_whatever_the_names_hold(tmp_path: Path) -> None:
    """A newline or a terminal escape in a file name, or in the name of a member of an
    archive, is printed escaped."""
    message = fails(tmp_path, "quantize", "a\nb\x1b[2J.npy", "-o", "q.npz")
    assert message == r"linquant: error: a\nb\x1b[2J.npy: No such file or directory"
    with zipfile.ZipFile(tmp_path / "names.npz", "w") as archive:
        archive.writestr("a\nb", b"")
    assert r"it holds a\nb" in fails(tmp_path, "info", "names.npz")


def test_a_failed_run_keeps_the_previous_output(tmp_path: Path, data: np.ndarray) -> None:
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan]))
    (tmp_path / "q.npz").write_bytes(b"previous")
    fails(tmp_path, "quantize", "nan.npy", "-o", "q.npz", "--force")
    assert (tmp_path / "q.npz").read_bytes() == b"previous"


def test_damaged_codes_fail_dequantize_without_output(tmp_path: Path, data: np.ndarray) -> None:
    lq.save(tmp_path / "q.npz", lq.quantize(data, bits=6))
    raw = bytearray((tmp_path / "q.npz").read_bytes())
    codes_at = raw.index(b"codes.npy") + len(b"codes.npy") + 200  # inside the codes' data
    raw[codes_at] ^= 0x01
    (tmp_path / "q.npz").write_bytes(bytes(raw))
    assert "q.npz: damaged member 'codes'" in fails(tmp_path, "dequantize", "q.npz", "-o", "y.npy")


USAGE = [
    ["quantize", "x.npy", "-o", "q.npz", "--block-size", "4"],
    ["quantize", "x.npy", "-o", "q.npz", "--bits", "0"],
    ["quantize", "x.npy", "-o", "q.npz", "--bits", "17"],
    ["quantize", "x.npy", "-o", "q.npz", "--bits", "eight"],
    ["quantize", "x.npy", "-o", "q.npz", "--scheme", "affine"],
    ["quantize", "x.npy", "-o", "q.npz", "--axis", "0", "--block-size", "0"],
    ["quantize", "x.npy", "-o", "q.npz", "--nan", "ignore"],
    ["quantize", "x.npy", "-o", "q.npz", "--chunk-bytes", "0"],
    ["quantize", "x.npy"],
    ["dequantize", "q.npz", "-o", "y.npy", "--dtype", "float16"],
    ["info"],
    ["frobnicate"],
]


@pytest.mark.parametrize("args", USAGE, ids=[" ".join(a[1:]) or a[0] for a in USAGE])
def test_usage_errors_exit_2(tmp_path: Path, data: np.ndarray, args: list[str]) -> None:
    fails(tmp_path, *args, status=2)


ROUNDING_USAGE = [
    (["--rounding", "stochastic"], "--rounding stochastic needs --seed"),
    (["--seed", "3"], "--seed applies to --rounding stochastic only"),
    (["--rounding", "floor", "--seed", "3"], "--seed applies to --rounding stochastic only"),
    (["--seed", "-1"], "argument --seed: must be an int from 0 to 2**64 - 1, got '-1'"),
    (["--seed", "18446744073709551616"], "argument --seed: must be an int from 0 to 2**64"),
    (["--seed", "1.5"], "argument --seed: must be an int from 0 to 2**64 - 1, got '1.5'"),
    (["--rounding", "nearest"], "argument --rounding: invalid choice: 'nearest'"),
]


@pytest.mark.parametrize(("options", "message"), ROUNDING_USAGE)
def test_rounding_usage_errors(
    tmp_path: Path, data: np.ndarray, options: list[str], message: str
) -> None:
    line = fails(tmp_path, "quantize", "x.npy", "-o", "q.npz", *options, status=2)
    assert line.startswith("linquant quantize: error: ") and message in line


@pytest.mark.skipif(sys.platform == "win32", reason="the resource module is POSIX only")
def test_memory_stays_bounded(tmp_path: Path) -> None:
    """Quantizing and dequantizing a 256 MiB file with 4 MiB chunks stays far below its size."""
    n = 64 * 2**20
    x = np.lib.format.open_memmap(tmp_path / "big.npy", "w+", np.float32, (n,))
    for start in range(0, n, 2**22):
        x[start : start + 2**22] = np.linspace(-1, 1, 2**22, dtype=np.float32)
    x.flush()
    del x
    measure = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    for args in (
        ["quantize", "big.npy", "-o", "big.npz"],
        ["dequantize", "big.npz", "-o", "back.npy"],
    ):
        command = [sys.executable, "-m", "linquant", *args, "--quiet", "--chunk-bytes", "4194304"]
        result = subprocess.run(
            [sys.executable, "-c", measure, *command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        peak = int(result.stdout) * unit
        assert peak < 4 * n // 3, f"{args[0]}: peak resident set {peak / 2**20:.0f} MiB"
    assert (tmp_path / "back.npy").stat().st_size >= 4 * n


def test_metadata_of_a_cli_file_names_the_source(tmp_path: Path, data: np.ndarray) -> None:
    cli(tmp_path, "quantize", "x.npy", "-o", "q.npz", "--bits", "9")
    with np.load(tmp_path / "q.npz", allow_pickle=False) as archive:
        meta = json.loads(str(archive["metadata"]))
    assert meta["bits"] == 9 and meta["source_dtype"] == "float32" and meta["shape"] == [64, 24]


# --- output files: a user's data is never lost -----------------------------------------------


def test_version(tmp_path: Path) -> None:
    assert cli(tmp_path, "--version").stdout == f"linquant {lq.__version__}\n"


@pytest.fixture
def quantized(tmp_path: Path, data: np.ndarray) -> lq.QuantizedArray:
    """``q.npz`` beside ``x.npy``: the quantized ``data``."""
    qa = lq.quantize(data)
    lq.save(tmp_path / "q.npz", qa)
    return qa


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("link", ["same", "symlink", "hard link"])
@pytest.mark.parametrize(("command", "source"), [("quantize", "x.npy"), ("dequantize", "q.npz")])
def test_the_output_is_never_the_input(
    tmp_path: Path,
    quantized: lq.QuantizedArray,
    command: str,
    source: str,
    link: str,
    force: list[str],
) -> None:
    output = source
    if link != "same":
        output = f"out{Path(source).suffix}"
        make = os.symlink if link == "symlink" else os.link
        make(tmp_path / source, tmp_path / output)
    before = (tmp_path / source).read_bytes()
    message = fails(tmp_path, command, source, "-o", output, *force)
    assert message == (
        f"linquant: error: {output} is the input file {source}: write the output elsewhere"
    )
    assert (tmp_path / source).read_bytes() == before


@pytest.mark.parametrize(("command", "source"), [("quantize", "x.npy"), ("dequantize", "q.npz")])
def test_an_existing_output_is_overwritten_only_with_force(
    tmp_path: Path, quantized: lq.QuantizedArray, command: str, source: str
) -> None:
    (tmp_path / "kept").write_bytes(b"previous")
    message = fails(tmp_path, command, source, "-o", "kept")
    assert message == "linquant: error: kept exists: pass --force to overwrite it"
    assert (tmp_path / "kept").read_bytes() == b"previous"
    cli(tmp_path, command, source, "-o", "kept", "--force", "--quiet")
    cli(tmp_path, command, source, "-o", "again", "--quiet")
    assert (tmp_path / "kept").read_bytes() == (tmp_path / "again").read_bytes()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and symlinks")
@pytest.mark.parametrize("existing", [True, False], ids=["existing", "dangling"])
def test_a_symlink_is_written_through_and_the_mode_kept(
    tmp_path: Path, data: np.ndarray, existing: bool
) -> None:
    (tmp_path / "store").mkdir()
    real = tmp_path / "store" / "q.npz"
    if existing:
        real.write_bytes(b"previous")
        real.chmod(0o600)
    (tmp_path / "link.npz").symlink_to(Path("store", "q.npz"))
    cli(tmp_path, "quantize", "x.npy", "-o", "link.npz", "--force", "--quiet")
    assert os.readlink(tmp_path / "link.npz") == os.path.join("store", "q.npz")
    assert sorted(os.listdir(tmp_path / "store")) == ["q.npz"]
    assert_same(lq.load(real), lq.quantize(data))
    if existing:
        assert stat.S_IMODE(real.stat().st_mode) == 0o600


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_the_owner_of_an_overwritten_file_is_kept(tmp_path: Path, data: np.ndarray) -> None:
    (tmp_path / "q.npz").write_bytes(b"previous")
    os.chown(tmp_path / "q.npz", 4321, 4322)
    (tmp_path / "q.npz").chmod(0o4640)  # set-user-id: cleared by a chown done after chmod
    cli(tmp_path, "quantize", "x.npy", "-o", "q.npz", "--force", "--quiet")
    after = (tmp_path / "q.npz").stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (4321, 4322, 0o4640)


@contextmanager
def fifo(path: Path, read: bool = True) -> Iterator[subprocess.Popen[bytes]]:
    """The FIFO ``path`` and a process that opens it: reads it to its end (its bytes on the
    process's stdout), or closes it at once (``read`` false)."""
    os.mkfifo(path)
    code = "import sys\nwith open(sys.argv[1], 'rb') as f:\n    sys.stdout.buffer.write(f.read())"
    if not read:
        code = "import sys\nopen(sys.argv[1], 'rb').close()"
    reader = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE)
    try:
        yield reader
    finally:
        reader.kill()
        reader.communicate()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("command", ["quantize", "dequantize"])
@pytest.mark.parametrize("through", ["fifo", "symlink"])
def test_a_fifo_is_written_in_place(
    tmp_path: Path, quantized: lq.QuantizedArray, command: str, through: str
) -> None:
    """A FIFO (as ``/dev/null`` or another device) takes the output without being replaced,
    with or without --force: nothing in it can be lost."""
    source = "x.npy" if command == "quantize" else "q.npz"
    with fifo(tmp_path / "pipe") as reader:
        output = "pipe"
        if through == "symlink":
            output = "link"
            (tmp_path / "link").symlink_to("pipe")
        cli(tmp_path, command, source, "-o", output, "--quiet")
        assert stat.S_ISFIFO(os.stat(tmp_path / output).st_mode)  # not replaced
        sent, _ = reader.communicate(timeout=60)
    (tmp_path / "sent").write_bytes(sent)
    if command == "quantize":
        assert_same(lq.load(tmp_path / "sent"), quantized)
    else:
        np.testing.assert_array_equal(np.load(tmp_path / "sent"), quantized.dequantize())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_write_error_names_the_output(tmp_path: Path) -> None:
    np.save(tmp_path / "big.npy", np.linspace(-1, 1, 2**20, dtype=np.float32))
    with fifo(tmp_path / "out.npz", read=False):  # closed by its reader: EPIPE
        message = fails(tmp_path, "quantize", "big.npy", "-o", "out.npz", "--quiet")
    assert message == "linquant: error: out.npz: Broken pipe"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("nowhere/q.npz", "nowhere/q.npz: No such file or directory"),
        ("folder", "folder: Is a directory"),
    ],
)
def test_errors_name_the_output_not_a_temporary_file(
    tmp_path: Path, data: np.ndarray, output: str, message: str
) -> None:
    (tmp_path / "folder").mkdir()
    assert fails(tmp_path, "quantize", "x.npy", "-o", output, "--force") == (
        f"linquant: error: {message}"
    )
    assert os.listdir(tmp_path / "folder") == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP and SIGTERM handlers are POSIX")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_removes_the_temporary_file(tmp_path: Path, signum: int) -> None:
    """Killed while writing, the CLI removes its temporary file and exits with 128 + signum."""
    np.save(tmp_path / "x.npy", np.linspace(-1, 1, 2**19, dtype=np.float32))
    command = ["quantize", "x.npy", "-o", "q.npz", "--chunk-bytes", "256"]
    run = subprocess.Popen(
        [sys.executable, "-m", "linquant", *command],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not list(tmp_path.glob(".q.npz.*.tmp")):  # written after the range pass
        assert run.poll() is None, "done before its temporary file was seen"
        time.sleep(0.001)
    run.send_signal(signum)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 128 + signum, err
    assert out == err == ""
    assert os.listdir(tmp_path) == ["x.npy"]


def test_an_interrupt_just_after_the_open_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal handled between creating the temporary file and the next line still removes it
    (the race a real SIGTERM hit at random)."""
    real_open = os.open

    def open_then_interrupt(path: str, flags: int, mode: int = 0o777) -> int:
        real_open(path, flags, mode)
        raise KeyboardInterrupt

    monkeypatch.setattr(_output.os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt), _output.replacing(tmp_path / "q.npz"):
        pass
    assert os.listdir(tmp_path) == []


def test_a_temporary_name_held_by_another_file_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_EXCL refuses a drawn name another file holds; that file is not removed."""
    monkeypatch.setattr(_output.secrets, "token_hex", lambda n: "0" * 2 * n)
    held = tmp_path / ".q.npz.000000000000.tmp"
    held.write_bytes(b"another's")
    with pytest.raises(FileExistsError), _output.replacing(tmp_path / "q.npz"):
        pass
    assert held.read_bytes() == b"another's"
    assert sorted(os.listdir(tmp_path)) == [held.name]


@pytest.mark.parametrize("calibration", ["percentile:99.9", "percentile", "mse", "entropy"])
def test_quantize_calibrates_over_the_files_chunks(tmp_path: Path, calibration: str) -> None:
    """The file's chunks fold into one observer: the range of the whole array (SPEC §10)."""
    x = np.concatenate([RNG.standard_normal(5000), [40.0, -25.0]]).astype(np.float32)
    x = x.reshape(-1, 1)[::-1].reshape(1, -1)  # the outliers in the first chunk
    np.save(tmp_path / "x.npy", x)
    args = ["x.npy", "-o", "q.npz", "--chunk-bytes", "2048", "--bits", "4", "--quiet"]
    cli(tmp_path, "quantize", *args, "--calibrate", calibration)
    method, _, percentile = calibration.partition(":")
    options = {"percentile": float(percentile)} if percentile else {}
    expected = lq.quantize(x, 4, range=lq.calibrate(x, method, bits=4, **options))
    assert_same(lq.load(tmp_path / "q.npz"), expected)


def test_quantize_calibration_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.float32([[1.0, np.inf], [0.0, 2.0]]))
    assert "must be one of" in fails(
        tmp_path, "quantize", "x.npy", "-o", "q.npz", "--calibrate", "kl", status=2
    )
    message = fails(tmp_path, "quantize", "x.npy", "-o", "q.npz", "--calibrate", "mse")
    assert "x.npy" in message and "infinity" in message
    np.save(tmp_path / "x.npy", np.float32([[1.0, 3.0], [0.0, np.nan]]))
    message = fails(tmp_path, "quantize", "x.npy", "-o", "q.npz", "--calibrate", "mse")
    assert "x.npy" in message and "NaN" in message


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(("axis", "block_size"), [("0", None), ("1", None), ("1", "7")])
def test_quantize_calibrates_each_channel_or_block_over_the_files_chunks(
    tmp_path: Path, order: str, axis: str, block_size: str | None
) -> None:
    """Chunks that split channels and blocks, of a C- or Fortran-ordered file."""
    x = np.asarray(RNG.standard_normal((40, 30)).astype(np.float32), order=order)
    x[5, 6], x[30, 20] = 40.0, -25.0
    np.save(tmp_path / "x.npy", x)
    args = ["x.npy", "-o", "q.npz", "--chunk-bytes", "256", "--bits", "4", "--quiet"]
    groups = ["--axis", axis] + (["--block-size", block_size] if block_size else [])
    cli(tmp_path, "quantize", *args, *groups, "--calibrate", "percentile:99")
    settings = {"axis": int(axis), "block_size": None if block_size is None else int(block_size)}
    observer = lq.Observer("percentile", percentile=99.0, bits=4, **settings)
    assert_same(lq.load(tmp_path / "q.npz"), lq.quantize(x, 4, calibration=observer, **settings))


@pytest.mark.parametrize("order", ["C", "F"])
def test_info_compares_chunk_by_chunk_in_bounded_memory(tmp_path: Path, order: str) -> None:
    """``linquant info --compare``'s metrics are those of the arrays in memory (sums in
    another order: equal to rounding), from chunks of the two files, never whole arrays."""
    x = np.asarray(RNG.normal(0, 3, (1024, 1024)).astype(np.float32), order=order)
    np.save(tmp_path / "x.npy", x)
    cli(tmp_path, "quantize", "x.npy", "-o", "q.npz", "--bits", "4", "--axis", "0", "--quiet")
    expected = lq.error_metrics(x, lq.load(tmp_path / "q.npz").dequantize())
    tracemalloc.start()
    try:
        metrics = _chunked.compare_file(tmp_path / "q.npz", tmp_path / "x.npy", 1 << 16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-12), name
    assert peak < 2 << 20  # a whole array in float64 would be 8 MiB


# --- safetensors files ------------------------------------------------------------------------


def checkpoint(tmp_path: Path) -> dict[str, np.ndarray]:
    """A small checkpoint, written by the safetensors package itself."""
    safetensors_numpy = pytest.importorskip(
        "safetensors.numpy", reason="the safetensors package, the oracle, has no wheel here"
    )
    tensors = {
        "layer.0.weight": RNG.standard_normal((16, 24)).astype(np.float32),
        "layer.0.bias": RNG.standard_normal(16).astype(np.float32),
        "layer.1.weight": RNG.standard_normal((8, 16)).astype(np.float16),
        "embedding.weight": RNG.standard_normal((10, 4)),
        "steps": np.arange(3, dtype=np.int64),
    }
    safetensors_numpy.save_file(tensors, str(tmp_path / "model.safetensors"), {"arch": "demo"})
    return tensors


def test_quantize_converts_a_checkpoints_matching_tensors(tmp_path: Path) -> None:
    tensors = checkpoint(tmp_path)
    options = ["--bits", "4", "--axis", "0", "--include", "*.weight", "--exclude", "emb*"]
    out = cli(tmp_path, "quantize", "model.safetensors", "-o", "q.safetensors", *options)
    assert "2 tensors to 4-bit asymmetric" in out.stdout
    loaded = lq.load_safetensors(tmp_path / "q.safetensors")
    for name in ("layer.0.weight", "layer.1.weight"):
        expected = lq.quantize(tensors[name], 4, axis=0)
        qa = loaded[name]
        assert isinstance(qa, lq.QuantizedArray) and qa.source_dtype == tensors[name].dtype
        assert np.array_equal(qa.codes(), expected.data)
        assert np.array_equal(qa.scale, expected.scale)
    for name in ("layer.0.bias", "embedding.weight", "steps"):
        assert np.array_equal(loaded[name], tensors[name])
        assert loaded[name].dtype == tensors[name].dtype  # type: ignore[union-attr]
    from safetensors import safe_open

    with safe_open(str(tmp_path / "q.safetensors"), framework="np") as theirs:
        assert theirs.metadata()["arch"] == "demo"
        members = [
            f"layer.{i}.weight.{m}" for i in (0, 1) for m in ("codes", "scale", "zero_point")
        ]
        assert sorted(theirs.keys()) == sorted(
            [*members, "layer.0.bias", "embedding.weight", "steps"]
        )


def test_quantize_calibrates_each_tensor_of_a_checkpoint(tmp_path: Path) -> None:
    tensors = checkpoint(tmp_path)
    args = ["--bits", "8", "--scheme", "symmetric", "--calibrate", "percentile:99", "--quiet"]
    cli(tmp_path, "quantize", "model.safetensors", "-o", "q.safetensors", *args)
    loaded = lq.load_safetensors(tmp_path / "q.safetensors")
    steps = loaded.pop("steps")
    assert isinstance(steps, np.ndarray) and steps.dtype == np.int64  # not a float tensor
    for name, qa in loaded.items():
        observer = lq.Observer("percentile", percentile=99.0, scheme="symmetric")
        expected = lq.quantize(tensors[name], 8, "symmetric", calibration=observer)
        assert isinstance(qa, lq.QuantizedArray) and np.array_equal(qa.data, expected.data)


def test_quantizing_a_checkpoint_fails_naming_the_tensor_and_writes_nothing(
    tmp_path: Path,
) -> None:
    checkpoint(tmp_path)
    message = fails(tmp_path, "quantize", "model.safetensors", "-o", "q.safetensors", "--axis", "1")
    assert "model.safetensors: tensor 'layer.0.bias'" in message and "axis 1" in message
    np.save(tmp_path / "x.npy", np.ones(3))
    assert "take a .safetensors input" in fails(
        tmp_path, "quantize", "x.npy", "-o", "q.npz", "--include", "*", status=2
    )


def test_a_checkpoint_is_quantized_a_tensor_at_a_time(tmp_path: Path) -> None:
    """Memory holds one tensor's codes and parameters, never every tensor's."""
    safetensors_numpy = pytest.importorskip(
        "safetensors.numpy", reason="the safetensors package, the oracle, has no wheel here"
    )
    tensors = {f"w{i}": RNG.standard_normal((256, 1024)).astype(np.float32) for i in range(16)}
    safetensors_numpy.save_file(tensors, str(tmp_path / "big.safetensors"))  # 16 MiB
    tracemalloc.start()
    try:
        quantized = quantize_safetensors(tmp_path / "big.safetensors", tmp_path / "q.safetensors")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sorted(quantized) == sorted(tensors)
    # a tensor is 1 MiB, its codes 256 KiB and the NumPy backend's temporaries a few MiB;
    # all the values would be 16 MiB
    assert peak < 6 << 20


def test_info_lists_a_checkpoints_tensors(tmp_path: Path) -> None:
    checkpoint(tmp_path)
    cli(
        tmp_path,
        "quantize",
        "model.safetensors",
        "-o",
        "q.safetensors",
        "--bits",
        "4",
        "--axis",
        "0",
    )
    out = cli(tmp_path, "info", "q.safetensors").stdout
    assert "layer.0.weight: (16, 24) float32 as uint4 4-bit asymmetric, axis 0" in out
    assert "layer.1.weight: (8, 16) float16 as uint4" in out and "steps: (3,) int64" in out
    assert "--compare takes" in fails(
        tmp_path, "info", "q.safetensors", "--compare", "x.npy", status=2
    )

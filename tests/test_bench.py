"""``linquant bench`` and the timing it shares with ``bench/bench_quantize.py``: every method
timed in a child process of its own, the methods in turns over the rounds, the median over
the rounds reported, and each result checked against linquant's in the child."""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from linquant import _bench

BENCH_QUANTIZE = Path(__file__).parents[1] / "bench" / "bench_quantize.py"


def test_in_turns_runs_every_job_once_a_round_starting_one_further() -> None:
    assert "".join(_bench.in_turns("abc", 4)) == "abcbcacababc"
    assert list(_bench.in_turns([], 2)) == []


def test_measure_returns_the_first_result_and_batches_short_calls() -> None:
    calls = []

    def call() -> int:
        calls.append(None)
        return len(calls)

    seconds, result = _bench.measure(call, 3, 1e-3)
    assert result == 1 and seconds > 0
    assert len(calls) > 1 + 3 * 2  # a call takes far less than a millisecond: batches of more


def test_apart_returns_the_last_line_or_raises_with_the_last_error_line() -> None:
    code = "print('warming up'); print('{\"ms\": 1.5}')"
    assert _bench.apart([sys.executable, "-c", code]) == {"ms": 1.5}
    code = "import sys; print('first', file=sys.stderr); sys.exit('the reason')"
    with pytest.raises(_bench.ChildFailed, match=r"exit status 1: the reason$"):
        _bench.apart([sys.executable, "-c", code])


def test_run_times_each_method_apart_in_turns_and_reports_the_median(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sources = {"linquant": (), "numpy": (), "absent": ("linquant_no_such_module",)}
    monkeypatch.setattr(_bench, "SOURCES", sources)
    commands: list[list[str]] = []
    # per (source, op): the time of rounds 1, 2, 3 (linquant dequantize fails in round 2)
    times = {
        ("linquant", "dynamic"): [4.0, 1.0, 2.0],
        ("numpy", "dynamic"): [9.0, 3.0, 100.0],
        ("linquant", "quantize"): [1.0, 1.0, 1.0],
        ("numpy", "quantize"): [2.5, 0.5, 2.0],
        ("linquant", "dequantize"): [3.0, None, 1.0],
        ("numpy", "dequantize"): [5.0, 5.0, 6.0],
    }

    def apart(command: list[str]) -> dict[str, Any]:
        commands.append(command)
        source, op = command[3:5]
        ms = times[source, op][sum(c[3:5] == [source, op] for c in commands) - 1]
        if ms is None:
            raise _bench.ChildFailed("exit status 1: MemoryError")
        return {"ms": ms, "check": "ok" if source == "linquant" else "differs in 1/100"}

    monkeypatch.setattr(_bench, "apart", apart)
    table = _bench.run(size=100, repeat=2, seed=5, rounds=3)

    assert all(c[:3] == [sys.executable, "-m", "linquant._bench"] for c in commands)
    assert all(c[5:] == ["100", "2", "5", ""] for c in commands)
    jobs = [tuple(c[3:5]) for c in commands]
    assert len(jobs) == 18 and all(set(jobs[k : k + 6]) == set(times) for k in (0, 6, 12))
    assert jobs[6:12] == jobs[1:6] + jobs[:1]
    lines = table.splitlines()
    assert "median over 3 rounds of its median of 2 runs" in lines[1]
    assert lines[2] == "not installed, left out: linquant_no_such_module"
    rows = [line.split(maxsplit=3) for line in lines[3:] if line]
    assert rows == [
        ["dynamic", "ms", "ratio", "check"],
        ["linquant", "2.000", "1.00", "ok"],
        ["numpy", "9.000", "4.50", "differs in 1/100"],
        ["quantize", "ms", "ratio", "check"],
        ["linquant", "1.000", "1.00", "ok"],
        ["numpy", "2.000", "2.00", "differs in 1/100"],
        ["dequantize", "ms", "ratio", "check"],
        ["linquant", "2.000", "1.00", "ok; failed: exit status 1: MemoryError"],
        ["numpy", "5.000", "2.50", "differs in 1/100"],
    ]


def installed(source: str) -> bool:
    return all(map(importlib.util.find_spec, _bench.SOURCES[source]))


@pytest.mark.parametrize("op", _bench.OPS)
@pytest.mark.parametrize("source", list(_bench.SOURCES))
def test_each_method_agrees_with_linquant_in_its_child(source: str, op: str) -> None:
    if not installed(source):
        pytest.skip(
            f"{source} is not installed: an optional comparison, which the bench leaves out too"
        )
    model = _bench.onnx_model(_bench.ONNX_OPS[op]) if source == "onnxruntime" else b""
    measured = _bench.measure_method(source, op, 5000, 1, 3, model)
    assert measured["check"] == "ok" and measured["ms"] > 0


def test_the_check_counts_the_values_that_differ_from_linquants(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def off_by_one(op: str, case: _bench.Case) -> _bench.Method:
        def call() -> np.ndarray:
            codes = case.codes.copy()
            codes[[7, 99]] ^= 1
            return codes

        return call, np.asarray

    monkeypatch.setitem(_bench.METHODS, "numpy", off_by_one)
    assert _bench.measure_method("numpy", "dynamic", 1000, 1, 0)["check"] == "differs in 2/1000"


def test_a_child_prints_its_method_as_json() -> None:
    command = [sys.executable, "-m", "linquant._bench", "numpy", "quantize", "3000", "1", "0", ""]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    measured = json.loads(done.stdout)
    assert measured["check"] == "ok" and measured["ms"] > 0


@pytest.mark.skipif(
    not BENCH_QUANTIZE.exists(),
    reason="no bench/ beside the tests (a wheel's tests run from a copy of tests/ alone)",
)
def test_bench_quantize_reports_the_median_over_rounds(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, str(BENCH_QUANTIZE), "--quick", "--threads", "1"]
    command += ["--methods", "dynamic/linquant", "--rounds", "2", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "median over 2 rounds" in done.stdout
    results = json.loads(out.read_text())["results"]
    assert {r["method"] for r in results} == {"linquant", "linquant numpy-backend"}
    for result in results:
        assert result["check"] == "ok" and len(result["round_seconds"]) == 2
        assert result["seconds"] == statistics.median(result["round_seconds"])


BENCH_GGUF = BENCH_QUANTIZE.with_name("bench_gguf.py")


@pytest.mark.skipif(
    not BENCH_GGUF.exists(),
    reason="no bench/ beside the tests (a wheel's tests run from a copy of tests/ alone)",
)
def test_bench_gguf_checks_every_method_against_the_gguf_package() -> None:
    command = [sys.executable, str(BENCH_GGUF), "--size", "16384", "--threads", "1"]
    command += ["--rounds", "1", "--repeats", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.rsplit(maxsplit=3) for line in done.stdout.splitlines()[3:]]
    labels = [row[0] for row in rows]
    assert labels[:2] == ["quantize int8 per tensor", "quantize Q4_0"]
    assert len(rows) == 16 and labels[8:] == [
        label.replace("quantize", "dequantize") for label in labels[:8]
    ]
    assert [row[-1] for row in rows if "int8 per tensor" not in row[0]] == ["ok"] * 14


@pytest.mark.skipif(
    not BENCH_QUANTIZE.with_name("bench_calibrate.py").exists(),
    reason="no bench/ beside the tests (a wheel's tests run from a copy of tests/ alone)",
)
def test_bench_calibrate_times_every_installed_method() -> None:
    script = BENCH_QUANTIZE.with_name("bench_calibrate.py")
    command = [sys.executable, str(script), "--size", "4096", "--threads", "1"]
    command += ["--rounds", "1", "--repeats", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {" ".join(line.split()[:2]): line for line in done.stdout.splitlines()[3:]}
    expected = {"linquant minmax", "linquant percentile", "linquant mse", "linquant entropy"}
    if importlib.util.find_spec("onnxruntime"):
        expected |= {"onnxruntime percentile", "onnxruntime entropy"}
    assert expected <= set(rows)
    assert rows["linquant minmax"].split()[3] == "1.00"  # the baseline's ratio
    assert rows["linquant minmax"].endswith("[-25.000, 40.000]")

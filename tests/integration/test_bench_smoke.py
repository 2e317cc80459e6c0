"""The overhead benchmark runs end to end (a smoke test: no timing is ever asserted).

Benchmarks are not assertions: their numbers depend on the machine and its load. What this test
pins is that ``bench/overhead.py`` still works against the current code: it starts its own Redis
and workers, drains both arms, prints its summary and writes its JSON, and exits 0.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_overhead_benchmark_quick_run_prints_a_ratio(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "overhead.py"), "--quick", "--tasks", "300",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert re.search(r"ratio warden/plain \(median of per-round ratios\): \d+\.\d+", proc.stdout)
    data = json.loads(out.read_text())
    arms = sorted(r["arm"] for r in data["results"])
    assert arms == ["plain", "warden"]
    assert all(r["tasks"] == 300 for r in data["results"])


@pytest.mark.slow
def test_serve_api_benchmark_quick_run(tmp_path: Path) -> None:
    """bench/serve_api.py end to end on a small store: every scenario ran, every request was
    answered 200, the 100 listeners received events and none was dropped."""
    out = tmp_path / "serve.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "serve_api.py"), "--tasks", "3000", "--seconds",
         "1", "--listen-seconds", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert "task lookups/s, one server process" in proc.stdout
    data = json.loads(out.read_text())
    for scenario in ("plain_lookup", "lookup", "search", "performance"):
        assert set(data[scenario]["statuses"]) == {"200"}, (scenario, data[scenario])
    assert data["metrics"]["samples"] > 1000
    assert [s["listeners"] for s in data["stream"]] == [0, 1, 100]
    assert data["stream"][2]["events"] >= 100 and data["stream"][2]["closed"] == 0


def test_api_readers_benchmark_runs_on_its_own_redis() -> None:
    """bench/api_readers.py fills its own embedded Redis and times every reader (no timing is
    asserted: only that it runs against the current code and prints each line)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "api_readers.py"),
                           "--tasks", "3000", "--names", "20"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.stdout.startswith("3000 records in ")
    assert len(re.findall(r" p50 +\d+\.\d+ ms +p99 +\d+\.\d+ ms", proc.stdout)) == 16


def test_publisher_inproc_benchmark_runs_on_its_own_redis() -> None:
    """bench/publisher_inproc.py alternates a plain and a Warden app in one process on its own
    embedded Redis and prints both arms (no timing is asserted)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "publisher_inproc.py"),
                           "--rounds", "2", "--batch", "20"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert re.search(r"plain \d+\.\d us, warden \d+\.\d us, difference [+-]\d+\.\d us",
                     proc.stdout), proc.stdout


@pytest.mark.slow
def test_worker_pair_benchmark_runs_both_workers_at_once() -> None:
    """bench/worker_pair.py: both workers drain at once on its own embedded Redis, one round,
    and it prints the ratios (no timing is asserted)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "worker_pair.py"), "--tasks",
                           "300", "--rounds", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert re.search(r"worker CPU per task \d+\.\d{3} \(main \d+\.\d{3}, pool child \d+\.\d{3}\)",
                     proc.stdout), proc.stdout

"""The store benchmarks run end to end on a small scale (smoke tests: no figure is asserted
beyond its presence; the numbers depend on the machine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.mark.slow
def test_store_budget_simulates_a_day_and_prints_memory_by_kind() -> None:
    out = run("bench/store_budget.py", "--tasks", "20000", "--speed", "8640", "--names", "20")
    assert re.search(r"simulated day: 20,000 tasks, policy recent", out)
    assert re.search(r"task records\s+\d+\.\d", out)
    assert re.search(r"minute summaries\s+\d+\.\d", out)
    assert re.search(r"fleet minute\s+\d+\.\d", out)
    assert re.search(r"Redis CPU while writing .* \d+\.\d us per task", out)
    assert re.search(r"lookup of a kept record .* p99 \d+\.\d+ ms", out)


@pytest.mark.slow
def test_redis_ceiling_fits_redis_cpu_per_task() -> None:
    out = run("bench/redis_ceiling.py", "--workers", "10", "--procs", "2", "--producers", "3",
              "--rates", "200,400", "--seconds", "2")
    assert re.search(r"fit: Redis CPU = .* per task", out)
    assert re.search(r"ceiling \(one core\): [\d,]+ tasks/s", out)

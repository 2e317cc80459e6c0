"""A fleet-wide circuit breaker in front of a real HTTP dependency, on two workers x two children.

Calls are counted where they arrive (the server), and grouped by the breaker's own transition
log (Redis clock; same machine as the server), so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from celery_warden import CeleryMonitor
from celery_warden.fleet.breaker import CircuitBreaker
from celery_warden.settings import WardenSettings
from tests.dependency import FlakyServer
from tests.support import WorkerProcess, client_app, wait_for

pytestmark = pytest.mark.slow

APP = "tests.apps.resilience"
#: As declared in tests/apps/resilience.py.
MINIMUM_CALLS, HALF_OPEN_CALLS, RECOVERY = 4, 2, 4.0
PROCESSES = 4


def start_fleet(settings: WardenSettings, workers: list[WorkerProcess]) -> None:
    env = {"RES_RECOVERY": str(RECOVERY)}
    workers += [WorkerProcess(settings, app=APP, name=n, concurrency=2, extra_env=env).start()
                for n in ("a", "b")]


def transitions(monitor: CeleryMonitor) -> list[dict]:
    """The breaker's transitions, oldest first, with epoch times."""
    found = [b for b in monitor.get_circuit_breakers() if b["name"] == "dependency"]
    if not found:
        return []
    history = list(reversed(found[0]["history"]))
    for t in history:
        t["ts"] = datetime.fromisoformat(t["at"].replace("Z", "+00:00")).timestamp()
    return history


def test_breaker_stops_calls_probes_with_k_trials_and_runs_every_deferred_task(settings,
                                                                               workers):
    """Failing dependency → at most threshold + in-flight calls, then none while open; each
    half-open lets at most K trials through (exactly K when they succeed); recovery closes the
    breaker and every deferred task completes without spending a retry (max_retries=0)."""
    start_fleet(settings, workers)
    app = client_app(settings)
    monitor = CeleryMonitor(settings, app=app)
    with FlakyServer() as server:
        server.failing = True
        results = [app.send_task("resilience.call", (server.url,)) for _ in range(40)]

        def reopened() -> bool:
            opens = [t for t in transitions(monitor) if t["to"] == "open"]
            return len(opens) >= 2

        wait_for(reopened, 60, 0.05, "the breaker to trip, probe and trip again")
        deferred = [monitor.get_task_status(r.id) for r in results]
        server.failing = False
        wait_for(lambda: [t["to"] for t in transitions(monitor)][-1:] == ["closed"], 60, 0.1,
                 "the breaker to close after the dependency recovered")
        outcomes = [r.get(timeout=90, propagate=False) for r in results]

        history = transitions(monitor)
        times = server.times("/call")
        first_half_open = next(t["ts"] for t in history if t["to"] == "half_open")
        before_trip = [t for t in times if t < first_half_open]
        assert MINIMUM_CALLS <= len(before_trip) <= MINIMUM_CALLS + PROCESSES - 1
        half_opens = [i for i, t in enumerate(history) if t["to"] == "half_open"]
        for n, i in enumerate(half_opens):
            start, after = history[i]["ts"], history[i + 1]
            if after["to"] == "closed":  # the recovery: exactly K trials, then it closed
                assert len([t for t in times if start <= t <= after["ts"]]) == HALF_OPEN_CALLS
            else:  # a failing probe: at most K trials until the next half-open
                end = history[half_opens[n + 1]]["ts"]
                assert 1 <= len([t for t in times if start <= t < end]) <= HALF_OPEN_CALLS

    failed = [o for o in outcomes if isinstance(o, Exception)]
    assert len(failed) == server.count("/call", status=503)
    assert len(outcomes) - len(failed) == server.count("/call", status=200)
    assert len(failed) <= MINIMUM_CALLS + PROCESSES - 1 + HALF_OPEN_CALLS * (len(half_opens) - 1)
    assert any(s["state"] == "DEFERRED" and "circuit breaker dependency" in (s["reason"] or "")
               for s in deferred), "deferral is visible in the task status"
    statuses = [monitor.get_task_status(r.id) for r in results]
    assert all(s["state"] in ("SUCCESS", "FAILURE") and s["retries"] == 0 for s in statuses)
    breaker = next(b for b in monitor.get_circuit_breakers() if b["name"] == "dependency")
    assert breaker["state"] == "closed" and breaker["trips"] >= 2
    assert monitor.get_kpis("10m")["circuit_breaker_trips"]["value"] == breaker["trips"]
    wait_for(lambda: monitor.get_fleet_primitives("10m")["circuit_breakers"]["deferred"] > 0,
             10, 0.2, "circuit deferrals counted")


def test_forced_open_breaker_defers_a_context_manager_task_until_reset(settings, workers):
    """An operator forces the breaker open: a task using ``with dependency:`` inside its body is
    deferred (never calls the server, no retry spent) until the operator resets it."""
    start_fleet(settings, workers)
    app = client_app(settings)
    monitor = CeleryMonitor(settings, app=app)
    breaker = CircuitBreaker("dependency", settings=settings, minimum_calls=4, window_size=10,
                             recovery_timeout=RECOVERY, half_open_calls=HALF_OPEN_CALLS)
    assert breaker.force_open() == "forced_open"
    with FlakyServer() as server:
        results = [app.send_task("resilience.call_inside", (server.url,)) for _ in range(6)]
        wait_for(lambda: all(monitor.get_task_status(r.id)["state"] == "DEFERRED"
                             for r in results), 60, 0.2, "every task deferred")
        assert server.count("/call") == 0
        assert monitor.get_circuit_breakers()[0]["state"] == "forced_open"
        assert breaker.reset() == "closed"
        assert sorted(r.get(timeout=60) for r in results) == sorted(f":{i}" for i in range(1, 7))
        assert server.count("/call") == 6
    assert all(monitor.get_task_status(r.id)["retries"] == 0 for r in results)
    assert monitor.get_kpis("10m")["circuit_breaker_trips"]["value"] == 0, "forcing is no trip"

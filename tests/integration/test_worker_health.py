"""Worker health: a clean stop is reported at once, a killed worker after the heartbeat timeout."""

from __future__ import annotations

import time
from typing import Any

import pytest

from celery_warden import CeleryMonitor
from celery_warden.config import QUEUES, queue_name
from celery_warden.settings import WardenSettings
from tests.support import WorkerProcess, wait_for

pytestmark = pytest.mark.slow

HEARTBEAT = 1.0
OFFLINE_AFTER = 3.0
#: Poll interval and allowance for one flush (0.1 s) and scheduling jitter.
SLACK = 0.6


@pytest.fixture
def fast_settings(settings_factory) -> WardenSettings:
    """Heartbeat every 1 s, offline after 3 s without one."""
    return settings_factory(WARDEN_HEARTBEAT_INTERVAL=HEARTBEAT,
                      WARDEN_WORKER_OFFLINE_AFTER=OFFLINE_AFTER)


def _entry(monitor: CeleryMonitor, hostname: str) -> dict[str, Any] | None:
    for worker in monitor.get_worker_health()["workers"]:
        if worker["hostname"] == hostname:
            return worker
    return None


def _online(monitor: CeleryMonitor, hostname: str) -> dict[str, Any] | None:
    entry = _entry(monitor, hostname)
    return entry if entry and entry["status"] == "online" else None


def test_clean_stop_is_reported_offline_immediately(fast_settings, workers):
    """SIGTERM (warm shutdown) writes a final 'offline' heartbeat before the process exits, so
    the worker is reported offline/stopped the moment it is gone, long before the timeout."""
    s = fast_settings
    worker = WorkerProcess(s, concurrency=2).start()
    workers.append(worker)
    monitor = CeleryMonitor(s)
    entry = wait_for(lambda: _online(monitor, worker.hostname), 10, 0.1, "worker online")
    assert entry["state"] == "online"
    assert entry["pid"] == worker.pid
    assert entry["concurrency"] == 2
    assert entry["queues"] == sorted(queue_name(s, q) for q in QUEUES)
    assert monitor.get_worker_health()["online"] == 1

    assert worker.stop() == 0
    entry = _entry(monitor, worker.hostname)  # no waiting: the process has already exited
    assert entry is not None
    assert (entry["status"], entry["state"]) == ("offline", "stopped")
    assert entry["heartbeat_age"] < OFFLINE_AFTER, "offline because it said so, not by age"
    health = monitor.get_worker_health()
    assert (health["online"], health["offline"]) == (0, 1)


def test_killed_worker_is_reported_offline_within_timeout_plus_one_beat(fast_settings, workers):
    """SIGKILL of the worker main process and its pool children leaves no goodbye: the worker is
    reported offline ('lost') once its last heartbeat is older than WARDEN_WORKER_OFFLINE_AFTER,
    i.e. within offline_after + one heartbeat interval of the kill and not before
    offline_after - one interval; a second worker stays online throughout."""
    s = fast_settings
    victim = WorkerProcess(s, concurrency=1, name="victim").start(wait=False)
    survivor = WorkerProcess(s, concurrency=1, name="survivor").start(wait=False)
    workers += [victim, survivor]
    victim.wait_ready()
    survivor.wait_ready()
    monitor = CeleryMonitor(s)
    wait_for(lambda: _online(monitor, victim.hostname) and _online(monitor, survivor.hostname),
             10, 0.1, "both workers online")
    time.sleep(HEARTBEAT * 1.5)  # steady state: beats are flowing

    victim.kill()
    killed_at = time.monotonic()
    while True:
        entry = _entry(monitor, victim.hostname)
        assert entry is not None
        elapsed = time.monotonic() - killed_at
        if entry["status"] == "offline":
            break
        assert _online(monitor, survivor.hostname), "the other worker stays online"
        assert elapsed <= OFFLINE_AFTER + HEARTBEAT + SLACK, f"still online after {elapsed:.2f}s"
        time.sleep(0.05)
    assert entry["state"] == "lost"
    assert elapsed >= OFFLINE_AFTER - HEARTBEAT - SLACK, f"offline too early ({elapsed:.2f}s)"
    assert entry["heartbeat_age"] > OFFLINE_AFTER
    assert _online(monitor, survivor.hostname)
    health = monitor.get_worker_health()
    assert (health["online"], health["offline"]) == (1, 1)

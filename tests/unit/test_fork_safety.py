"""Fork safety: a process forked while another thread holds one of Warden's locks (the flusher,
the heartbeat, a publisher thread whose monitoring handler fails, a fleet primitive building its
client) gets usable locks — a prefork pool child never deadlocks the first time it takes one."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

from celery_warden import Warden, celery_config, isolation
from celery_warden.fleet import context as fleet_context
from celery_warden.fleet.breaker import CircuitBreaker
from celery_warden.isolation import guarded
from celery_warden.keys import Keys
from celery_warden.logs.flood import FloodFilter
from celery_warden.record.heartbeat import Heartbeat
from celery_warden.record.order import RANK_FINAL
from celery_warden.record.recorder import Recorder
from celery_warden.services import services_for
from celery_warden.settings import WardenSettings
from tests.support import ROOT, settings_env, wait_for

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

#: Seconds a forked child may take for all its steps (they take milliseconds when no lock is
#: inherited held; a deadlocked child never finishes).
CHILD_TIMEOUT = 10.0


def run_in_child(steps: list[tuple[str, Callable[[], Any]]],
                 timeout: float = CHILD_TIMEOUT) -> tuple[bool, list[str]]:
    """Fork; the child runs ``steps`` in order, reporting each through a pipe, then exits.

    Returns (finished in time, the lines the child reported). A child still running after
    ``timeout`` is SIGKILLed (by its pid) and reported as not finished; its last ``start``
    line names the step it hung in.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 3
        try:
            os.close(read_fd)
            for name, step in steps:
                os.write(write_fd, f"start {name}\n".encode())
                step()
                os.write(write_fd, f"done {name}\n".encode())
            os.write(write_fd, b"finished\n")
            code = 0
        except BaseException as exc:  # reported to the parent, which fails the test
            os.write(write_fd, f"error {type(exc).__name__}: {exc}\n".encode()[:500])
        finally:
            os._exit(code)
    os.close(write_fd)
    data = b""
    deadline = time.monotonic() + timeout
    finished = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(read_fd, 4096)
            if not chunk:  # the child exited
                break
            data += chunk
        finished = b"finished\n" in data
    finally:
        os.close(read_fd)
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    return finished and os.waitstatus_to_exitcode(status) == 0, data.decode().splitlines()


@pytest.fixture
def app(settings: WardenSettings) -> Iterator[Celery]:
    """A Warden-wired app (real recorder with its flusher thread) on the per-test settings."""
    app = Celery(f"fork-{uuid.uuid4().hex[:6]}", set_as_current=False)
    app.conf.update(celery_config(settings))
    Warden(app, settings)
    yield app
    services = services_for(app)
    assert services is not None
    recorder = services.recorder
    assert isinstance(recorder, Recorder)
    recorder.stop(timeout=2.0)


@pytest.fixture
def flood_logger() -> Iterator[tuple[logging.Logger, FloodFilter]]:
    """A logger whose handler carries Warden's flood filter (as configure_logging sets up)."""
    logger = logging.getLogger(f"celery_warden.test.fork.{uuid.uuid4().hex[:6]}")
    handler = logging.StreamHandler(io.StringIO())
    flood = FloodFilter(limit=3, window=60.0)
    handler.addFilter(flood)
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, flood
    flood.flush()
    logger.removeHandler(handler)


def _failing_handler() -> Callable[[], Any]:
    @guarded
    def handler() -> None:
        raise RuntimeError("monitoring fault in a forked child")

    return handler


def child_steps(app: Celery, settings: WardenSettings, logger: logging.Logger,
                task_id: str) -> dict[str, Callable[[], Any]]:
    """What a pool child does with each of Warden's locks, by the lock it takes."""
    services = services_for(app)
    assert services is not None
    recorder = services.recorder
    handler = _failing_handler()
    breaker = CircuitBreaker(f"fork-{uuid.uuid4().hex[:6]}", settings=settings)

    def record() -> None:
        recorder.task(task_id, static={"name": "fork.child", "pid": str(os.getpid())},
                      attempt={"state": "SUCCESS"}, rank=RANK_FINAL)
        recorder.observe("fork.child", time.time(), "success", 0.001)
        if not recorder.flush():
            raise RuntimeError("the child's flush did not reach Redis")

    def use_breaker() -> None:
        with breaker:
            pass

    def log() -> None:
        for _ in range(5):
            logger.warning("warden fork test: the same warning again")

    def fail_handler() -> None:
        assert handler() is None

    return {
        "isolation throttle": fail_handler,
        "fleet client": lambda: fleet_context.client(settings).ping(),
        "circuit breaker": use_breaker,
        "recorder buffer": record,
        "recorder flusher": record,
        "log flood filter": log,
    }


def held_lock(name: str, app: Celery, flood: FloodFilter) -> Any:
    """The lock named ``name``, as the parent process has it."""
    services = services_for(app)
    assert services is not None
    recorder = services.recorder
    assert isinstance(recorder, Recorder)
    return {
        "isolation throttle": lambda: isolation.throttle._lock,
        "fleet client": lambda: fleet_context._lock,
        "recorder buffer": lambda: recorder._lock,
        "recorder flusher": lambda: recorder.flusher._lock,
        "log flood filter": lambda: flood._lock,
    }[name]()


@pytest.mark.parametrize("lock_name", ["isolation throttle", "fleet client", "recorder buffer",
                                       "recorder flusher", "log flood filter"])
def test_child_forked_while_another_thread_holds_a_lock_can_take_it(
        lock_name, app, settings, flood_logger, redis_client):
    """Another thread holds one of Warden's locks at the moment of fork (the worst timing a
    busy flusher, heartbeat or publisher thread can produce): the child takes that lock —
    records and flushes, logs, fails a guarded handler, builds its fleet client, uses a
    breaker — within the timeout instead of deadlocking, and its record reaches Redis."""
    logger, flood = flood_logger
    lock = held_lock(lock_name, app, flood)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)
    task_id = f"fork-{uuid.uuid4().hex}"
    steps = child_steps(app, settings, logger, task_id)
    try:
        order = [lock_name, *[n for n in steps if n != lock_name]]
        finished, lines = run_in_child([(n, steps[n]) for n in order])
    finally:
        release.set()
        holder.join(5)
    assert finished, f"child forked while {lock_name!r} was held did not finish: {lines}"
    key = Keys(settings.key_prefix).task(task_id)
    assert redis_client.hget(key, "state") == "SUCCESS"


def test_children_forked_while_flusher_heartbeat_and_handler_threads_run_never_hang(
        settings_factory, flood_logger, redis_client):
    """Real threads busy in a tight loop — the recorder's flusher and the worker heartbeat
    (every 5 ms), a thread whose guarded monitoring handler keeps failing and one logging
    through the flood filter — while the process forks 40 children: every child records,
    flushes, logs and fails a guarded handler within the timeout, and its record is written."""
    settings = settings_factory(WARDEN_FLUSH_INTERVAL=0.005, WARDEN_HEARTBEAT_INTERVAL=0.005)
    app = Celery(f"fork-busy-{uuid.uuid4().hex[:6]}", set_as_current=False)
    app.conf.update(celery_config(settings))
    Warden(app, settings)
    services = services_for(app)
    assert services is not None
    worker = app.WorkController(hostname=f"fork-{uuid.uuid4().hex[:6]}@test", pool_cls="solo",
                                concurrency=1, without_heartbeat=True, without_mingle=True,
                                without_gossip=True)
    heartbeat = Heartbeat(services, worker)
    logger, _ = flood_logger
    stop = threading.Event()
    handler = _failing_handler()

    def fail_forever() -> None:
        while not stop.is_set():
            handler()

    def log_forever() -> None:
        while not stop.is_set():
            logger.warning("warden fork test: busy logging thread")

    threads = [threading.Thread(target=f, daemon=True) for f in (fail_forever, log_forever)]
    heartbeat.start()
    for t in threads:
        t.start()
    ids: list[str] = []
    try:
        for i in range(40):
            task_id = f"fork-busy-{i}-{uuid.uuid4().hex[:8]}"
            ids.append(task_id)
            steps = child_steps(app, settings, logger, task_id)
            finished, lines = run_in_child(
                [(n, steps[n]) for n in ("isolation throttle", "recorder buffer",
                                         "log flood filter", "fleet client")])
            assert finished, f"child {i} forked while threads ran did not finish: {lines}"
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        heartbeat.stop()
        recorder = services.recorder
        assert isinstance(recorder, Recorder)
        recorder.stop(timeout=2.0)
    keys = Keys(settings.key_prefix)
    assert [redis_client.hget(keys.task(t), "state") for t in ids] == ["SUCCESS"] * len(ids)
    wait_for(lambda: redis_client.hget(keys.worker(worker.hostname), "state") == "offline",
             timeout=5, message="the heartbeat's final beat")


FIRST_FLUSH = """
import json, sys, time
from celery import Celery
from celery_warden import Warden, celery_config, load_settings
from celery_warden.services import services_for

settings = load_settings()
app = Celery("first-flush", set_as_current=False)
app.conf.update(celery_config(settings))
Warden(app, settings)
recorder = services_for(app).recorder
before = set(sys.modules)
recorder.task("first-flush", attempt={"state": "SENT"}, rank=1)
deadline = time.monotonic() + 20
while recorder.stats()["written"] < 1 and time.monotonic() < deadline:
    time.sleep(0.01)
new = sorted(set(sys.modules) - before)
recorder.stop()
print(json.dumps({"written": recorder.stats()["written"], "imported": new}))
"""


def test_the_flushers_first_flush_imports_no_module(settings):
    """A module imported for the first time on a background thread holds its import lock
    meanwhile; a child forked at that moment inherits it held and hangs as soon as it imports
    the same module (on its own first flush). So the flusher thread's first flush — the Lua
    script texts, the first Redis connection — imports nothing (checked in a fresh
    interpreter, where nothing was imported before)."""
    result = subprocess.run(
        [sys.executable, "-c", FIRST_FLUSH], cwd=ROOT, capture_output=True, text=True,
        timeout=60, env={**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"written": 1, "imported": []}

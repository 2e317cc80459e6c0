"""Warden's store answers but refuses writes — ``READONLY`` (a replica after a failover) or
``OOM`` (``maxmemory`` reached under ``noeviction``): each fleet primitive keeps its documented
choice (breakers and rate limits fail open, idempotency fails closed), the DLQ capture and the
poison-pill counter never raise into the task, and a script error from a bug stays visible.

The store is this module's own embedded ``redis-server`` (the shared one is never
reconfigured); the broker is the session's Redis.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from celery.worker.request import Request
from kombu import Queue

from celery_warden import Warden, celery_config
from celery_warden.config import queue_name
from celery_warden.embedded import EmbeddedRedis, free_port
from celery_warden.errors import DuplicateTaskError, RateLimited
from celery_warden.fleet import breaker as cb
from celery_warden.fleet import idempotency, rate_limit
from celery_warden.fleet.breaker import CircuitBreaker
from celery_warden.fleet.idempotency import IdempotencyStore
from celery_warden.fleet.rate_limit import FleetRateLimiter
from celery_warden.keys import Keys
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.settings import WardenSettings
from tests.conftest import make_settings
from tests.support import delete_prefix

MODES = ["oom", "readonly"]
CODES = {"oom": "OOM", "readonly": "READONLY"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("refusing-store"), appendonly=False) as srv:
        yield srv


def _reset_outages() -> None:
    for module in (cb, rate_limit, idempotency):
        module._outage.reset()


class Store:
    """Our embedded Redis as Warden's store, switched into a refusing state and back."""

    def __init__(self, server: EmbeddedRedis, mode: str, settings: WardenSettings) -> None:
        self.mode = mode
        self.code = CODES[mode]
        self.settings = settings
        self.client = redis.Redis.from_url(server.url, decode_responses=True)

    def refuse(self) -> None:
        if self.mode == "oom":
            self.client.config_set("maxmemory-policy", "noeviction")
            self.client.config_set("maxmemory", 1)
        else:  # a replica of a primary nobody runs: answers reads, refuses writes
            self.client.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        with pytest.raises(redis.ResponseError):
            self.client.set(f"{self.settings.key_prefix}:probe", "x")
        self.client.get(f"{self.settings.key_prefix}:probe")  # reads still answered

    def restore(self) -> None:
        if self.mode == "oom":
            self.client.config_set("maxmemory", 0)
        else:
            self.client.execute_command("REPLICAOF", "NO", "ONE")


@pytest.fixture(params=MODES)
def store(request: pytest.FixtureRequest, server: EmbeddedRedis,
          redis_url: str) -> Iterator[Store]:
    """Warden's store on our own server (healthy until the test calls ``refuse()``), the broker
    and result backend on the session's Redis."""
    settings = make_settings(server.url, CELERY_BROKER_URL=redis_url,
                             CELERY_RESULT_BACKEND=redis_url)
    s = Store(server, request.param, settings)
    _reset_outages()
    yield s
    s.restore()
    _reset_outages()
    delete_prefix(s.client, f"{settings.key_prefix}:")
    s.client.close()
    shared = redis.Redis.from_url(redis_url)
    delete_prefix(shared, settings.broker_key_prefix)
    shared.close()


def fleet_warnings(caplog: pytest.LogCaptureFixture, code: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "celery_warden.fleet"
            and r.levelno == logging.WARNING and code in r.getMessage()]


def test_breaker_fails_open_when_the_store_refuses_writes(store, caplog):
    """A breaker never seen before (its first acquire writes its state) gives an unguarded
    permit; an outcome that cannot be written is dropped; a guarded call runs and returns its
    result. Nothing raises, and one warning names the refusal."""
    known = CircuitBreaker(f"known-{uuid.uuid4().hex[:6]}", settings=store.settings)
    known.record(known.acquire())  # its state exists: acquiring in closed state only reads
    in_flight = known.acquire()
    fresh = CircuitBreaker(f"fresh-{uuid.uuid4().hex[:6]}", settings=store.settings)
    store.refuse()
    with caplog.at_level(logging.WARNING, logger="celery_warden.fleet"):
        permit = fresh.acquire()
        assert permit.generation is None, "unguarded: the store could not issue a permit"
        assert known.record(in_flight, RuntimeError("dependency failed")) is None
        _reset_outages()
        assert fresh.call(lambda: "ran") == "ran"
    assert fleet_warnings(caplog, store.code)
    store.restore()
    assert known.status()["window"] == {"calls": 1, "failures": 0, "slow_calls": 0,
                                        "failure_rate": 0.0, "slow_call_rate": 0.0}


def test_rate_limit_fails_open_when_the_store_refuses_writes(store, caplog):
    """Reserving a slot needs a write: refused, the call may start now (unthrottled), and
    ``hit`` does not raise."""
    limiter = FleetRateLimiter(store.settings)
    limits = limiter.limits_for("refusing.task", None, "1/m")
    store.refuse()
    with caplog.at_level(logging.WARNING, logger="celery_warden.fleet"):
        for _ in range(3):
            res = limiter.reserve(limits, 60.0)
            assert (res.reserved, res.wait) == (True, 0.0)
            _reset_outages()
        try:
            limiter.hit("refusing.task", "1/m")
        except RateLimited as exc:  # pragma: no cover - the failure this test pins
            pytest.fail(f"a refused store throttled the call: {exc}")
    assert fleet_warnings(caplog, store.code)


def test_idempotency_fails_closed_when_the_store_refuses_writes(store, caplog):
    """A claim that cannot be written is "unavailable" (the task is deferred, never run
    unguarded; ``run_once`` raises instead of running); completing or releasing a claim taken
    before the refusal does not raise — the key stays claimed until its lease ends."""
    ids = IdempotencyStore(store.settings)
    held = f"held-{uuid.uuid4().hex[:6]}"
    assert ids.claim(held, "t1", 30).status == "claimed"
    store.refuse()
    calls: list[int] = []
    with caplog.at_level(logging.WARNING, logger="celery_warden.fleet"):
        assert ids.claim(f"new-{uuid.uuid4().hex[:6]}", "t2", 30).status == "unavailable"
        _reset_outages()
        assert ids.complete(held, "t1", {"total": 3}, 60) is None, "unknown, not lease lost"
        assert isinstance(ids.release(held, "t1"), bool)
        _reset_outages()
        with pytest.raises(DuplicateTaskError):
            ids.run_once(f"once-{uuid.uuid4().hex[:6]}", lambda: calls.append(1))
    assert calls == [], "fail closed: the work did not run"
    assert fleet_warnings(caplog, store.code)


@pytest.fixture
def worker_app(store: Store) -> Iterator[tuple[Celery, Warden]]:
    """A Warden-wired app with one task, as a worker's main process has it."""
    app = Celery(f"refusing-{uuid.uuid4().hex[:6]}", set_as_current=False)
    app.conf.update(celery_config(store.settings))
    warden = Warden(app, store.settings)

    @app.task(name="refusing.work", shared=False)
    def work(x: int) -> int:
        return x

    yield app, warden
    warden.uninstall()
    app.close()


def received_request(app: Celery, settings: WardenSettings, task_id: str) -> Request:
    """A real worker Request for a message published and fetched back through the broker."""
    app.send_task("refusing.work", (1,), task_id=task_id, password="hunter2")
    name = queue_name(settings, "default")
    with app.connection_for_write() as conn:
        message = Queue(name, routing_key=name)(conn.default_channel).get(no_ack=True,
                                                                         accept=["json"])
    assert message is not None
    return Request(message, app=app, task=app.tasks["refusing.work"], hostname="w@test")


def test_a_refused_poison_pill_count_lets_the_task_run(store, worker_app, caplog):
    """The redelivery counter cannot be written: the delivery is let run (None: not a poison
    pill) with a warning, instead of an exception escaping the ``task_received`` handler."""
    app, warden = worker_app
    request = received_request(app, store.settings, f"poison-{uuid.uuid4().hex[:8]}")
    store.refuse()
    with caplog.at_level(logging.WARNING, logger="celery_warden.failures"):
        assert warden.failures.redelivered(request) is None
    (record,) = [r for r in caplog.records if r.name == "celery_warden.failures"]
    assert record.levelno == logging.WARNING
    assert request.id in record.getMessage() and store.code in record.getMessage()
    assert request.id not in warden.failures.poisoned


def test_a_dlq_entry_that_cannot_be_written_is_logged_critical_with_its_content(
        store, worker_app, caplog):
    """Capturing a lost worker's task while the store refuses writes: no exception reaches the
    caller, no entry id is returned, and the whole entry is logged at CRITICAL (task id, args)
    so it can be recovered from the logs — secrets in the failure text masked."""
    app, warden = worker_app
    request = received_request(app, store.settings, f"lost-{uuid.uuid4().hex[:8]}")
    store.refuse()
    with caplog.at_level(logging.CRITICAL, logger="celery_warden.failures"):
        entry_id = warden.failures.main_failure(
            app.tasks["refusing.work"], request, RuntimeError("lost, password=hunter2"),
            "worker_lost")
    assert entry_id is None
    (record,) = [r for r in caplog.records if r.name == "celery_warden.failures"]
    text = record.getMessage()
    assert record.levelno == logging.CRITICAL
    assert "could not write DLQ entry" in text and request.id in text
    assert '"worker_lost"' in text and "hunter2" not in text


# -- a bug, not an outage --------------------------------------------------------------------
def test_a_script_error_from_a_bug_is_logged_at_error_with_its_traceback(
        settings, redis_client, caplog):
    """Keys of the wrong type under our prefix make each script fail the way a bug in it
    would (WRONGTYPE inside the script): the primitives still answer open (breaker, rate
    limit) or closed (idempotency), and each logs an ERROR with the traceback — never silently
    swallowed, never raised into the task, and not mistaken for an outage."""
    _reset_outages()
    keys = Keys(settings.key_prefix)
    name = f"bug-{uuid.uuid4().hex[:6]}"
    redis_client.set(keys.breaker(name), "a string where the breaker's hash belongs")
    redis_client.set(keys.idem(name), "a string where the claim's hash belongs")
    redis_client.hset(keys.ratelimit("task", name), "a", "hash where a time belongs")
    breaker = CircuitBreaker(name, settings=settings)
    limiter = FleetRateLimiter(settings)
    with caplog.at_level(logging.ERROR, logger="celery_warden.fleet"):
        assert breaker.acquire().generation is None
        res = limiter.reserve(limiter.limits_for(name, None, "1/s"), 5.0)
        assert (res.reserved, res.wait) == (True, 0.0)
        assert IdempotencyStore(settings).claim(name, "t1", 30).status == "unavailable"
    errors = [r for r in caplog.records
              if r.name == "celery_warden.fleet" and r.levelno == logging.ERROR]
    assert len(errors) == 3, [r.getMessage() for r in errors]
    for record in errors:
        assert "unexpected Redis error" in record.getMessage()
        assert "WRONGTYPE" in record.getMessage()
        assert record.exc_info is not None
    assert not (cb._outage.active or rate_limit._outage.active or idempotency._outage.active), \
        "a bug is not an outage: other keys keep being checked"
    _reset_outages()


def test_records_written_while_the_store_refuses_are_kept_until_it_accepts(store):
    """READONLY after a failover or OOM is a state that passes: the recorder keeps what it
    could not write (like an outage) instead of dropping it, and writes it once the store
    accepts writes again — counts exact, nothing reported as dropped."""
    from celery_warden.record.order import RANK_FINAL
    from celery_warden.record.recorder import Recorder

    r = Recorder(store.settings)
    r.stop()
    try:
        store.refuse()
        now = time.time()
        for i in range(5):
            r.task(f"kept-{i}", static={"name": "t.kept"},
                   attempt={"state": "SUCCESS", "finished": now}, rank=RANK_FINAL)
            r.observe("t.kept", now, "success", 0.01)
        assert r.flush() is False
        assert r.stats()["dropped"] == 0 and r.stats()["buffered"] == 5
        store.restore()
        assert r.flush() is True
        keys = Keys(store.settings.key_prefix)
        assert store.client.hget(keys.task("kept-4"), "state") == "SUCCESS"
        monitor = CeleryMonitor(store.settings)
        assert monitor.get_performance_stats("t.kept", "5m")["success"] == 5
        monitor.redis.close()
        assert store.client.hget(keys.stats("recorder"), "dropped") is None
    finally:
        r.stop()
        writer = r.flusher._writer
        if writer is not None:
            writer.client.close()

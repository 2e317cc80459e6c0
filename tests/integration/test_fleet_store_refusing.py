"""Warden's store answers but refuses writes — ``READONLY`` (a replica after a failover) or
``OOM`` (``maxmemory`` reached under ``noeviction``) — while the broker works: in a real worker
breaker and rate-limited tasks succeed (fail open), an idempotent task is deferred, neither
failed nor run (fail closed), and runs exactly once when the store takes writes again; a task
failing for good keeps its own failure while its DLQ entry, which cannot be written, is spooled
and reaches the DLQ once the store takes writes again.
"""

from __future__ import annotations

import pytest
import redis

from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.embedded import EmbeddedRedis, free_port
from tests.conftest import make_settings
from tests.dependency import FlakyServer
from tests.support import WorkerProcess, client_app, delete_prefix, wait_for

pytestmark = pytest.mark.slow

APP = "tests.apps.resilience"


def refuse(client: redis.Redis, mode: str) -> None:
    if mode == "oom":
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
    else:  # a replica of a primary nobody runs: answers reads, refuses writes
        client.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    with pytest.raises(redis.ResponseError):
        client.set("probe", "x")


def restore(client: redis.Redis, mode: str) -> None:
    if mode == "oom":
        client.config_set("maxmemory", 0)
    else:
        client.execute_command("REPLICAOF", "NO", "ONE")


@pytest.mark.parametrize("mode", ["oom", "readonly"])
def test_primitives_keep_their_choice_when_the_store_refuses_writes(
        mode, tmp_path, redis_url, workers):
    """Store refusing writes from before the worker starts: the breaker task and five
    rate-limited tasks return their results; the idempotent task is deferred (its delivery
    ignored, the dependency never called, no result); a failing task fails with its own error
    and its DLQ entry is spooled. Once the store takes writes again the idempotent task runs
    exactly once and the DLQ entry is in the DLQ."""
    with EmbeddedRedis(tmp_path / "store", appendonly=False) as store:
        settings = make_settings(store.url, CELERY_BROKER_URL=redis_url,
                                 CELERY_RESULT_BACKEND=redis_url,
                                 WARDEN_SPOOL_DIR=str(tmp_path / "spool"))
        control = redis.Redis.from_url(store.url, decode_responses=True)
        try:
            refuse(control, mode)
            worker = WorkerProcess(settings, app=APP, concurrency=2).start()
            workers.append(worker)
            app = client_app(settings, "refusing-client")
            with FlakyServer() as server:
                guarded = app.send_task("resilience.call", (server.url,))
                limited = [app.send_task("resilience.limited", (server.url, i))
                           for i in range(5)]
                failing = app.send_task("resilience.fails", ("password=hunter2 boom",))
                idem = app.send_task("resilience.idem", (server.url, mode))
                assert guarded.get(timeout=60) == ":1"
                assert sorted(r.get(timeout=60) for r in limited) == list(range(5))
                with pytest.raises(ValueError, match="boom"):
                    failing.get(timeout=60)
                wait_for(lambda: f"resilience.idem[{idem.id}] ignored" in worker.log(), 60,
                         0.2, "the idempotent task to be tried and deferred")
                assert server.count("/work") == 0 and not idem.ready()
                log = worker.log()
                assert f"DLQ entry {failing.id} for task {failing.id} spooled" in log
                assert "monitoring handler" not in log, "nothing escaped into a handler"
                restore(control, mode)
                assert idem.get(timeout=90) == f"{mode}:1"
                assert server.count("/work") == 1
                dlq = DeadLetterQueue(settings, app=app)
                wait_for(lambda: dlq.get(failing.id) is not None, 30, 0.2,
                         "the spooled DLQ entry written once the store takes writes")
        finally:
            for w in workers:
                w.stop()
            control.close()
            shared = redis.Redis.from_url(redis_url)
            delete_prefix(shared, settings.broker_key_prefix)
            shared.close()

"""A sick store never slows a task, and loses no DLQ entry.

Warden's store (``REDIS_URL``) sits behind a loopback proxy that turns black-holed, refusing or
slow while the broker stays healthy. Final failures of base-class tasks cannot write their DLQ
entries in time (``WARDEN_STORE_DEADLINE``): the entries go to the pool child's spool and reach
the DLQ once the store answers again — each exactly once. Timings are measured by the
benchmark, never asserted here.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from bench.storeproxy import StoreProxy

from celery_warden.dlq.store import DeadLetterQueue
from tests.conftest import make_settings
from tests.support import WorkerProcess, client_app, delete_prefix, wait_for

pytestmark = pytest.mark.slow

APP = "tests.apps.errors"
FAILURES = 20
NOOPS = 100


@pytest.mark.parametrize("mode", ["blackhole", "refuse", "slow"])
def test_dlq_entries_reach_the_dlq_once_the_store_answers(mode, redis_url, workers, tmp_path,
                                                          redis_client):
    target = urlparse(redis_url)
    with StoreProxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        # The worker's store goes through the proxy; the broker and results do not.
        sick = make_settings(proxy.url, CELERY_BROKER_URL=redis_url,
                             CELERY_RESULT_BACKEND=redis_url,
                             WARDEN_SPOOL_DIR=str(tmp_path / "spool"))
        # The same key prefix read directly, to see what reached the store.
        direct = make_settings(redis_url, WARDEN_KEY_PREFIX=sick.key_prefix,
                               WARDEN_BROKER_KEY_PREFIX=sick.broker_key_prefix,
                               WARDEN_QUEUE_PREFIX=sick.queue_prefix)
        try:
            w = WorkerProcess(sick, app=APP, concurrency=2).start()
            workers.append(w)
            app = client_app(direct)
            dlq = DeadLetterQueue(direct, app=app)
            assert app.send_task("errors.ok", (0,)).get(timeout=30) == 0
            proxy.set_mode(mode)
            bad = [app.send_task("errors.bug", (i,)) for i in range(FAILURES)]
            ok = [app.send_task("errors.ok", (i,)) for i in range(NOOPS)]
            assert [r.get(timeout=60) for r in ok] == list(range(NOOPS))
            for r in bad:
                with pytest.raises(ValueError):
                    r.get(timeout=60)
            if mode != "slow":  # a slow store may take some entries in time, later ones not
                assert all(dlq.get(r.id) is None for r in bad), "the store was away"
            proxy.set_mode("pass")
            wait_for(lambda: all(dlq.get(r.id) is not None for r in bad), 60, 0.25,
                     f"{FAILURES} DLQ entries delivered from the spool")
            entries = [dlq.get(r.id) for r in bad]
            assert all(e is not None and e.reason == "exception" for e in entries)
            assert [e.failures for e in entries if e is not None] == [1] * FAILURES
            assert {e.args[0] for e in entries if e is not None} == set(range(FAILURES))
            w.stop()
            left = [p.name for p in (tmp_path / "spool").rglob("*") if p.is_file()]
            assert left == [], "delivered entries leave no spool behind"
        finally:
            for w in workers:
                w.stop()
            delete_prefix(redis_client, f"{sick.key_prefix}:", sick.broker_key_prefix)

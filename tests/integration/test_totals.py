"""Cumulative totals after a known workload through a real worker: every event exact."""

from __future__ import annotations

import socket
import time

from celery_warden import CeleryMonitor
from celery_warden.keys import Keys
from celery_warden.read.totals import read_totals
from tests.support import WorkerProcess, client_app, wait_for


def test_known_workload_gives_exact_totals(settings, workers, redis_client):
    worker = WorkerProcess(settings).start()
    workers.append(worker)
    host = worker.hostname.rpartition("@")[2]
    me = socket.gethostname()
    queue = f"{settings.queue_prefix}default"
    app = client_app(settings)
    ok = [app.send_task("fleet.add", (i, 1)) for i in range(20)]
    bad = [app.send_task("fleet.fail", ("x",)) for _ in range(5)]
    retried = [app.send_task("fleet.retry_then_succeed", (2,)) for _ in range(3)]
    later = [app.send_task("fleet.add", (1, 1), countdown=3) for _ in range(4)]
    app.send_task("fleet.no_such_task", ())
    app.send_task("fleet.no_such_task", ())
    assert [r.get(timeout=60) for r in ok] == [i + 1 for i in range(20)]
    for r in bad:
        r.get(timeout=60, propagate=False)
    assert [r.get(timeout=60) for r in retried] == [2, 2, 2]
    monitor = CeleryMonitor(settings, app=app)
    wait_for(lambda: all(monitor.get_task_status(r.id)["state"] == "RECEIVED" for r in later),
             20, 0.2, "countdown tasks received")
    for r in later:
        r.revoke()
    keys = Keys(settings.key_prefix)

    def counters() -> dict[tuple[str, ...], int]:
        got, _ = read_totals(redis_client, keys)
        return {(c.event, c.name, c.hostname, c.queue, c.exception): c.value for c in got}

    wait_for(lambda: counters().get(("revoked", "fleet.add", host, queue, "")) == 4, 30, 0.2,
             "revokes counted")
    wait_for(lambda: counters().get(("rejected", "_unknown", host, queue, "")) == 2, 15, 0.2,
             "unknown tasks counted")
    time.sleep(1.0)  # any double count would arrive within a few flush intervals
    got = counters()
    # sent: by this client, and the 6 retries re-published by the worker's pool child (on
    # this machine too, so under the same publisher host).
    sent = {k[1]: v for k, v in got.items() if k[0] == "sent" and k[2:] == (me, queue, "")}
    assert sent == {"fleet.add": 24, "fleet.fail": 5, "fleet.retry_then_succeed": 3 + 6,
                    "fleet.no_such_task": 2}
    expected = {
        ("received", "fleet.add", host, queue, ""): 24,
        ("received", "fleet.fail", host, queue, ""): 5,
        ("received", "fleet.retry_then_succeed", host, queue, ""): 9,
        ("started", "fleet.add", host, queue, ""): 20,
        ("started", "fleet.fail", host, queue, ""): 5,
        ("started", "fleet.retry_then_succeed", host, queue, ""): 9,
        ("succeeded", "fleet.add", host, queue, ""): 20,
        ("succeeded", "fleet.retry_then_succeed", host, queue, ""): 3,
        ("failed", "fleet.fail", host, queue, "ValueError"): 5,
        ("retried", "fleet.retry_then_succeed", host, queue, ""): 6,
        ("revoked", "fleet.add", host, queue, ""): 4,
        ("rejected", "_unknown", host, queue, ""): 2,
    }
    assert {k: v for k, v in got.items() if k[0] != "sent"} == expected
    assert all("None" not in k for k in got)
    _, hists = read_totals(redis_client, keys)
    runtime = {h.name: h.count for h in hists if h.metric == "runtime"}
    assert runtime == {"fleet.add": 20, "fleet.fail": 5, "fleet.retry_then_succeed": 9}
    wait = {h.name: h.count for h in hists if h.metric == "queue_wait"}
    assert wait == {"fleet.add": 20, "fleet.fail": 5, "fleet.retry_then_succeed": 9}
    assert all(h.buckets[-1][1] == h.count and h.sum >= 0 for h in hists)

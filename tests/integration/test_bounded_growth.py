"""Core defect 8, on real workers: what producers send cannot grow Warden's keyspace."""

from __future__ import annotations

import uuid

from celery_warden.keys import Keys
from celery_warden.read.monitor import CeleryMonitor
from tests.support import WorkerProcess, client_app, wait_for


def test_unknown_task_names_create_no_names_and_no_buckets(settings, workers, redis_client):
    """Any producer can send any task name; an unregistered one is counted (stats, DLQ) but
    adds no task name to the index and no metric bucket."""
    workers.append(WorkerProcess(settings).start())
    app = client_app(settings)
    keys = Keys(settings.key_prefix)
    try:
        names = [f"nobody.registered.{uuid.uuid4().hex}" for _ in range(3)]
        for name in names:
            app.send_task(name, (1,))
        monitor = CeleryMonitor(settings)
        wait_for(lambda: monitor.get_recorder_stats().get("unknown") == 3, 20,
                 message="three unknown tasks counted")
        assert app.send_task("fleet.add", (1, 1)).get(timeout=30) == 2
        wait_for(lambda: "fleet.add" in monitor.task_names(), 10, message="fleet.add indexed")
        assert not set(names) & set(monitor.task_names())
        for name in names:
            assert list(redis_client.scan_iter(match=keys.minute_bucket(name, 0)[:-1] + "*")) \
                == []
    finally:
        app.close()


def test_a_breaker_name_from_a_message_header_is_not_created(settings, workers,
                                                             redis_client):
    """`warden={"circuit_breaker": name}` in a message may only name a breaker the worker's
    code declares: an unknown one is ignored (the task runs, a warning is logged) instead of
    adding a breaker to the fleet's registry and store for ever."""
    worker = WorkerProcess(settings, app="tests.apps.resilience").start()
    workers.append(worker)
    app = client_app(settings)
    keys = Keys(settings.key_prefix)
    try:
        made_up = f"made-up-{uuid.uuid4().hex[:8]}"
        result = app.send_task("resilience.echo", ("hi",),
                               headers={"warden_options": {"circuit_breaker": made_up}})
        assert result.get(timeout=30) == "hi"
        declared = app.send_task("resilience.echo", ("ok",),
                                 headers={"warden_options": {"circuit_breaker": "dependency"}})
        assert declared.get(timeout=30) == "ok"
        assert made_up not in redis_client.zrange(keys.breakers, 0, -1)
        assert "dependency" in redis_client.zrange(keys.breakers, 0, -1)
        assert not redis_client.exists(keys.breaker(made_up), keys.breaker_window(made_up))
        wait_for(lambda: made_up in worker.log(), 10, message="a warning naming the breaker")
    finally:
        app.close()

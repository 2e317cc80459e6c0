"""Fleet-wide rate limits measured at a real HTTP dependency (its own timestamps)."""

from __future__ import annotations

import pytest

from celery_warden import CeleryMonitor
from tests.conftest import make_settings
from tests.dependency import FlakyServer
from tests.support import WorkerProcess, client_app, delete_prefix, wait_for

pytestmark = pytest.mark.slow

APP = "tests.apps.resilience"


def measured_rate(times: list[float]) -> float:
    """Starts per second between the first and the last start."""
    return (len(times) - 1) / (times[-1] - times[0])


def test_fleet_rate_limit_holds_across_four_processes(settings, workers):
    """``fleet_rate_limit="20/s"``, 200 tasks on 2 workers x 2 children: all 200 complete, none
    failed or retried, and the rate the dependency sees is within 10% of 20/s."""
    workers += [WorkerProcess(settings, app=APP, name=n, concurrency=2).start()
                for n in ("a", "b")]
    app = client_app(settings)
    monitor = CeleryMonitor(settings, app=app)
    with FlakyServer() as server:
        results = [app.send_task("resilience.limited", (server.url, i)) for i in range(200)]
        assert sorted(r.get(timeout=120) for r in results) == list(range(200))
        times = server.times("/call")
    assert len(times) == 200
    rate = measured_rate(times)
    print(f"fleet rate limit 20/s: measured {rate:.2f}/s over {len(times)} starts")
    assert 18.0 <= rate <= 22.0, f"measured {rate:.2f}/s"
    hosts = {monitor.get_task_status(r.id)["worker"] for r in results[::10]}
    assert len(hosts) == 2, "both workers ran tasks"
    statuses = [monitor.get_task_status(r.id) for r in results[::7]]
    assert all(s["state"] == "SUCCESS" and s["retries"] == 0 for s in statuses)
    wait_for(lambda: monitor.get_fleet_primitives("10m")["rate_limits"]["deferred"] >= 150, 20,
             0.2, "rate-limit deferrals counted")
    perf = monitor.get_performance_stats("resilience.limited", "10m")
    assert perf["failure"] == 0 and perf["retry"] == 0 and perf["success"] == 200


def test_queue_rate_limit_from_settings(redis_url, workers):
    """``WARDEN_QUEUE_RATE_LIMITS="default=10/s"`` throttles every task on that queue,
    fleet-wide: 30 unlimited tasks reach the dependency at 10/s (within 10%)."""
    settings = make_settings(redis_url, WARDEN_QUEUE_RATE_LIMITS="default=10/s")
    env = {"WARDEN_QUEUE_RATE_LIMITS": "default=10/s"}
    try:
        workers += [WorkerProcess(settings, app=APP, name=n, concurrency=2, extra_env=env)
                    .start() for n in ("a", "b")]
        app = client_app(settings)
        with FlakyServer() as server:
            results = [app.send_task("resilience.call_inside", (server.url,)) for _ in range(30)]
            for r in results:
                r.get(timeout=120)
            times = server.times("/call")
        assert len(times) == 30
        assert 9.0 <= measured_rate(times) <= 11.0, f"measured {measured_rate(times):.2f}/s"
    finally:
        for w in workers:
            w.stop()
        import redis

        client = redis.Redis.from_url(redis_url)
        delete_prefix(client, f"{settings.key_prefix}:", settings.broker_key_prefix)
        client.close()


def test_celery_per_worker_rate_limit_still_works_on_warden_base_classes(settings, workers):
    """Celery's own ``rate_limit="5/s"`` (per worker process pool) on a ``BaseTask``: 10 tasks
    on one worker start no faster than 5/s (a lower bound, so a slow machine cannot fail it)."""
    workers.append(WorkerProcess(settings, app=APP, concurrency=2).start())
    app = client_app(settings)
    with FlakyServer() as server:
        results = [app.send_task("resilience.local_limited", (server.url, i)) for i in range(10)]
        assert sorted(r.get(timeout=60) for r in results) == list(range(10))
        times = server.times("/call")
    assert times[-1] - times[0] >= 9 / 5 * 0.8

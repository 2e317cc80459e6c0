"""The history ``warden serve`` samples, against real servers, real workers and real Redis:
queue depth piling up on a queue nobody consumes, workers going offline (clean stop and
SIGKILL) and coming back, one sampler however many replicas (and a take-over when its holder
dies), the retention sweep run from the same loop, and depth on RabbitMQ (its ready count).

Every server samples each second (``WARDEN_QUEUE_SAMPLE_INTERVAL=1``); workers beat each
second and go offline after 4 s without a beat (``tests.conftest.make_settings``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

from celery_warden import CeleryMonitor
from celery_warden.keys import Keys
from celery_warden.serve.tokens import TokenStore
from tests.api_server import ApiServer
from tests.conftest import make_settings
from tests.support import WorkerProcess, client_app, delete_prefix, wait_for

SAMPLE = {"WARDEN_QUEUE_SAMPLE_INTERVAL": "1"}


@pytest.fixture
def fleet(redis_url: str) -> Iterator[Any]:
    """Builds settings (own prefixes), a read token, and cleans up servers, workers, apps and
    keys it handed out."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    made: list[Any] = []
    closers: list[Any] = []

    class Fleet:
        def settings(self, **overrides: object) -> Any:
            s = make_settings(redis_url, **overrides)
            made.append(s)
            self.s = s
            self.keys = Keys(s.key_prefix)
            self.token = TokenStore(client, self.keys).create("reader", "read")[0]
            return s

        def server(self, **env: str) -> ApiServer:
            server = ApiServer(self.s, extra_env={**SAMPLE, **env})
            closers.append(server.stop)
            return server.start()

        def worker(self) -> WorkerProcess:
            worker = WorkerProcess(self.s, app="tests.apps.api", pool="solo", concurrency=1)
            closers.append(worker.stop)
            return worker

        def app(self) -> Any:
            app = client_app(self.s)
            closers.append(app.close)
            return app

        def get(self, server: ApiServer, path: str, **params: Any) -> Any:
            with server.client(self.token) as c:
                r = c.get(path, params=params)
            assert r.status_code == 200, (path, r.status_code, r.text[:500])
            return r.json()

    f = Fleet()
    f.redis = client
    try:
        yield f
    finally:
        for close in reversed(closers):
            close()
        for s in made:
            delete_prefix(client, f"{s.key_prefix}:", s.broker_key_prefix)
        client.close()


def test_depth_history_grows_on_a_queue_without_consumer(fleet):
    settings = fleet.settings()
    queue = f"{settings.queue_prefix}default"
    server = fleet.server()
    app = fleet.app()
    for i in range(5):
        app.send_task("api.add", (i, i), queue=queue)

    def points(window: str = "15m") -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], fleet.get(
            server, f"/api/v1/queues/{queue}/series", window=window)["points"])

    wait_for(lambda: any(p["depth"] == 5 for p in points()), 10, 0.2, "a sample of 5")
    for i in range(10):
        app.send_task("api.add", (i, i), queue=queue)
    wait_for(lambda: any(p["depth"] == 15 for p in points()), 10, 0.2, "a sample of 15")
    body = fleet.get(server, f"/api/v1/queues/{queue}/series", window="15m")
    assert body["resolution"] == "sample" and body["sample_interval_s"] == 1.0
    assert body["last_sample"] >= body["points"][-1]["ts"]
    assert body["sampler"].split(":")[1] == str(server.process.pid)
    depths = [p["depth"] for p in body["points"]]
    assert depths == sorted(depths), depths  # nobody consumes: it only grows
    assert depths[0] <= 5 and depths[-1] == 15
    piled = [p for p in body["points"] if p["depth"] >= 5]
    assert all(p["oldest_age_s"] is not None for p in piled)  # Redis broker: send stamps
    assert piled[-1]["oldest_age_s"] > piled[0]["oldest_age_s"]
    day = fleet.get(server, f"/api/v1/queues/{queue}/series", window="24h")
    assert day["resolution"] == "5m" and day["step_seconds"] == 300
    assert max(p["depth_max"] for p in day["points"]) == 15
    assert sum(p["samples"] for p in day["points"]) >= len(depths)
    with server.client(fleet.token) as c:
        assert c.get(f"/api/v1/queues/{queue}/series",
                     params={"window": "2d"}).status_code == 422
        assert c.get("/api/v1/queues/<nope>/series").status_code == 404


def _history(fleet: Any, server: ApiServer, host: str) -> list[dict[str, Any]]:
    """The worker's history; empty while the store has not seen it yet (a 404 right after the
    worker starts, before its first heartbeat is flushed)."""
    with server.client(fleet.token) as c:
        r = c.get(f"/api/v1/workers/{host}")
    if r.status_code == 404:
        return []
    assert r.status_code == 200, (host, r.status_code, r.text[:500])
    return cast(list[dict[str, Any]], r.json()["history"])


def _newest(fleet: Any, server: ApiServer, host: str, status: str, reason: str) -> Any:
    items = _history(fleet, server, host)
    return items and items[0]["status"] == status and items[0]["reason"] == reason and items[0]


def test_worker_transitions_stop_restart_and_kill(fleet):
    settings = fleet.settings()
    server = fleet.server()
    worker = fleet.worker().start()
    host = worker.hostname
    wait_for(lambda: _newest(fleet, server, host, "online", "started"), 10, 0.2, "started")

    stopped_at = time.time()
    worker.stop()
    down = wait_for(lambda: _newest(fleet, server, host, "offline", "shutdown"), 5, 0.2,
                    "a clean shutdown before the offline threshold")
    assert down["ts"] >= stopped_at - 1.5 and down["detected_at"] - stopped_at < 4.0
    listed = {w["hostname"]: w for w in fleet.get(server, "/api/v1/workers")["workers"]}
    assert listed[host]["status"] == "offline" and listed[host]["offline_since"] == down["at"]

    again = fleet.worker()
    again.hostname, again.cmd = host, worker.cmd  # the same worker, restarted
    again.start()
    wait_for(lambda: _newest(fleet, server, host, "online", "heartbeat"), 10, 0.2, "back")
    assert fleet.get(server, "/api/v1/workers")["workers"][0]["offline_since"] is None

    killed_at = time.time()
    again.kill()
    lost = wait_for(lambda: _newest(fleet, server, host, "offline", "lost"),
                    settings.offline_after + 4, 0.2, "lost after the offline threshold")
    # At the threshold (last beat + 4 s), noticed within one sample interval (+ a beat).
    assert killed_at - 1.5 + settings.offline_after <= lost["ts"] <= killed_at + 4.5
    assert lost["detected_at"] - lost["ts"] <= 2.5

    detail = fleet.get(server, f"/api/v1/workers/{host}")
    assert detail["offline_since"] == lost["at"] and detail["active_tasks"] is None
    assert [(h["status"], h["reason"]) for h in detail["history"]] == [
        ("offline", "lost"), ("online", "heartbeat"), ("offline", "shutdown"),
        ("online", "started")]
    fleet_wide = fleet.get(server, "/api/v1/workers/history", limit=3)
    assert [h["reason"] for h in fleet_wide["items"]] == ["lost", "heartbeat", "shutdown"]
    assert fleet_wide["max_count"] == settings.worker_history_max


def _gaps(fleet: Any, raw: str) -> list[float]:
    """Seconds between successive samples of one queue."""
    times = [float(m.split(":")[0]) for m in fleet.redis.lrange(raw, 0, -1)]
    return [b - a for a, b in itertools.pairwise(times)]


def _count(fleet: Any, raw: str, since: float, until: float) -> int:
    """Samples of one queue taken between two times."""
    times = [float(m.split(":")[0]) for m in fleet.redis.lrange(raw, 0, -1)]
    return sum(1 for t in times if since <= t <= until)


def test_two_replicas_one_sampler_and_take_over(fleet):
    settings = fleet.settings()
    first, second = fleet.server(), fleet.server()
    raw = fleet.keys.depth_samples(f"{settings.queue_prefix}default")
    both_up = time.time()
    time.sleep(5)
    assert 4 <= _count(fleet, raw, both_up, both_up + 5) <= 6  # one a second, not two
    gaps = _gaps(fleet, raw)
    assert min(gaps) >= 0.85, gaps       # interval minus half a tick: never doubled
    owner = fleet.redis.get(fleet.keys.sampler_lease)
    pids = {first.process.pid: first, second.process.pid: second}
    holder = pids[int(owner.split(":")[1])]
    other = second if holder is first else first

    holder.process.kill()  # SIGKILL: no release, the lease must lapse
    holder.stop()
    killed_at = time.time()
    wait_for(lambda: str(other.process.pid) in (fleet.redis.get(fleet.keys.sampler_lease) or ""),
             2.0, 0.05, "the other replica takes the lease within one interval")
    wait_for(lambda: _count(fleet, raw, killed_at, float("inf")) >= 2, 4, 0.1,
             "samples again")
    gaps = _gaps(fleet, raw)
    assert min(gaps) >= 0.85 and max(gaps) < 3.0, gaps


def test_the_server_runs_the_retention_sweep(fleet):
    fleet.settings(WARDEN_SUCCESS_RECORDS="none", WARDEN_SERVE_RETENTION_INTERVAL=1)
    server = fleet.server()
    fleet.worker().start()
    app = fleet.app()
    result = app.send_task("api.add", (2, 3))
    assert result.get(timeout=20) == 5
    monitor = CeleryMonitor(fleet.s, app=app)
    try:
        wait_for(lambda: monitor.get_task_status(result.id)["state"] == "SUCCESS", 10, 0.1,
                 "the record")
        # The sweep stays GRACE (30 s) behind the newest update, then deletes it.
        wait_for(lambda: monitor.get_task_status(result.id)["state"] != "SUCCESS", 45, 0.5,
                 "the plain success swept away")
        assert fleet.redis.hget(fleet.keys.sampler_state, "last_sweep")
        assert monitor.get_performance_stats("api.add", "5m")["success"] == 1  # aggregates
    finally:
        monitor.redis.close()
    assert server.process.poll() is None


def test_depth_history_on_rabbitmq(redis_url, rabbitmq_url):
    from tests.integration.test_rabbitmq import client_apps, rabbit_fleet

    with rabbit_fleet(redis_url, rabbitmq_url) as settings, client_apps() as make:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        token = TokenStore(client, Keys(settings.key_prefix)).create("r", "read")[0]
        client.close()
        queue = f"{settings.queue_prefix}default"
        app = make(settings)
        for i in range(6):
            app.send_task("api.add", (i, i), queue=queue)
        with ApiServer(settings, extra_env=SAMPLE) as server, server.client(token) as c:

            def points() -> list[dict[str, Any]]:
                r = c.get(f"/api/v1/queues/{queue}/series", params={"window": "15m"})
                assert r.status_code == 200, r.text[:300]
                return cast(list[dict[str, Any]], r.json()["points"])

            found = wait_for(lambda: [p for p in points() if p["depth"] == 6], 15, 0.2,
                             "RabbitMQ's ready count sampled")
            assert found[-1]["oldest_age_s"] is None  # not peeked on RabbitMQ

"""`warden serve`'s /metrics and /api/v1/stream against a live fleet: a real worker runs a known
workload, a real server process is scraped with a metrics token, the scrape is parsed with
prometheus_client's parser and checked for exact counts, the scopes are enforced, every metric
the deploy/ assets query exists, and an SSE client sees a task's state change and the KPIs."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.keys import Keys
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.serve.tokens import TokenStore
from celery_warden.settings import WardenSettings
from tests.api_server import ApiServer
from tests.support import WorkerProcess, client_app, wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_METRIC = re.compile(r"\b((?:celery|warden)_[a-z_]+)\b")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total")
#: Documented in docs/metrics.md as not exported (celery-exporter's broker-inspection extras).
ABSENT: frozenset[str] = frozenset()


@pytest.fixture
def servers() -> Iterator[list[ApiServer]]:
    started: list[ApiServer] = []
    yield started
    for s in started:
        s.stop()


def tokens(settings: WardenSettings, client: redis.Redis) -> dict[str, str]:
    store = TokenStore(client, Keys(settings.key_prefix))
    return {scope: store.create(f"test-{scope}", scope)[0]
            for scope in ("read", "metrics", "admin")}


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def total(samples: list, sample: str, **labels: str) -> float:
    """Sum of the samples named ``sample`` whose labels include ``labels``."""
    return sum(s.value for s in samples if s.name == sample
               and all(s.labels.get(k) == v for k, v in labels.items()))


def deploy_metric_names() -> set[str]:
    """Every celery_*/warden_* series the Prometheus rules and the Grafana dashboard query,
    as family names (histogram and counter suffixes removed)."""
    text = (DEPLOY / "prometheus" / "alerts.yaml").read_text()
    text += json.dumps(json.loads((DEPLOY / "grafana" / "warden.json").read_text()))
    names = set()
    for word in _METRIC.findall(text):
        for suffix in _SUFFIXES:
            if word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        names.add(word)
    return {n for n in names if n not in ("celery_", "warden_") and not n.endswith("_")}


def metrics_list() -> list[tuple[str, str, list[str]]]:
    """deploy/metrics.txt: ``name type labels`` per line (what /metrics must export)."""
    rows = []
    for line in (DEPLOY / "metrics.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, kind, *rest = line.split()
            rows.append((name, kind, rest[0].split(",") if rest else []))
    return rows


def test_metrics_after_a_known_workload(settings: WardenSettings, redis_client: redis.Redis,
                                        workers: list[WorkerProcess],
                                        servers: list[ApiServer]) -> None:
    """4 adds, 2 failures, 1 task retried once then succeeding: the scrape says exactly that,
    per name/hostname/queue, with the failure's exception class; the worker is up and idle;
    the default queue is empty; 3 DLQ entries are counted by reason; a scrape needs the metrics
    scope (401 without a token, 403 with a read token)."""
    worker = WorkerProcess(settings)
    workers.append(worker.start())
    host = worker.hostname.partition("@")[2]
    queue = f"{settings.queue_prefix}default"
    app = client_app(settings)
    try:
        ids = [app.send_task("fleet.add", (i, i)).id for i in range(4)]
        ids += [app.send_task("fleet.fail", ("boom",)).id for _ in range(2)]
        ids.append(app.send_task("fleet.retry_then_succeed", (1,)).id)
        monitor = CeleryMonitor(settings, app=app)
        try:
            wait_for(lambda: all(monitor.get_task_status(i)["state"] in ("SUCCESS", "FAILURE")
                                 for i in ids), 60, 0.2, "the workload to finish")
        finally:
            monitor.redis.close()
    finally:
        app.close()
    dlq, now = DeadLetterQueue(settings, client=redis_client), time.time()
    for i, reason in enumerate(("max_retries", "max_retries", "time_limit")):
        dlq.add(DLQEntry(id=f"e-{i}", task_id=f"e-{i}", reason=reason, name="fleet.fail",
                         first_failed=now, last_failed=now))
    secret = tokens(settings, redis_client)
    server = ApiServer(settings, app=None)
    servers.append(server.start())

    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        refused = http.get("/metrics", headers={"Authorization": f"Bearer {secret['read']}"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert http.get("/metrics", headers={
            "Authorization": f"Bearer {secret['admin']}"}).status_code == 200

        def scrape() -> dict[str, list]:
            r = http.get("/metrics", headers={"Authorization": f"Bearer {secret['metrics']}"})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
            return families(r.text)

        def settled() -> dict[str, list] | None:  # the worker's last flush may still be due
            got = scrape()
            done = total(got["celery_task_succeeded"], "celery_task_succeeded_total")
            return got if done == 5 else None

        got = wait_for(settled, 15, 0.3, "the workload's counters")

    on = {"hostname": host, "queue_name": queue}
    assert total(got["celery_task_succeeded"], "celery_task_succeeded_total",
                 name="fleet.add", **on) == 4
    assert total(got["celery_task_succeeded"], "celery_task_succeeded_total",
                 name="fleet.retry_then_succeed", **on) == 1
    assert total(got["celery_task_failed"], "celery_task_failed_total", name="fleet.fail",
                 exception="ValueError", **on) == 2
    assert total(got["celery_task_failed"], "celery_task_failed_total") == 2
    assert total(got["celery_task_retried"], "celery_task_retried_total",
                 name="fleet.retry_then_succeed", **on) == 1
    assert total(got["celery_task_received"], "celery_task_received_total",
                 name="fleet.add", **on) == 4
    assert total(got["celery_task_started"], "celery_task_started_total",
                 name="fleet.add", **on) == 4
    assert total(got["celery_task_sent"], "celery_task_sent_total", name="fleet.add") == 4
    assert total(got["celery_task_sent"], "celery_task_sent_total", name="fleet.fail") == 2
    assert total(got["celery_task_runtime"], "celery_task_runtime_count",
                 name="fleet.add", **on) == 4
    assert total(got["celery_task_runtime"], "celery_task_runtime_bucket",
                 name="fleet.add", le="+Inf", **on) == 4
    assert total(got["celery_task_queue_wait_time"], "celery_task_queue_wait_time_count",
                 name="fleet.add", **on) == 4
    assert total(got["celery_worker_up"], "celery_worker_up", hostname=host) == 1
    assert total(got["celery_worker_tasks_active"], "celery_worker_tasks_active",
                 hostname=host) == 0
    assert [s.value for s in got["celery_queue_length"]
            if s.labels["queue_name"] == queue] == [0]
    assert all(s.labels.get("hostname") != "None" for f in got.values() for s in f)
    assert total(got["warden_exporter_source_up"], "warden_exporter_source_up") == 3
    assert {s.labels["reason"]: s.value for s in got["warden_dlq_size"]} == {
        "max_retries": 2, "time_limit": 1}

    missing = deploy_metric_names() - set(got) - ABSENT
    assert not missing, f"deploy/ queries metrics /metrics does not export: {sorted(missing)}"
    for name, kind, labels in metrics_list():
        family = name[: -len("_total")] if kind == "counter" else name
        assert family in got, f"deploy/metrics.txt lists {name}, /metrics lacks it"
        for sample in got[family]:
            assert set(labels) <= set(sample.labels), (name, sample)


def test_metrics_open_without_a_token(settings_factory, servers: list[ApiServer]) -> None:
    """WARDEN_METRICS_OPEN=true: Prometheus scrapes without a token (reads stay closed)."""
    settings = settings_factory(WARDEN_METRICS_OPEN=True)
    server = ApiServer(settings, app=None)
    servers.append(server.start())
    with httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.get("/metrics")
        assert r.status_code == 200
        assert "celery_worker_up" in families(r.text)
        assert http.get("/api/v1/stream").status_code == 401


def test_stream_delivers_a_task_state_change_and_kpis(
        settings: WardenSettings, redis_client: redis.Redis, workers: list[WorkerProcess],
        servers: list[ApiServer]) -> None:
    """An SSE client connected before a task is sent sees that task's state change and a
    kpis event; the stream needs the read scope."""
    workers.append(WorkerProcess(settings).start())
    secret = tokens(settings, redis_client)
    server = ApiServer(settings, app=None)
    servers.append(server.start())
    seen: dict[str, list[dict]] = {"task": [], "kpis": []}
    app = client_app(settings)
    try:
        with httpx.Client(base_url=server.url, timeout=httpx.Timeout(30, read=20)) as http:
            assert http.get("/api/v1/stream").status_code == 401
            headers = {"Authorization": f"Bearer {secret['read']}"}
            with http.stream("GET", "/api/v1/stream", headers=headers) as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                task_id = app.send_task("fleet.sleep", (0.3,)).id
                deadline = time.monotonic() + 30
                event = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[len("event: "):]
                    elif line.startswith("data: ") and event in seen:
                        seen[event].append(json.loads(line[len("data: "):]))
                    mine = [t for t in seen["task"] if t["id"] == task_id]
                    if seen["kpis"] and any(t["state"] == "SUCCESS" for t in mine):
                        break
                    assert time.monotonic() < deadline, f"no state change seen: {seen}"
    finally:
        app.close()
    mine = [t for t in seen["task"] if t["id"] == task_id]
    assert mine[-1] == {"id": task_id, "name": "fleet.sleep", "state": "SUCCESS",
                        "queue": f"{settings.queue_prefix}default", "worker": mine[-1]["worker"],
                        "ts": mine[-1]["ts"]}
    assert mine[-1]["worker"].endswith("@test")
    assert "task_success_rate" in seen["kpis"][0] and "ts" in seen["kpis"][0]


def test_a_server_with_listeners_still_stops(settings: WardenSettings,
                                             redis_client: redis.Redis,
                                             servers: list[ApiServer]) -> None:
    """SIGTERM while an SSE client listens: the stream never ends by itself, so the server
    bounds its graceful shutdown and exits by itself instead of waiting for the client."""
    secret = tokens(settings, redis_client)
    server = ApiServer(settings, app=None)
    servers.append(server.start())
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(f"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {secret['read']}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert server.process is not None
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(15)
        assert time.monotonic() - started < 15
    assert "Application shutdown complete" in server.log()

"""The API against a live fleet: a real worker, a real ``warden serve``, real Redis.

One worker, one server and one workload for the module (each test reads or acts on its own
tasks): the spec's six endpoints, task search and detail (timeline, workflow), submit / retry /
revoke, the DLQ, queues, workers, breakers, alerts, autoscaling — and hostile input: markup and
``[i]`` in error text, a 10 KB message, secrets in arguments, unknown and malformed ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import group

from celery_warden import CeleryMonitor, Warden
from celery_warden.keys import Keys
from celery_warden.serve.tokens import TokenStore
from tests.api_server import ApiServer
from tests.conftest import make_settings
from tests.support import WorkerProcess, client_app, delete_prefix, wait_for

N_ADD = 8
HOSTILE = "<script>alert(1)</script> [i] [/red] password=hunter2 " + "x" * 10_000
SECRET = "sk-live-6f1d2e"


@pytest.fixture(scope="module")
def live(redis_url: str) -> Iterator[SimpleNamespace]:
    settings = make_settings(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = TokenStore(client, Keys(settings.key_prefix))
    tokens = {s: store.create(f"t-{s}", s)[0] for s in ("read", "operate", "admin")}
    worker = WorkerProcess(settings, app="tests.apps.api").start()
    server = ApiServer(settings, extra_env={"WARDEN_QUEUE_SAMPLE_INTERVAL": "1"})
    app = client_app(settings)
    try:
        server.start()
        adds = [app.send_task("api.add", (i, i)) for i in range(N_ADD)]
        boom = app.send_task("api.explode", (HOSTILE,), {"api_key": SECRET})
        parent = app.send_task("api.parent", (3,))
        assert [r.get(timeout=30) for r in adds] == [2 * i for i in range(N_ADD)]
        boom.get(timeout=30, propagate=False)
        assert parent.get(timeout=30) == 3
        monitor = CeleryMonitor(settings, app=app)
        wait_for(lambda: monitor.get_performance_stats("api.add", "5m")["success"] >= N_ADD + 3
                 and monitor.dlq.size() >= 1, 20, 0.1, "workload recorded")
        wait_for(lambda: monitor.get_worker_health()["online"] >= 1, 20, 0.1, "heartbeat")
        monitor.redis.close()
        yield SimpleNamespace(settings=settings, worker=worker, server=server, app=app,
                              tokens=tokens, adds=adds, boom=boom, parent=parent)
    finally:
        server.stop()
        worker.stop()
        Warden.installed_on(app).uninstall()  # type: ignore[union-attr]
        app.close()
        delete_prefix(client, f"{settings.key_prefix}:", settings.broker_key_prefix)
        client.close()


def get(live: SimpleNamespace, path: str, scope: str = "read", **params: Any) -> Any:
    with live.server.client(live.tokens[scope]) as c:
        r = c.get(path, params=params)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    assert r.headers["content-type"] == "application/json"
    return r.json()


def post(live: SimpleNamespace, path: str, scope: str = "operate", expect: int = 200,
         **kw: Any) -> Any:
    with live.server.client(live.tokens[scope]) as c:
        r = c.post(path, **kw)
    assert r.status_code == expect, (path, r.status_code, r.text[:500])
    return r.json()


# -- the spec's six ----------------------------------------------------------------------------
def test_health_is_200_with_a_worker_online(live):
    body = get(live, "/api/v1/monitoring/health")
    assert body["status"] == "ok" and body["store"] and body["broker"]
    assert body["workers_online"] == 1 and body["reasons"] == []


def test_spec_reads_workers_task_performance_errors(live):
    workers = get(live, "/api/v1/monitoring/workers")
    assert [w["hostname"] for w in workers["workers"]] == [live.worker.hostname]
    assert workers["online"] == 1 and workers["workers"][0]["status"] == "online"
    task = get(live, f"/api/v1/monitoring/tasks/{live.adds[3].id}")
    assert task["state"] == "SUCCESS" and task["name"] == "api.add" and task["known"]
    assert task["worker"] == live.worker.hostname and task["runtime"] is not None
    unknown = get(live, "/api/v1/monitoring/tasks/no-such-task")
    assert unknown["known"] is False and unknown["state"] == "PENDING"
    perf = get(live, "/api/v1/monitoring/performance", task_name="api.add", window="15m")
    assert perf["success"] == N_ADD + 3 and perf["failure"] == 0  # 3 from api.parent
    assert perf["p50"] is not None and perf["window"] == "15m"
    errors = get(live, "/api/v1/monitoring/errors", limit=10)
    assert errors["limit"] == 10
    [group] = [g for g in errors["errors"] if g["exc_type"] == "ValueError"]
    assert live.boom.id in group["recent_task_ids"] and group["task_names"] == {"api.explode": 1}


def test_spec_dlq_process_needs_operate_and_counts(live):
    with live.server.client(live.tokens["read"]) as c:
        assert c.post("/api/v1/monitoring/dlq/process").status_code == 403
    counts = post(live, "/api/v1/monitoring/dlq/process", params={"max_items": 1,
                                                                   "requeue": "false"})
    assert set(counts) >= {"requeued", "parked", "claimed", "failed"}
    assert counts["claimed"] == counts["requeued"] + counts["parked"] + counts["failed"]
    assert counts["requeued"] == 0  # requeue=false parks what it claims
    audit = get(live, "/api/v1/audit", scope="admin", action="dlq.process")["items"]
    assert audit and json.loads(audit[0]["params"]) == {"max_items": 1, "requeue": False}


# -- tasks -------------------------------------------------------------------------------------
def test_task_search_filters_and_cursor(live):
    """Cursor pages of 3 walk every api.add exactly once, newest first; filters narrow."""
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params = {"name": "api.add", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = get(live, "/api/v1/tasks", **params)
        seen += [i["task_id"] for i in page["items"]]
        assert all(i["name"] == "api.add" for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == N_ADD + 3
    assert {r.id for r in live.adds} <= set(seen)
    failed = get(live, "/api/v1/tasks", state="failure")["items"]
    assert [i["task_id"] for i in failed] == [live.boom.id]
    assert failed[0]["error"]["type"] == "ValueError"
    prefix = live.adds[0].id[:8]
    assert live.adds[0].id in [i["task_id"] for i in
                               get(live, "/api/v1/tasks", id_prefix=prefix)["items"]]
    assert [i["task_id"] for i in get(live, "/api/v1/tasks", q="SCRIPT>alert")["items"]] == [
        live.boom.id]
    assert get(live, "/api/v1/tasks", worker=live.worker.hostname, limit=200)["items"]
    assert get(live, "/api/v1/tasks", since="2999-01-01T00:00:00Z")["items"] == []
    assert get(live, "/api/v1/tasks", until=0)["items"] == []


def test_task_detail_timeline_and_workflow(live):
    detail = get(live, f"/api/v1/tasks/{live.parent.id}")
    events = [e["event"] for e in detail["timeline"]]
    assert events[:1] == ["sent"] and events[-1] == "succeeded"
    assert {"received", "started"} <= set(events)
    assert [e["ts"] for e in detail["timeline"]] == sorted(e["ts"] for e in detail["timeline"])
    wf = detail["workflow"]
    assert wf["parent"] is None and wf["is_root"] and wf["children_complete"]
    assert len(wf["children"]) == 3 and {c["name"] for c in wf["children"]} == {"api.add"}
    child = get(live, f"/api/v1/tasks/{wf['children'][0]['task_id']}")["workflow"]
    assert child["parent"]["task_id"] == live.parent.id and child["parent"]["name"] == "api.parent"
    assert child["root"]["task_id"] == live.parent.id
    failed = get(live, f"/api/v1/tasks/{live.boom.id}")
    assert failed["timeline"][-1]["event"] == "dead_lettered"
    assert "failed" in [e["event"] for e in failed["timeline"]]
    assert failed["dlq_entry"] == failed["timeline"][-1]["entry"]


def test_group_members_show_their_group(live):
    """A member of a group (``celery.group``) names the group id in its workflow."""
    sigs = [live.app.signature("api.add", (i, 100)) for i in range(2)]
    result = group(sigs).apply_async()
    assert result.get(timeout=30) == [100, 101]
    for member in result.results:
        wait_for(lambda m=member: get(live, f"/api/v1/monitoring/tasks/{m.id}")["state"]
                 == "SUCCESS", 20, 0.1, "group member recorded")
        assert get(live, f"/api/v1/tasks/{member.id}")["workflow"]["group"] == result.id


def test_submit_retry_and_revoke(live):
    created = post(live, "/api/v1/tasks", expect=201,
                   json={"name": "api.add", "args": [20, 22], "priority": 3})
    task_id = created["task_id"]
    wait_for(lambda: get(live, f"/api/v1/monitoring/tasks/{task_id}")["state"] == "SUCCESS",
             20, 0.2, "submitted task done")
    again = post(live, f"/api/v1/tasks/{task_id}/retry", expect=201)
    assert again["via"] == "record" and again["task_id"] != task_id
    wait_for(lambda: get(live, f"/api/v1/monitoring/tasks/{again['task_id']}")["state"]
             == "SUCCESS", 20, 0.2, "retried task done")
    assert get(live, f"/api/v1/tasks/{again['task_id']}")["args"] == [20, 22]
    # The dead-lettered task is retried from its DLQ entry (its real arguments).
    from_dlq = post(live, f"/api/v1/tasks/{live.boom.id}/retry", expect=201)
    assert from_dlq["via"] == "dlq" and from_dlq["task_id"].endswith("-r1")
    later = post(live, "/api/v1/tasks", expect=201,
                 json={"name": "api.sleep", "args": [0.1], "countdown": 60})
    revoked = post(live, f"/api/v1/tasks/{later['task_id']}/revoke", params={"terminate": True})
    assert revoked["terminate"] is True
    with live.server.client(live.tokens["operate"]) as c:
        unknown = c.post("/api/v1/tasks", json={"name": "api.<script>", "args": []})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_task"
        assert c.post("/api/v1/tasks", json={"name": "api.add", "queue": "nope"}
                      ).status_code == 404
        assert c.post("/api/v1/tasks", json={"name": "api.add", "args": "1,2"}
                      ).status_code == 422
        assert c.post("/api/v1/tasks/no-such-task/retry").status_code == 404
        assert c.post("/api/v1/tasks/no-such-task/revoke").status_code == 404
    actions = [e["action"] for e in get(live, "/api/v1/audit", scope="admin",
                                        who="t-operate")["items"]]
    assert {"task.submit", "task.retry", "task.revoke"} <= set(actions)


# -- hostile input and masking -----------------------------------------------------------------
def test_hostile_text_is_returned_as_data_cut_and_masked(live):
    """Markup and [i] come back literally (JSON, not HTML), the 10 KB message is cut, the
    password in it and the secret kwarg are masked in every answer that shows them."""
    task = get(live, f"/api/v1/tasks/{live.boom.id}")
    message = task["error"]["message"]
    assert message.startswith("<script>alert(1)</script> [i] [/red] password=")
    assert "hunter2" not in message and len(message) < 5_000
    entry = get(live, f"/api/v1/dlq/{task['dlq_entry']}")
    assert entry["kwargs"] == {"api_key": "[redacted]"}
    assert "<script>" in entry["exc_message"] and "[i]" in entry["exc_message"]
    assert len(entry["traceback"]) <= 16_000
    fingerprint = next(g["fingerprint"] for g in get(live, "/api/v1/errors")["items"]
                       if g["exc_type"] == "ValueError")
    group = get(live, f"/api/v1/errors/{fingerprint}")
    assert sum(p["count"] for p in group["series"]) >= 1
    for path in ("/api/v1/tasks", f"/api/v1/tasks/{live.boom.id}", "/api/v1/dlq",
                 f"/api/v1/dlq/{task['dlq_entry']}", "/api/v1/errors",
                 f"/api/v1/errors/{fingerprint}", "/api/v1/monitoring/errors",
                 f"/api/v1/monitoring/tasks/{live.boom.id}"):
        with live.server.client(live.tokens["read"]) as c:
            text = c.get(path).text
        assert SECRET not in text and "hunter2" not in text, path


def test_unknown_and_malformed_ids_are_clear_json_errors(live):
    paths = ["/api/v1/tasks/no-such-id", "/api/v1/dlq/no-such-id", "/api/v1/errors/nope",
             "/api/v1/workers/nobody@nowhere", "/api/v1/breakers/never-used",
             "/api/v1/task-types/no.such.task", "/api/v1/queues/nope/series",
             "/api/v1/tasks/%3Cscript%3E", "/api/v1/tasks/..%2F..%2Fetc%2Fpasswd"]
    with live.server.client(live.tokens["admin"]) as c:
        for path in paths:
            r = c.get(path)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["error"]["code"] == "not_found"
        long = c.get("/api/v1/tasks/" + "a" * 500)
        assert long.status_code == 422 and "Traceback" not in long.text
        for path in ("/api/v1/dlq/no-such-id/requeue", "/api/v1/workers/nobody/shutdown",
                     "/api/v1/queues/nope/purge?confirm=nope"):
            assert c.post(path).status_code == 404, path
        assert c.post("/api/v1/workers/nobody/pool", json={"grow": 1, "shrink": 1}
                      ).status_code == 422


# -- DLQ ---------------------------------------------------------------------------------------
def test_dlq_list_filters_actions_and_bulk(live):
    failed = [live.app.send_task("api.explode", (f"dlq case {i}",)) for i in range(3)]
    for r in failed:
        r.get(timeout=30, propagate=False)
    wait_for(lambda: get(live, "/api/v1/dlq/count", task_name="api.explode")["matched"] >= 4,
             20, 0.2, "entries dead-lettered")
    page = get(live, "/api/v1/dlq", task_name="api.explode", reason="exception", limit=2)
    assert len(page["items"]) == 2 and page["next_cursor"] == "2"
    rest = get(live, "/api/v1/dlq", task_name="api.explode", cursor=page["next_cursor"])
    assert {e["id"] for e in page["items"]}.isdisjoint(e["id"] for e in rest["items"])
    assert get(live, "/api/v1/dlq/count", task_name="api.nothing")["matched"] == 0
    stats = get(live, "/api/v1/dlq/stats")
    assert stats["size"] >= 4
    one = failed[0].id
    assert post(live, f"/api/v1/dlq/{one}/park")["action"] == "park"
    assert get(live, f"/api/v1/dlq/{one}")["status"] == "parked"
    requeued = post(live, f"/api/v1/dlq/{one}/requeue")
    assert requeued["task_id"].startswith(one)
    with live.server.client(live.tokens["operate"]) as c:
        assert c.post(f"/api/v1/dlq/{failed[1].id}/discard").status_code == 403
        assert c.post("/api/v1/dlq/discard", params={"task_name": "x"}).status_code == 403
    assert post(live, f"/api/v1/dlq/{failed[1].id}/discard", scope="admin")["action"] == "discard"
    with live.server.client(live.tokens["read"]) as c:
        assert c.get(f"/api/v1/dlq/{failed[1].id}").status_code == 404
    matched = get(live, "/api/v1/dlq/count", task_name="api.explode", status="pending")
    bulk = post(live, "/api/v1/dlq/park", params={"task_name": "api.explode",
                                                  "status": "pending"})
    assert bulk["matched"] == matched["matched"] and bulk["done"] == bulk["matched"]
    assert get(live, "/api/v1/dlq/count", task_name="api.explode", status="pending"
               )["matched"] == 0


# -- queues, workers, breakers, alerts, autoscaling ----------------------------------------------
def test_queues_purge_and_series(live):
    rows = {q["name"]: q for q in get(live, "/api/v1/queues")["items"]}
    default = f"{live.settings.queue_prefix}default"
    assert rows[default]["consumers"] == 1 and rows[default]["depth"] is not None
    with live.server.client(live.tokens["admin"]) as c:
        refused = c.post(f"/api/v1/queues/{default}/purge", params={"confirm": "default"})
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "confirmation_required"
    with live.server.client(live.tokens["operate"]) as c:
        assert c.post(f"/api/v1/queues/{default}/purge",
                      params={"confirm": default}).status_code == 403
    purged = post(live, f"/api/v1/queues/{default}/purge", scope="admin",
                  params={"confirm": default})
    assert purged == {"queue": default, "purged": purged["purged"]}
    scale = get(live, "/api/v1/autoscale")
    assert default in scale["queues"] and scale["queues"][default]["desired_processes"] >= 1
    one = get(live, "/api/v1/autoscale", queue="default")
    assert "desired_processes" in one
    series = wait_for(lambda: (s := get(live, f"/api/v1/queues/{default}/series"))
                      and len(s["points"]) >= 2 and s, 10, 0.2, "two depth samples")
    assert series["resolution"] == "sample" and series["points"][-1]["depth"] >= 0


def test_worker_detail_and_pool(live):
    detail = get(live, f"/api/v1/workers/{live.worker.hostname}")
    assert detail["status"] == "online" and detail["active_tasks"] == []
    assert detail["active_tasks_detail"] is None
    with live.server.client(live.tokens["operate"]) as c:
        path = f"/api/v1/workers/{live.worker.hostname}/pool"
        assert c.post(path, json={"grow": 1}).status_code == 403
    grown = post(live, f"/api/v1/workers/{live.worker.hostname}/pool", scope="admin",
                 json={"grow": 1})
    assert "ok" in grown["reply"]
    shrunk = post(live, f"/api/v1/workers/{live.worker.hostname}/pool", scope="admin",
                  json={"shrink": 1})
    assert "ok" in shrunk["reply"]


def test_breakers_force_and_read(live):
    assert post(live, "/api/v1/breakers/payments-api/open")["state"] == "forced_open"
    breaker = get(live, "/api/v1/breakers/payments-api")
    assert breaker["state"] == "forced_open"
    assert "payments-api" in [b["name"] for b in get(live, "/api/v1/breakers")["items"]]
    assert post(live, "/api/v1/breakers/payments-api/reset")["action"] == "reset"
    with live.server.client(live.tokens["operate"]) as c:
        assert c.post("/api/v1/breakers/payments-api/explode").status_code == 422


def test_alerts_overview_history_and_silences(live):
    overview = get(live, "/api/v1/alerts")
    assert {r["name"] for r in overview["rules"]} >= {"CeleryWorkerDown",
                                                       "CeleryTaskHighFailRate"}
    assert overview["error"] is None
    made = post(live, "/api/v1/alerts/silences", expect=201,
                json={"rule": "CeleryWorkerDown", "duration": "30m", "comment": "deploy"})
    assert made["by"] == "t-operate"
    assert made["id"] in [s["id"] for s in get(live, "/api/v1/alerts")["silences"]]
    with live.server.client(live.tokens["operate"]) as c:
        bad = c.post("/api/v1/alerts/silences", json={"rule": "NoSuchRule", "duration": "1h"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_silence"
        assert c.post("/api/v1/alerts/silences", json={"rule": "CeleryWorkerDown",
                                                       "duration": "soon"}).status_code == 422
        assert c.delete(f"/api/v1/alerts/silences/{made['id']}").status_code == 200
        assert c.delete(f"/api/v1/alerts/silences/{made['id']}").status_code == 404
    assert isinstance(get(live, "/api/v1/alerts/history")["items"], list)


def test_performance_views(live):
    types = {t["name"]: t for t in get(live, "/api/v1/task-types", window="15m")["items"]}
    assert types["api.add"]["count"] >= N_ADD + 3 and types["api.add"]["failed"] == 0
    assert types["api.explode"]["failed"] >= 1 and types["api.explode"]["failure_rate_pct"] > 0
    assert get(live, "/api/v1/task-types/api.add")["name"] == "api.add"
    # Server-side pages: sorted by name, one row a page, the cursor from the previous page.
    everything = get(live, "/api/v1/task-types", window="15m", sort="name", order="asc")
    first = get(live, "/api/v1/task-types", window="15m", sort="name", order="asc", limit=1)
    assert first["total"] == everything["total"] >= 3 and len(first["items"]) == 1
    second = get(live, "/api/v1/task-types", window="15m", sort="name", order="asc", limit=1,
                 cursor=first["next_cursor"])
    assert [first["items"][0]["name"], second["items"][0]["name"]] \
        == [t["name"] for t in everything["items"][:2]]
    assert sum(types["api.add"]["spark"]) == types["api.add"]["count"]
    with live.server.client(live.tokens["read"]) as c:
        for bad in ({"cursor": "x"}, {"cursor": "²"}, {"sort": "p95"}, {"limit": 0}):
            assert c.get("/api/v1/task-types", params=bad).status_code == 422, bad
    overall = get(live, "/api/v1/performance", window="15m")
    assert overall["queue_wait_p95"] is not None and overall["queue_wait_p50"] >= 0
    series = get(live, "/api/v1/series", task_name="api.add", window="15m")
    assert series["step_seconds"] == 60 and 15 <= len(series["points"]) <= 16
    assert sum(p["succeeded"] for p in series["points"]) >= N_ADD + 3
    assert get(live, "/api/v1/series", task_name="api.add", window="24h")["step_seconds"] == 600
    fleet_day = get(live, "/api/v1/series", window="24h")  # every name: hourly roll-ups
    assert fleet_day["step_seconds"] == 3600
    assert sum(p["succeeded"] for p in fleet_day["points"]) >= N_ADD + 3
    assert get(live, "/api/v1/series", window="7d")["step_seconds"] == 3600
    kpis = get(live, "/api/v1/kpis", window="15m")
    assert kpis["task_success_rate"]["value"] is not None
    assert get(live, "/api/v1/performance", task_name="api.add")["success"] >= N_ADD + 3


def test_worker_shutdown_is_admin_and_stops_the_worker(live):
    """Last: it ends the module's worker."""
    path = f"/api/v1/workers/{live.worker.hostname}/shutdown"
    with live.server.client(live.tokens["operate"]) as c:
        assert c.post(path).status_code == 403
    assert post(live, path, scope="admin", expect=202) == {"hostname": live.worker.hostname,
                                                           "sent": True}
    live.worker.process.wait(30)
    assert live.worker.process.returncode == 0

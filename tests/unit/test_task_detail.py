"""A task's timeline, rebuilt from its record: events in time order, retries from the retry
history, the outcome, the DLQ link; and its children, found in the store."""

from __future__ import annotations

import json

from celery_warden.keys import Keys
from celery_warden.read.task_detail import TaskDetail, timeline
from celery_warden.read.tasks import task_status
from celery_warden.redaction import Redactor


def test_timeline_orders_send_retries_start_and_outcome():
    raw = {
        "name": "t.x", "state": "FAILURE", "sent": "100.0", "received": "130.5",
        "started": "131.0", "finished": "132.0", "runtime": "1.0", "worker": "w@h",
        "exc_type": "ValueError", "exc_msg": "boom [i] password=s3cret",
        "history": json.dumps([
            {"attempt": 0, "at": 101.0, "exc_type": "IOError", "exc_msg": "flaky",
             "delay": 10.0, "worker": "w@h"},
            {"attempt": 1, "at": 120.0, "exc_type": "IOError", "exc_msg": "token=abc",
             "delay": 10.0, "worker": "w@h"}]),
        "dlq_entry": "t-1", "dlq_reason": "max_retries",
    }
    status = task_status("t-1", raw, redactor=Redactor())
    events = timeline(status, raw)
    assert [e["event"] for e in events] == ["sent", "retry", "retry", "received", "started",
                                            "failed", "dead_lettered"]
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert events[2]["message"] == "token=[redacted]" and events[2]["delay"] == 10.0
    assert events[5]["message"] == "boom [i] password=[redacted]"
    assert events[6]["entry"] == "t-1" and events[6]["reason"] == "max_retries"


def test_timeline_of_a_deferred_task_says_why():
    raw = {"state": "DEFERRED", "sent": "1.0", "started": "2.0", "finished": "2.5",
           "reason": "circuit open: payments"}
    events = timeline(task_status("d", raw), raw)
    assert events[-1]["event"] == "deferred" and events[-1]["reason"] == raw["reason"]


def test_children_are_found_among_newer_records(settings, redis_client):
    keys = Keys(settings.key_prefix)
    rows = {"p": ("100", {}), "c1": ("101", {"parent_id": "p", "root_id": "p"}),
            "c2": ("150", {"parent_id": "p", "root_id": "p"}), "x": ("160", {"parent_id": "q"}),
            "old": ("50", {"parent_id": "p"})}
    for tid, (ts, fields) in rows.items():
        redis_client.hset(keys.task(tid), mapping={"name": "t", "state": "SUCCESS",
                                                   "sent": ts, **fields})
        redis_client.zadd(keys.recent, {tid: float(ts)})
    detail = TaskDetail(redis_client, keys, Redactor())
    wf = detail.get("p")["workflow"]
    assert [c["task_id"] for c in wf["children"]] == ["c1", "c2"] and wf["children_complete"]
    child = detail.get("c2")["workflow"]
    assert child["parent"]["task_id"] == "p" and child["root"]["task_id"] == "p"
    assert detail.get("nope") is None


def test_timeline_of_a_plain_retried_task_starts_with_its_first_send():
    """A plain Celery task keeps no retry history: its latest re-publish is an event of its own,
    after the first ``sent``, never in its place."""
    raw = {"state": "SUCCESS", "sent": "100.0", "resent": "160.0", "retries": "2",
           "received": "170.1", "started": "170.2", "finished": "170.3"}
    events = timeline(task_status("p", raw), raw)
    assert [e["event"] for e in events] == ["sent", "republished", "received", "started",
                                            "succeeded"]
    assert events[0]["ts"] == 100.0 and events[1]["retries"] == 2

"""JSON logs from a real worker: every line parses, carries the Celery context, and hides secrets.

Workers run ``tests.apps.logs`` (Warden's logging installed) as real ``celery worker``
subprocesses; their whole stdout+stderr is read back and parsed line by line.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from celery_warden import CeleryMonitor
from celery_warden.logs.perf import MESSAGE as PERF_MESSAGE
from celery_warden.settings import WardenSettings
from tests.support import WorkerProcess, client_app, wait_for

pytestmark = pytest.mark.slow

SECRET = "hunter2"
BASE_FIELDS = ("timestamp", "level", "logger", "message", "pid", "hostname")
TASK_FIELDS = ("task_id", "task_name", "queue", "retries", "root_id", "correlation_id")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``text`` as JSON (fails on the first line that is not)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            pytest.fail(f"line {n} is not JSON: {line!r}\n--- log ---\n{text[-4000:]}")
    return out


def perf_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for x in lines if x["logger"] == "celery_warden.perf"
            and x["message"] == PERF_MESSAGE]


def json_worker(settings: WardenSettings, **env: str) -> WorkerProcess:
    return WorkerProcess(settings, app="tests.apps.logs",
                         extra_env={"CELERY_JSON_LOGS": "true", **env})


def test_every_line_of_a_json_worker_is_json_with_task_context(settings, workers):
    """A worker with CELERY_JSON_LOGS=true writes only JSON lines, from start-up to shutdown,
    and every line inside a task carries the task's context."""
    worker = json_worker(settings).start()
    workers.append(worker)
    app = client_app(settings)
    chatty = app.send_task("logs.chatty", kwargs={"user": {"name": "bob", "password": SECRET}})
    failed = app.send_task("logs.fail", ("broken",))
    retried = app.send_task("logs.retry_once")
    assert chatty.get(timeout=30) is True, "the task received the real, unredacted secret"
    failed.get(timeout=30, propagate=False)
    assert retried.get(timeout=30) == 1
    wait_for(lambda: len(perf_lines(json_lines(worker.log()))) >= 4, 20, 0.2,
             "performance lines of all attempts")
    worker.stop()
    lines = json_lines(worker.log())

    for line in lines:
        missing = [f for f in BASE_FIELDS if f not in line]
        assert not missing, f"{missing} missing from {line}"
        assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    messages = [x["message"] for x in lines]
    assert any(m.startswith("Connected to redis://") for m in messages), "Celery start-up line"
    assert f"{worker.hostname} ready." in messages
    assert any(x["message"] == "worker starting" and x["hostname"] == worker.hostname
               for x in lines), "the banner's facts as one JSON line"
    assert any("Warm shutdown" in m for m in messages), "shutdown notice as JSON"

    for result in (chatty, failed, retried):
        inside = [x for x in lines if x.get("task_id") == result.id]
        assert inside, f"no line carries task {result.id}"
        for line in inside:
            missing = [f for f in TASK_FIELDS if f not in line]
            assert not missing, f"{missing} missing from {line}"
            assert line["queue"] == f"{settings.queue_prefix}default"
            assert line["process_name"].startswith("ForkPoolWorker")
            assert line["correlation_id"] == result.id

    stdlib = next(x for x in lines if x["message"] == "processing order")
    assert stdlib["task_name"] == "logs.chatty"
    assert any(x["message"] == "structlog line" and x.get("task_id") == chatty.id for x in lines)
    printed = next(x for x in lines if x["message"] == "printed from a task")
    assert printed["logger"] == "celery.redirected" and printed["task_id"] == chatty.id

    error = next(x for x in lines if x.get("task_id") == failed.id and x["level"] == "error")
    assert error["exception"]["type"] == "ValueError"
    assert error["exception"]["message"] == "broken"
    assert error["exception"]["stack"].startswith("Traceback (most recent call last):")
    assert "raise ValueError(message)" in error["exception"]["stack"]

    retry_lines = [x for x in lines if x.get("task_id") == retried.id]
    assert {x["retries"] for x in retry_lines} == {0, 1}
    assert any(x.get("parent_id") == retried.id for x in retry_lines if x["retries"] == 1)


def test_one_performance_line_per_finished_attempt(settings, workers):
    """Each finished attempt writes exactly one performance line with state, duration, queue
    wait, retries and worker; a retried task has one RETRY line and one final line."""
    worker = json_worker(settings).start()
    workers.append(worker)
    app = client_app(settings)
    ok = [app.send_task("logs.chatty", kwargs={"n": i}) for i in range(5)]
    failed = app.send_task("logs.fail")
    retried = app.send_task("logs.retry_once")
    for r in [*ok, failed, retried]:
        r.get(timeout=30, propagate=False)
    wait_for(lambda: len(perf_lines(json_lines(worker.log()))) >= 8, 20, 0.2, "8 perf lines")
    worker.stop()
    perf = perf_lines(json_lines(worker.log()))

    per_task = Counter((x["task_id"], x["state"]) for x in perf)
    assert all(per_task[(r.id, "SUCCESS")] == 1 for r in ok)
    assert per_task[(failed.id, "FAILURE")] == 1
    assert per_task[(retried.id, "RETRY")] == 1 and per_task[(retried.id, "SUCCESS")] == 1
    assert len(perf) == 8, "nothing else writes performance lines"
    for line in perf:
        assert line["worker"] == worker.hostname
        assert isinstance(line["duration"], float) and line["duration"] >= 0
        assert isinstance(line["queue_wait"], float) and line["queue_wait"] >= 0
        assert line["task_name"].startswith("logs.")
    assert {x["retries"] for x in perf if x["task_id"] == retried.id} == {0, 1}


def test_secrets_are_masked_in_log_lines_and_task_status(settings, workers):
    """Secrets in nested kwargs (and configured extra keys) never appear in the worker's log
    or in get_task_status, while the task itself receives them intact."""
    worker = json_worker(settings, WARDEN_REDACT_KEYS="pin_code").start()
    workers.append(worker)
    app = client_app(settings)
    kwargs = {
        "user": {"name": "bob", "password": SECRET, "tokens": [{"Access-Token": "tok-1"}]},
        "headers": {"Authorization": "Bearer abc.def", "X-Api-Key": "key-2"},
        "pin_code": "4321",
        "note": "retry with password=hunter2 later",
        "max_tokens": 7,
    }
    result = app.send_task("logs.chatty", kwargs=kwargs)
    assert result.get(timeout=30) is True
    monitor = CeleryMonitor(settings, app=app)
    status = wait_for(lambda: (s := monitor.get_task_status(result.id))["state"] == "SUCCESS"
                      and s, 20, 0.2, "task recorded")
    worker.stop()
    log = worker.log()

    for secret in (SECRET, "tok-1", "abc.def", "key-2", "4321"):
        assert secret not in log, f"{secret!r} leaked into the worker log"
        assert secret not in json.dumps(status), f"{secret!r} leaked into get_task_status"
    masked = status["kwargs"]
    assert masked["user"] == {"name": "bob", "password": "[redacted]",
                              "tokens": [{"Access-Token": "[redacted]"}]}
    assert masked["headers"] == {"Authorization": "[redacted]", "X-Api-Key": "[redacted]"}
    assert masked["pin_code"] == "[redacted]" and masked["max_tokens"] == 7
    assert masked["note"] == "retry with password=[redacted] later"
    assert status["args"] == []
    line = next(x for x in json_lines(log) if x["message"] == "processing order")
    assert line["payload"]["user"]["password"] == "[redacted]"
    assert line["payload"]["max_tokens"] == 7


def test_loglevel_option_wins_and_celery_log_level_applies_without_it(settings, workers):
    """Without --loglevel the worker logs at CELERY_LOG_LEVEL; an explicit --loglevel wins."""
    from_env = json_worker(settings, CELERY_LOG_LEVEL="DEBUG")
    from_env.cmd = [a for a in from_env.cmd if not a.startswith("--loglevel")]
    explicit = json_worker(settings, CELERY_LOG_LEVEL="DEBUG")  # WorkerProcess passes INFO
    workers += [from_env.start(), explicit.start()]
    for w in workers:
        w.stop()
    env_levels = {x["level"] for x in json_lines(from_env.log())}
    explicit_levels = {x["level"] for x in json_lines(explicit.log())}
    assert "debug" in env_levels, "CELERY_LOG_LEVEL=DEBUG applies when --loglevel is absent"
    assert "debug" not in explicit_levels, "--loglevel=INFO on the command line wins"
    assert "info" in explicit_levels


def test_console_format_without_json(settings, workers):
    """With CELERY_JSON_LOGS off the worker writes readable text lines, without colour codes
    when its output is not a terminal."""
    worker = WorkerProcess(settings, app="tests.apps.logs",
                           extra_env={"CELERY_JSON_LOGS": "false"}).start()
    workers.append(worker)
    app = client_app(settings)
    app.send_task("logs.chatty", kwargs={"user": {"password": SECRET}}).get(timeout=30)
    wait_for(lambda: PERF_MESSAGE in worker.log(), 20, 0.2, "performance line")
    worker.stop()
    log = worker.log()
    assert "\x1b[" not in log
    assert SECRET not in log
    line = next(x for x in log.splitlines() if PERF_MESSAGE in x)
    assert "[info" in line and "[celery_warden.perf]" in line and "state=SUCCESS" in line


def test_a_thousand_identical_errors_are_summarised_but_all_counted(settings, workers):
    """1,000 identical failures: a bounded number of error lines plus summaries that account
    for the rest, while the store still counts all 1,000 failures (and one error group)."""
    limit, concurrency, total = 5, 2, 1000
    worker = WorkerProcess(settings, app="tests.apps.logs", concurrency=concurrency, extra_env={
        "CELERY_JSON_LOGS": "true", "WARDEN_LOG_FLOOD_LIMIT": str(limit),
        "WARDEN_LOG_FLOOD_WINDOW": "3600",
    }).start()
    workers.append(worker)
    app = client_app(settings)
    results = [app.send_task("logs.fail", ("same error",)) for _ in range(total)]
    for r in results:
        r.get(timeout=120, propagate=False)
    monitor = CeleryMonitor(settings, app=app)
    wait_for(lambda: monitor.get_performance_stats("logs.fail", "1h")["failure"] >= total, 30,
             0.2, "1000 failures recorded")
    worker.stop()  # pool children write their pending summaries as they shut down
    lines = json_lines(worker.log())

    errors = [x for x in lines if x["logger"] == "celery.app.trace" and x["level"] == "error"]
    shown = [x for x in errors if "flood_suppressed" not in x]
    summaries = [x for x in errors if "flood_suppressed" in x]
    assert len(shown) <= limit * concurrency, "at most `limit` lines per pool process"
    assert summaries, "the suppressed lines are summarised"
    assert len(shown) + sum(x["flood_suppressed"] for x in summaries) == total
    for s in summaries:
        assert s["message"].startswith(f"{s['flood_suppressed']} more like this in the last")
        assert "ValueError('same error')" in s["message"]
    assert monitor.get_performance_stats("logs.fail", "1h")["failure"] == total
    groups = getattr(monitor, "get_error_groups", None)
    if groups is not None:
        fail_groups = [g for g in groups(50) if "logs.fail" in json.dumps(g.get("task_names"))]
        assert [g["count"] for g in fail_groups] == [total], "one error group counts all 1,000"

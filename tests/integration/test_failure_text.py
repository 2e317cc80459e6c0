"""Failure text is untrusted: secrets in it are masked and markup in it is printed literally,
from a real worker's failure through the store to every `warden` command that shows it.

A real ``celery worker`` runs ``tests/apps/errors.py``; the CLI runs as the real console script
in a subprocess on the test's Redis and prefixes (``COLUMNS`` wide enough that Rich does not
wrap a table cell, so the text can be found whole).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from celery_warden import CeleryMonitor, DeadLetterQueue, Warden
from tests.integration.test_cli_commands import cli
from tests.integration.test_error_handling import dlq_entry, final_state
from tests.support import WorkerProcess, client_app, wait_for

APP = "tests.apps.errors"
WIDE = {"COLUMNS": "2000"}


@pytest.fixture
def client(settings) -> Iterator[SimpleNamespace]:
    """A Warden client app with its DLQ and monitor; all closed afterwards."""
    app = client_app(settings)
    dlq = DeadLetterQueue(settings, app=app)
    monitor = CeleryMonitor(settings, app=app)
    yield SimpleNamespace(app=app, dlq=dlq, monitor=monitor)
    warden = Warden.installed_on(app)
    assert warden is not None
    warden.uninstall()
    for redis_client in (dlq.redis, monitor.redis, warden.services._client):
        if redis_client is not None:
            redis_client.close()
    app.close()


def run(settings, *args: str) -> subprocess.CompletedProcess[str]:
    """One `warden` command that must succeed; its output is returned for inspection."""
    result = cli(settings, *args, extra_env=WIDE)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_secrets_in_failure_text_reach_no_status_dlq_view_or_command(settings, workers, client):
    """A RetryableTask raising ConnectionError("password=hunter2 token=abc ...") three times:
    the retry history, error, traceback and error group are masked in get_task_status, the DLQ
    view, `warden task`, `warden dlq list|show` and `warden errors` (tables and --json); the
    DLQ entry still holds the real argument, which a requeue replays."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app, dlq, monitor = client.app, client.dlq, client.monitor
    res = app.send_task("errors.unreachable", ("password=hunter2 token=abc",))
    stored = dlq_entry(dlq, res.id)
    assert stored.args == ["password=hunter2 token=abc"], "the message kept for requeue"
    masked = "password=[redacted] token=[redacted] refused the connection"
    assert stored.exc_message == masked
    assert [h["exc_msg"] for h in stored.history] == [masked] * 3
    assert stored.traceback.rstrip().endswith(f"ConnectionError: {masked}")

    status = final_state(monitor, res.id)
    wait_for(lambda: monitor.get_error_groups(limit=5), 10, 0.2, "error group")
    assert [h["exc_msg"] for h in status["history"]] == [masked] * 3
    assert status["error"] == {"type": "ConnectionError", "message": masked}
    for shown in (status, dlq.view(stored), monitor.get_error_groups(limit=5)):
        text = json.dumps(shown)
        assert "hunter2" not in text and "token=abc" not in text, text

    for args in (["task", res.id], ["task", res.id, "--json"], ["dlq", "show", res.id],
                 ["dlq", "show", res.id, "--json"], ["dlq", "list"], ["dlq", "list", "--json"],
                 ["errors"], ["errors", "--json"]):
        out = run(settings, *args).stdout
        assert "hunter2" not in out and "token=abc" not in out, (args, out)
        assert "password=[redacted]" in out, (args, out)


HOSTILE = "password=hunter2 bad [/etc/x] and [link=http://evil]click[/link] [i]"
SHOWN = "password=[redacted] bad [/etc/x] and [link=http://evil]click[/link] [i]"
HOSTILE_TASK = "errors.[b]hostile[/b]"


def test_every_command_prints_untrusted_text_literally(settings, workers, client):
    """Rich markup in an error message, a task name, a worker hostname, a queue name (in the
    worker's queue list) and a breaker name is printed as it is, `[redacted]` included: every
    command exits 0 (no MarkupError) and shows the text literally."""
    odd_queue = f"{settings.queue_prefix}odd[/q][i]"
    queues = [f"{settings.queue_prefix}default", odd_queue]
    # (no "/" in the hostname: it names the worker's log file)
    worker = WorkerProcess(settings, app=APP, name="w[b]x[i]", queues=queues).start()
    workers.append(worker)
    app, dlq, monitor = client.app, client.dlq, client.monitor
    res = app.send_task(HOSTILE_TASK, (HOSTILE,))
    assert app.send_task("errors.ok", (1,), queue=odd_queue).get(timeout=30) == 1
    dlq_entry(dlq, res.id)
    final_state(monitor, res.id)
    wait_for(lambda: monitor.get_error_groups(limit=5), 10, 0.2, "error group")
    breaker = "pay[/b][i]"
    run(settings, "breakers", "open", breaker)

    task_out = run(settings, "task", res.id).stdout
    assert f"ValueError: {SHOWN}" in task_out
    assert HOSTILE_TASK in task_out and worker.hostname in task_out

    show_out = run(settings, "dlq", "show", res.id).stdout
    assert f"ValueError: {SHOWN}" in show_out, "the traceback's last line"
    assert SHOWN in show_out and HOSTILE_TASK in show_out

    list_out = run(settings, "dlq", "list").stdout
    assert f"ValueError: {SHOWN[:60]}" in list_out and HOSTILE_TASK in list_out

    errors_out = run(settings, "errors").stdout
    assert f"ValueError: {SHOWN[:60]}" in errors_out and HOSTILE_TASK in errors_out

    for args in (["workers"], ["status"]):
        out = run(settings, *args).stdout
        assert worker.hostname in out and odd_queue in out, (args, out)
    assert HOSTILE_TASK in run(settings, "status").stdout, "average durations by task"
    assert HOSTILE_TASK in run(settings, "perf").stdout
    assert breaker in run(settings, "breakers", "list").stdout

    for out in (task_out, show_out, list_out, errors_out):
        assert "hunter2" not in out


def test_a_lone_surrogate_in_an_error_reaches_the_dlq_and_the_records_go_on(settings, workers,
                                                                             client):
    """A real worker, a task failing with a lone surrogate in its message (``open()`` on a name
    decoded with ``surrogateescape`` does that): the DLQ entry, the FAILURE record and the
    error group are stored with the surrogate escaped, and the process's flusher lives on —
    the next task's record arrives (before, the flush raised and its thread died)."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app, dlq, monitor = client.app, client.dlq, client.monitor
    res = app.send_task(HOSTILE_TASK, ("no such file: 'r\udcffport.csv'",))
    try:
        stored = dlq_entry(dlq, res.id)
    except AssertionError:
        print(workers[0].log()[-6000:])
        raise
    assert stored.exc_message == "no such file: 'r\\udcffport.csv'"
    status = final_state(monitor, res.id)
    assert status["state"] == "FAILURE"
    assert status["error"]["message"] == "no such file: 'r\\udcffport.csv'", status
    ok = app.send_task("errors.ok", (2,))
    assert ok.get(timeout=30) == 2
    assert final_state(monitor, ok.id)["state"] == "SUCCESS"

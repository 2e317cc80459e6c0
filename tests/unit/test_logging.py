"""Logging set-up: the JSON line's fields, the console format, levels, task context, perf line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import click
import pytest
import structlog
from celery import Celery
from click.testing import CliRunner

from celery_warden.logs import context as log_context
from celery_warden.logs.perf import task_finished
from celery_warden.logs.setup import (
    _json_safe_say,
    configure_logging,
    flood_filters,
    loglevel_from_command_line,
)
from celery_warden.redaction import Redactor
from celery_warden.settings import load_settings


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test configures process-wide logging; put the previous configuration back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    logging.captureWarnings(False)


def json_logging(**env: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(load_settings(CELERY_JSON_LOGS="true", **env), stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_line_has_the_documented_fields_first():
    """A stdlib record becomes one JSON object: timestamp, level, logger, message first,
    then pid, process name and host name."""
    stream = json_logging()
    logging.getLogger("app.orders").warning("order %s late", 42)
    (line,) = lines(stream)
    assert list(line)[:4] == ["timestamp", "level", "logger", "message"]
    assert line["level"] == "warning" and line["logger"] == "app.orders"
    assert line["message"] == "order 42 late"
    assert line["timestamp"].endswith("Z")
    assert isinstance(line["pid"], int) and line["process_name"] == "MainProcess"
    assert line["hostname"] == log_context.hostname()


def test_exception_is_one_structured_field_on_one_line():
    """exc_info becomes ``exception: {type, message, stack}``; the line has no raw newline."""
    stream = json_logging()
    try:
        raise KeyError("missing")
    except KeyError:
        logging.getLogger("app").exception("lookup failed")
    text = stream.getvalue()
    assert text.count("\n") == 1
    exc = json.loads(text)["exception"]
    assert exc["type"] == "KeyError" and exc["message"] == "'missing'"
    assert exc["stack"].startswith("Traceback") and 'raise KeyError("missing")' in exc["stack"]


def test_extras_become_fields_but_celerys_data_extra_is_dropped():
    """``extra={...}`` fields are kept; Celery's ``data`` extra (args reprs, traceback text)
    duplicates the message and is dropped."""
    stream = json_logging()
    logging.getLogger("app").info("paid", extra={"order_id": 7})
    logging.getLogger("celery.app.trace").info("Task x succeeded", extra={"data": {"a": 1}})
    first, second = lines(stream)
    assert first["order_id"] == 7
    assert "data" not in second


def test_structlog_and_stdlib_loggers_share_one_chain():
    """structlog loggers get the same fields, redaction and ``message`` key as stdlib ones."""
    stream = json_logging()
    structlog.get_logger("app.sl").info("charged", amount=3, api_key="sk-1")
    (line,) = lines(stream)
    assert line["message"] == "charged" and line["logger"] == "app.sl"
    assert line["amount"] == 3 and line["api_key"] == "[redacted]"
    assert line["level"] == "info" and "timestamp" in line and "pid" in line


def test_lines_inside_a_task_carry_the_task_context():
    """Inside a running task every line has task_id, task_name, retries and correlation id."""
    stream = json_logging()
    app = Celery("ctx", set_as_current=False)

    @app.task(name="ctx.work")
    def work() -> None:
        logging.getLogger("app.task").info("working")

    result = work.apply(task_id="tid-1")
    assert result.successful()
    line = next(x for x in lines(stream) if x["message"] == "working")
    assert line["task_id"] == "tid-1" and line["task_name"] == "ctx.work"
    assert line["retries"] == 0 and line["correlation_id"] == "tid-1"
    logging.getLogger("app").info("outside")
    assert "task_id" not in lines(stream)[-1]


def test_performance_line_fields():
    """task_finished writes one INFO line on celery_warden.perf with the attempt's numbers."""
    stream = json_logging()

    class Req:
        hostname = "celery@w1"

    class FakeTask:
        request = Req()

    task_finished(FakeTask(), "SUCCESS", 0.1234567, 0.5, 2)
    task_finished(FakeTask(), "FAILURE", 1.0, None, 0)
    first, second = lines(stream)
    assert first["logger"] == "celery_warden.perf" and first["message"] == "task finished"
    assert (first["state"], first["duration"], first["queue_wait"], first["retries"],
            first["worker"]) == ("SUCCESS", 0.123457, 0.5, 2, "celery@w1")
    assert second["state"] == "FAILURE" and "queue_wait" not in second


def test_performance_line_is_skipped_below_info():
    """At WARNING the performance line costs one level check and writes nothing."""
    stream = json_logging(CELERY_LOG_LEVEL="WARNING")
    task_finished(object(), "SUCCESS", 1.0, None, 0)
    assert stream.getvalue() == ""


def test_console_format_is_readable_and_coloured_only_on_a_tty():
    """Without JSON: a human line; ANSI colours only when the stream is a terminal."""
    plain = io.StringIO()
    configure_logging(load_settings(), stream=plain)
    logging.getLogger("app").info("hello", extra={"password": "x"})
    text = plain.getvalue()
    assert "hello" in text and "[app]" in text and "\x1b[" not in text
    assert "password=[redacted]" in text
    with pytest.raises(ValueError):
        json.loads(text)

    tty = TTY()
    configure_logging(load_settings(), stream=tty)
    logging.getLogger("app").info("hello")
    assert "\x1b[" in tty.getvalue()

    tty = TTY()
    configure_logging(load_settings(), stream=tty, colorize=False)
    logging.getLogger("app").info("hello")
    assert "\x1b[" not in tty.getvalue()


def test_level_comes_from_celery_log_level_unless_overridden():
    """CELERY_LOG_LEVEL sets the root level; an explicit level (``--loglevel``) wins."""
    json_logging(CELERY_LOG_LEVEL="ERROR")
    assert logging.getLogger().level == logging.ERROR
    configure_logging(load_settings(CELERY_LOG_LEVEL="ERROR"), level="debug",
                      stream=io.StringIO())
    assert logging.getLogger().level == logging.DEBUG


def test_flood_filter_is_installed_with_the_configured_limits():
    """The handler carries one flood filter built from WARDEN_LOG_FLOOD_*."""
    json_logging(WARDEN_LOG_FLOOD_LIMIT=3, WARDEN_LOG_FLOOD_WINDOW=5)
    (flood,) = flood_filters()
    assert (flood.limit, flood.window) == (3, 5.0)


@pytest.mark.parametrize(("args", "explicit"), [
    ([], False), (["--loglevel=INFO"], True), (["-l", "debug"], True), (["-Q", "x"], False),
])
def test_loglevel_from_command_line_asks_click(args, explicit):
    """Whether --loglevel was given is read from click's parameter source, not its value."""
    seen: list[bool] = []

    @click.command()
    @click.option("-l", "--loglevel", default="WARNING")
    @click.option("-Q", "--queues", default="")
    def worker(loglevel: str, queues: str) -> None:
        seen.append(loglevel_from_command_line())

    result = CliRunner().invoke(worker, args)
    assert result.exit_code == 0, result.output
    assert seen == [explicit]


def test_numeric_celery_log_level_is_accepted():
    """Celery rewrites CELERY_LOG_LEVEL to a number ("20") for its children: still valid."""
    assert load_settings(CELERY_LOG_LEVEL="20").log_level == "INFO"
    assert load_settings(CELERY_LOG_LEVEL="10").log_level == "DEBUG"
    assert load_settings(CELERY_LOG_LEVEL="").log_level == "INFO"


def test_workers_printed_notices_become_json(monkeypatch, tmp_path):
    """In JSON mode Celery's printed notices (``worker: Warm shutdown``) are JSON lines."""
    from celery.apps import worker as worker_module

    monkeypatch.setattr(worker_module, "safe_say", worker_module.safe_say)
    _json_safe_say(Redactor())
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        worker_module.safe_say("worker: Warm shutdown (MainProcess)", f)
        worker_module.safe_say("Restarting celery worker (-b redis://u:pw@host/0)", f)
    first, second = [json.loads(x) for x in out.read_text().splitlines()]
    assert first["message"] == "worker: Warm shutdown (MainProcess)"
    assert first["logger"] == "celery.apps.worker" and "timestamp" in first
    assert second["message"] == "Restarting celery worker (-b redis://u:[redacted]@host/0)"

"""Tracing across processes: a task published inside a span runs as its child in the worker,
and the worker's log lines for that task carry the same trace id.

The test process traces with the SDK's ``InMemorySpanExporter``; the worker (``tests.apps.logs``
with ``WARDEN_OTEL=true``) exports its spans through the SDK's ``SimpleSpanProcessor`` to a
file the test reads back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_json_logs import json_lines
from tests.support import WorkerProcess, client_app, wait_for

pytest.importorskip("opentelemetry.instrumentation.celery")

from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

pytestmark = pytest.mark.slow


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_task_published_in_a_span_is_its_child_and_logs_carry_the_trace_id(
        settings, workers, tmp_path):
    """Publisher span → apply_async span → the worker's run span (same trace), and every JSON
    line the worker writes inside the task has that trace id and the run span's id."""
    span_file = tmp_path / "worker-spans.jsonl"
    worker = WorkerProcess(settings, app="tests.apps.logs", concurrency=1, extra_env={
        "CELERY_JSON_LOGS": "true", "WARDEN_OTEL": "true", "LOGS_SPAN_FILE": str(span_file),
    }).start()
    workers.append(worker)

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        app = client_app(settings)
        with provider.get_tracer("tests").start_as_current_span("client request") as root:
            result = app.send_task("logs.chatty", kwargs={"order": 7})
        assert result.get(timeout=30) is False
    finally:
        instrumentor.uninstrument()

    trace_id = root.get_span_context().trace_id
    publish = next(s for s in exporter.get_finished_spans()
                   if s.name == "apply_async/logs.chatty")
    assert publish.context.trace_id == trace_id
    assert publish.parent is not None and publish.parent.span_id == root.get_span_context().span_id

    run = wait_for(lambda: next((s for s in read_spans(span_file)
                                 if s["name"] == "run/logs.chatty"), None), 20, 0.2,
                   "the worker's run span")
    assert int(run["context"]["trace_id"], 16) == trace_id, "same trace in the worker"
    assert int(run["parent_id"], 16) == publish.context.span_id, "child of the publish span"
    assert run["attributes"]["celery.task_name"] == "logs.chatty"

    wait_for(lambda: "task finished" in worker.log(), 20, 0.2, "performance line")
    worker.stop()
    inside = [x for x in json_lines(worker.log()) if x.get("task_id") == result.id]
    assert len(inside) >= 4, "stdlib, structlog, print, Celery's success and the perf line"
    for line in inside:
        assert line.get("trace_id") == format(trace_id, "032x"), line
        assert int(line["span_id"], 16) == int(run["context"]["span_id"], 16), line
    outside = [x for x in json_lines(worker.log()) if "task_id" not in x]
    assert outside and all("trace_id" not in x for x in outside), "no span outside tasks"

"""A Warden-wired app with Warden's logging installed, for the logging and tracing tests.

Configured from the environment like ``tests.apps.fleet`` (per-test prefixes), plus:

* ``CELERY_JSON_LOGS`` / ``CELERY_LOG_LEVEL`` / ``WARDEN_LOG_FLOOD_*`` / ``WARDEN_REDACT_KEYS``
  as in production;
* ``LOGS_SPAN_FILE=<path>``: install an OpenTelemetry SDK tracer provider (before ``Warden``, so
  Warden keeps it) whose ``SimpleSpanProcessor`` exports every finished span as one JSON line
  (the SDK's own ``ConsoleSpanExporter`` writing to that file), so a test can read the worker's
  spans back. With ``WARDEN_OTEL=true`` Warden instruments Celery.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import structlog
from celery import Celery

from celery_warden import Warden, celery_config, load_settings
from celery_warden.logs.setup import install as install_logging

settings = load_settings()
app = Celery("logs")
app.conf.update(celery_config(settings, worker_send_task_events=False))
install_logging(settings)

if os.environ.get("LOGS_SPAN_FILE"):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    _spans = open(os.environ["LOGS_SPAN_FILE"], "a", buffering=1)  # noqa: SIM115 - process-long
    _provider = TracerProvider()
    _provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
        out=_spans, formatter=lambda span: span.to_json(indent=None) + "\n",
    )))
    trace.set_tracer_provider(_provider)

warden = Warden(app, settings)

logger = logging.getLogger("tests.apps.logs")
slog = structlog.get_logger("tests.apps.logs.structlog")


@app.task(name="logs.chatty")
def chatty(**kwargs: Any) -> bool:
    """Logs through stdlib, structlog and print; returns whether the secret arrived intact."""
    logger.info("processing order", extra={"payload": kwargs})
    slog.info("structlog line", payload=kwargs)
    print("printed from a task")
    user = kwargs.get("user") or {}
    return bool(user.get("password") == "hunter2")


@app.task(name="logs.fail")
def fail(message: str = "boom") -> None:
    raise ValueError(message)


@app.task(name="logs.retry_once", bind=True, max_retries=3)
def retry_once(self: Any) -> int:
    if self.request.retries < 1:
        raise self.retry(exc=ConnectionError("flaky upstream"), countdown=0)
    logger.warning("succeeded after %d retry", self.request.retries)
    return int(self.request.retries)

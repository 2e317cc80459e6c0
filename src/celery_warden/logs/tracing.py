"""OpenTelemetry tracing (optional extra ``celery-warden[otel]``, off unless ``WARDEN_OTEL=true``).

:func:`install` (called by ``Warden(app)``):

* sets up a tracer provider from the standard ``OTEL_*`` variables unless the application has
  already installed one (``OTEL_TRACES_EXPORTER`` — default ``otlp``, also ``console``,
  ``none`` or any exporter registered under the ``opentelemetry_traces_exporter`` entry point;
  ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME`` (default: the Celery app's name),
  ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ... are read by the SDK itself);
* instruments Celery with ``opentelemetry-instrumentation-celery``: the publisher injects the
  trace context into the message headers and the worker continues it, so a task published
  inside a span runs as its child (``run/<task name>``, with ``apply_async/<task name>``
  between them);
* flushes buffered spans when a pool child shuts down (children exit without ``atexit``).

Every log line written while a span is current gets ``trace_id`` and ``span_id``
(:func:`add_trace_ids`, part of the logging chain whenever ``opentelemetry-api`` is importable).
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from celery import signals
from structlog.typing import EventDict

from celery_warden.errors import SettingsError
from celery_warden.isolation import guarded
from celery_warden.settings import WardenSettings

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger("celery_warden.tracing")

#: Seconds a pool child waits for its spans to be exported when it shuts down.
FLUSH_TIMEOUT = 5.0
EXPORTER_GROUP = "opentelemetry_traces_exporter"

try:  # the API alone is enough to read the current span
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - the otel extra is not installed
    _trace = None  # type: ignore[assignment]


def api_available() -> bool:
    """Whether ``opentelemetry-api`` is importable (then log lines carry trace ids)."""
    return _trace is not None


def available() -> bool:
    """Whether the ``otel`` extra (API, SDK and the Celery instrumentation) is installed."""
    try:
        import opentelemetry.instrumentation.celery
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


def add_trace_ids(_: Any, __: str, event: EventDict) -> EventDict:
    """structlog processor: ``trace_id`` / ``span_id`` (hex) of the current span, if any."""
    if _trace is None:
        return event
    ctx = _trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event


def install(settings: WardenSettings, app: Celery | None = None) -> bool:
    """Turn tracing on for this process when ``WARDEN_OTEL`` is set; returns whether it is on."""
    if not settings.otel:
        return False
    if not available():
        raise SettingsError(
            "WARDEN_OTEL=true needs the OpenTelemetry packages: "
            "pip install 'celery-warden[otel]'"
        )
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    _ensure_provider(getattr(app, "main", None))
    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
    signals.worker_process_shutdown.connect(
        guarded(_flush), weak=False, dispatch_uid="celery_warden.logs.tracing.flush"
    )
    return True


def _ensure_provider(app_name: str | None) -> None:
    """Install an SDK tracer provider from the OTEL_* variables unless one is installed."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # the application configured tracing itself: use it as it is
    attributes = {}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = app_name or "celery"
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in _exporter_names():
        exporter = _load_exporter(name)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _exporter_names() -> list[str]:
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return [] if "none" in names else names


def _candidates(name: str) -> list[str]:
    """Entry-point names for an exporter name; ``otlp`` follows the OTLP protocol variables."""
    if name != "otlp":
        return [name]
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "").strip()
    if protocol == "grpc":
        return ["otlp_proto_grpc"]
    if protocol.startswith("http"):
        return ["otlp_proto_http"]
    return ["otlp_proto_http", "otlp_proto_grpc"]  # the extra ships the HTTP exporter


def _load_exporter(name: str) -> Any:
    registered = {ep.name: ep for ep in entry_points(group=EXPORTER_GROUP)}
    found = [registered[n] for n in _candidates(name) if n in registered]
    if not found:
        logger.warning(
            "warden: OTEL_TRACES_EXPORTER=%s: no such span exporter installed "
            "(e.g. opentelemetry-exporter-otlp); spans are not exported", name,
        )
        return None
    return found[0].load()()


def _flush(**_: Any) -> None:
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(int(FLUSH_TIMEOUT * 1000))


__all__ = ["add_trace_ids", "api_available", "available", "install"]

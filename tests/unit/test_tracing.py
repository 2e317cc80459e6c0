"""Tracing: trace ids in log events, exporter selection from OTEL_* variables, install."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from celery_warden.errors import SettingsError
from celery_warden.logs import tracing
from celery_warden.settings import load_settings
from tests.support import ROOT

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry.sdk.trace import TracerProvider


def test_trace_ids_are_added_inside_a_span_only():
    """Inside a span a log event gets the span's trace_id (32 hex) and span_id (16 hex)."""
    tracer = TracerProvider().get_tracer("tests")
    assert tracing.add_trace_ids(None, "info", {}) == {}
    with tracer.start_as_current_span("work") as span:
        event = tracing.add_trace_ids(None, "info", {})
    ctx = span.get_span_context()
    assert event == {"trace_id": format(ctx.trace_id, "032x"),
                     "span_id": format(ctx.span_id, "016x")}


def test_install_is_off_by_default():
    """Without WARDEN_OTEL nothing is installed or instrumented."""
    assert tracing.install(load_settings()) is False


def test_install_without_the_extra_names_it(monkeypatch):
    """WARDEN_OTEL=true without the OpenTelemetry packages fails with the install hint."""
    monkeypatch.setattr(tracing, "available", lambda: False)
    with pytest.raises(SettingsError, match=r"celery-warden\[otel\]"):
        tracing.install(load_settings(WARDEN_OTEL="true"))


@pytest.mark.parametrize(("env", "names"), [
    ({}, ["otlp"]),
    ({"OTEL_TRACES_EXPORTER": "none"}, []),
    ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp"]),
])
def test_exporter_names_follow_otel_traces_exporter(monkeypatch, env, names):
    """OTEL_TRACES_EXPORTER picks the exporters (default otlp, ``none`` for none)."""
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tracing._exporter_names() == names


def test_otlp_follows_the_protocol_variable(monkeypatch):
    """``otlp`` means the HTTP exporter unless OTEL_EXPORTER_OTLP_PROTOCOL says grpc."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    assert tracing._candidates("otlp")[0] == "otlp_proto_http"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert tracing._candidates("otlp") == ["otlp_proto_grpc"]
    assert type(tracing._load_exporter("console")).__name__ == "ConsoleSpanExporter"
    assert tracing._load_exporter("no-such-exporter") is None


def test_install_sets_up_a_provider_and_instruments_celery():
    """WARDEN_OTEL=true in a fresh process: an SDK provider named after the app, exporters from
    OTEL_TRACES_EXPORTER, and Celery instrumented; an app's own provider is kept."""
    script = textwrap.dedent("""
        import json
        from celery import Celery
        from opentelemetry import trace
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from celery_warden.logs import tracing
        from celery_warden.settings import load_settings
        on = tracing.install(load_settings(), Celery("billing"))
        provider = trace.get_tracer_provider()
        print(json.dumps({
            "on": on,
            "provider": type(provider).__name__,
            "service": provider.resource.attributes.get("service.name"),
            "processors": len(provider._active_span_processor._span_processors),
            "instrumented": CeleryInstrumentor().is_instrumented_by_opentelemetry,
        }))
    """)
    env = {"WARDEN_OTEL": "true", "OTEL_TRACES_EXPORTER": "console", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert json.loads(out.splitlines()[-1]) == {
        "on": True, "provider": "TracerProvider", "service": "billing", "processors": 1,
        "instrumented": True,
    }

"""Structured logging: JSON lines with Celery context, flood control, per-task performance lines,
and optional OpenTelemetry trace ids (layer 1, above the foundation; see docs/logging.md)."""

"""Alert rules: what is measured, where, against which threshold — and the spec's defaults.

A rule names a **metric** (the catalogue below), a **scope** (a glob over the metric's subject:
task name, queue, worker or breaker), a **comparison** and **threshold**, a **window** for the
metrics measured over time, a ``for`` duration the condition must hold before the alert fires,
a **severity**, and extra **labels** and **annotations**. Each subject that breaches is one
alert (one fingerprint); ``aggregate`` turns every matching subject into one fleet-wide value.

The default rules are the spec's five thresholds plus three Warden adds; every one has a
``WARDEN_ALERT_*`` setting (``0`` switches it off), can be switched off by name
(``WARDEN_ALERT_DISABLED``) and can be overridden field by field from the rules file. Names
follow the celery-mixin's where they overlap (``CeleryTaskHighFailRate``,
``CeleryHighQueueLength``, ``CeleryWorkerDown``), so one runbook serves both.

Hysteresis: a firing alert resolves only once its value is back past ``resolve_threshold``,
by default the threshold moved ``WARDEN_ALERT_HYSTERESIS`` percent towards the healthy side
(failure rate > 10 % fires at 10.1 % and resolves below 9 %), so a value wobbling around the
threshold does not page on every evaluation.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from celery_warden.settings import WardenSettings

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
SEVERITIES = ("info", "warning", "critical")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
LABEL_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@dataclass(frozen=True, slots=True)
class Metric:
    """One measurable thing. ``subject`` is the label naming what it is measured on (the same
    label names celery-exporter uses), ``None`` for fleet-wide metrics."""

    name: str
    subject: str | None
    unit: str
    description: str
    windowed: bool = False


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("task_failure_rate", "name", "%", "failed / finished x 100 in the window", True),
    Metric("task_retry_rate", "name", "%", "finished after a retry / finished x 100", True),
    Metric("task_count", "name", "tasks", "tasks finished in the window", True),
    Metric("task_failures", "name", "tasks", "tasks failed in the window", True),
    Metric("task_avg_duration", "name", "s", "average run time in the window", True),
    Metric("task_p95_duration", "name", "s", "95th percentile run time in the window", True),
    Metric("task_duration_ratio", "name", "x", "average run time / learned baseline", True),
    Metric("task_p95_ratio", "name", "x", "p95 run time / learned baseline p95", True),
    Metric("queue_depth", "queue_name", "messages", "messages waiting in the broker"),
    Metric("queue_oldest_age", "queue_name", "s", "age of the oldest waiting message"),
    Metric("worker_offline_seconds", "hostname", "s", "seconds since an offline worker's "
           "last heartbeat"),
    Metric("worker_utilization", "hostname", "%", "busy / pool slots of an online worker"),
    Metric("dlq_size", None, "entries", "entries in the dead letter queue"),
    Metric("breaker_open_seconds", "breaker", "s", "seconds a circuit breaker has been open"),
    Metric("recorder_drops", None, "records", "records dropped by recorders in the window",
           True),
)}


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule (see the module docstring). ``origin`` says where it was defined."""

    name: str
    metric: str
    threshold: float
    comparison: str = ">"
    scope: str = "*"
    window: int = 300
    for_: float = 0.0
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    min_count: int = 0
    aggregate: bool = False
    resolve_threshold: float | None = None
    enabled: bool = True
    origin: str = "default"

    @property
    def spec(self) -> Metric:
        return METRICS[self.metric]

    def breached(self, value: float) -> bool:
        """Whether ``value`` meets the firing condition."""
        return COMPARISONS[self.comparison](round(value, 9), self.threshold)

    def clear_threshold(self, hysteresis: float) -> float:
        """The value a firing alert must get back past before it resolves."""
        if self.resolve_threshold is not None:
            return self.resolve_threshold
        margin = abs(self.threshold) * hysteresis / 100.0
        if self.comparison in (">", ">="):
            return self.threshold - margin
        if self.comparison in ("<", "<="):
            return self.threshold + margin
        return self.threshold

    def still_breached(self, value: float, hysteresis: float) -> bool:
        """Whether a firing alert keeps firing: the condition against the clear threshold."""
        return COMPARISONS[self.comparison](round(value, 9), self.clear_threshold(hysteresis))

    def covers(self, subject: str) -> bool:
        return fnmatch.fnmatchcase(subject, self.scope)

    def describe(self) -> dict[str, Any]:
        """JSON-ready view (CLI, API)."""
        return {
            "name": self.name, "metric": self.metric, "unit": self.spec.unit,
            "subject": self.spec.subject, "scope": self.scope, "comparison": self.comparison,
            "threshold": self.threshold, "window": self.window if self.spec.windowed else None,
            "for": self.for_, "severity": self.severity, "labels": dict(self.labels),
            "annotations": dict(self.annotations), "min_count": self.min_count,
            "aggregate": self.aggregate, "resolve_threshold": self.resolve_threshold,
            "enabled": self.enabled, "origin": self.origin,
        }


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``{value}``, ``{threshold}``, ``{subject}``, ... in an annotation; unknown
    placeholders stay as written (no ``str.format``: annotations come from files)."""
    def fill(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        if value is None:
            return m.group(0)
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    return _PLACEHOLDER.sub(fill, template)


def _ann(summary: str, description: str) -> dict[str, str]:
    return {"summary": summary, "description": description}


def default_rules(s: WardenSettings) -> list[Rule]:
    """The spec's thresholds (and Warden's three additions) as rules, from the settings; a
    threshold of 0 gives a disabled rule (listed, never evaluated)."""
    per_task = "tasks of {subject} failed in the last {window}s"
    return [
        Rule("CeleryTaskHighFailRate", "task_failure_rate", s.alert_failure_rate,
             window=s.alert_failure_window, min_count=s.alert_failure_min_tasks,
             enabled=s.alert_failure_rate > 0,
             annotations=_ann("Celery high task fail rate.", "{value}% of " + per_task
                              + " (threshold {threshold}%).")),
        Rule("CeleryFleetHighFailRate", "task_failure_rate", s.alert_failure_rate,
             window=s.alert_failure_window, min_count=s.alert_failure_min_tasks,
             aggregate=True, enabled=s.alert_failure_rate > 0,
             annotations=_ann("Celery high fail rate across the fleet.",
                              "{value}% of all tasks failed in the last {window}s "
                              "(threshold {threshold}%).")),
        Rule("CeleryHighQueueLength", "queue_depth", float(s.alert_queue_depth),
             enabled=s.alert_queue_depth > 0,
             annotations=_ann("Celery high queue length.",
                              "{value} messages wait in queue {subject} "
                              "(threshold {threshold}).")),
        Rule("CeleryWorkerDown", "worker_offline_seconds", s.alert_worker_offline,
             enabled=s.alert_worker_offline > 0,
             annotations=_ann("A Celery worker is offline.",
                              "Worker {subject} sent no heartbeat for {value}s "
                              "(threshold {threshold}s).")),
        Rule("WardenDLQTooLarge", "dlq_size", float(s.alert_dlq_size),
             enabled=s.alert_dlq_size > 0,
             annotations=_ann("The dead letter queue is large.",
                              "{value} entries wait in the DLQ (threshold {threshold}).")),
        Rule("CeleryTaskDurationAnomaly", "task_duration_ratio", s.alert_duration_factor,
             comparison=">=", window=s.alert_duration_window,
             min_count=s.alert_duration_min_tasks, enabled=s.alert_duration_factor > 0,
             annotations=_ann("Celery task slower than its baseline.",
                              "{subject} averages {current}s over {window}s, {value}x its "
                              "baseline {baseline}s ({method}).")),
        Rule("CeleryTaskP95Anomaly", "task_p95_ratio", s.alert_duration_factor,
             comparison=">=", window=s.alert_duration_window,
             min_count=s.alert_duration_min_tasks, enabled=s.alert_duration_factor > 0,
             annotations=_ann("Celery task p95 slower than its baseline.",
                              "{subject} p95 is {current}s over {window}s, {value}x its "
                              "baseline {baseline}s ({method}).")),
        Rule("CeleryQueueLatencyHigh", "queue_oldest_age", s.alert_queue_latency,
             enabled=s.alert_queue_latency > 0,
             annotations=_ann("Celery queue latency high.",
                              "The oldest message in {subject} has waited {value}s "
                              "(threshold {threshold}s).")),
        Rule("WardenCircuitBreakerOpen", "breaker_open_seconds", s.alert_breaker_open,
             enabled=s.alert_breaker_open > 0,
             annotations=_ann("A circuit breaker stays open.",
                              "Circuit breaker {subject} has been open for {value}s "
                              "(threshold {threshold}s).")),
        Rule("WardenRecorderDropping", "recorder_drops", float(s.alert_recorder_drops),
             comparison=">=", severity="critical", window=max(300, s.alert_failure_window),
             enabled=s.alert_recorder_drops > 0,
             annotations=_ann("Warden recorders are dropping records.",
                              "{value} records dropped in the last {window}s: Redis was "
                              "unreachable longer than the buffers last.")),
    ]


__all__ = ["COMPARISONS", "LABEL_PATTERN", "METRICS", "NAME_PATTERN", "SEVERITIES", "Metric",
           "Rule", "default_rules", "render"]

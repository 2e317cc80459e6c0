"""Models of breakers, alerts, autoscaling and the audit log."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from celery_warden.serve.schemas.common import Open


class Breaker(Open):
    name: str
    state: str
    effective_state: str
    retry_after: float | None
    window: dict[str, Any]
    trips: int
    last_trip_at: str | None
    config: dict[str, Any]
    history: list[dict[str, Any]]


class Breakers(Open):
    items: list[Breaker]


class BreakerForced(Open):
    name: str
    action: str
    state: str


class Alert(Open):
    fingerprint: str
    alertname: str
    subject: str
    state: str
    severity: str | None
    labels: dict[str, Any]
    annotations: dict[str, Any]


class AlertsOverview(Open):
    firing: list[Alert]
    pending: list[Alert]
    silences: list[dict[str, Any]]
    evaluator: dict[str, Any]
    notifications: dict[str, Any]
    rules: list[dict[str, Any]]
    error: str | None


class AlertHistory(Open):
    items: list[dict[str, Any]]


class SilenceIn(BaseModel):
    rule: str = Field(min_length=1, max_length=200, description="Rule name or glob.")
    duration: str = Field(min_length=1, max_length=32, description="e.g. 30m, 2h.")
    scope: str = Field("*", max_length=300, description="Subjects matching this glob.")
    comment: str = Field("", max_length=1000)


class Silence(Open):
    id: str
    rule: str
    scope: str


class Unsilenced(Open):
    id: str
    removed: bool


class Autoscale(Open):
    generated_at: str | None
    formula: str
    target_latency: float
    queues: dict[str, dict[str, Any]]


class AuditEntry(Open):
    id: str
    ts: float
    at: str | None
    who: str
    via: str
    action: str
    target: str
    params: str
    result: str
    status: int


class AuditLog(Open):
    items: list[AuditEntry]
    next_before: float | None


__all__ = ["Alert", "AlertHistory", "AlertsOverview", "AuditEntry", "AuditLog", "Autoscale",
           "Breaker", "BreakerForced", "Breakers", "Silence", "SilenceIn", "Unsilenced"]

"""Alert states and their transitions: a pure function of the rules, the samples, what was
stored and the silences — no I/O, so every rule of the life cycle is unit-testable.

Life of one alert (one rule x one subject, identified by the fingerprint of its labels)::

    (inactive) ──breach──▶ pending ──held for `for`──▶ firing ──back past the clear
         ▲                   │                            │        threshold, or gone──▶ resolved
         └──── no breach ────┘                            └─ still breached: value updated

* **One notification per transition**: ``firing`` once when it fires, ``resolved`` once when
  it resolves — and ``firing`` again every ``WARDEN_ALERT_REPEAT_INTERVAL`` while it keeps
  firing (Alertmanager's ``repeat_interval``).
* **Silences** suppress notifications, not states: a silenced alert still fires and resolves
  (history says ``silenced``); if it is still firing when the silence ends, it is notified then.
  A resolution is notified only when its firing was.
* **Missing data keeps state**: a rule whose source failed changes nothing this round.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from celery_warden.alerts.rules import Rule, render
from celery_warden.alerts.sources import FLEET, Sample
from celery_warden.timefmt import iso

#: Alertmanager's ``endsAt`` of an alert that has not ended (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211


def fingerprint(labels: Mapping[str, str]) -> str:
    """Prometheus' label-set fingerprint (FNV-1a 64 over sorted names and values, each followed
    by the 0xff separator), as 16 hex digits: the same labels give Alertmanager's value."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8") + b"\xff":
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@dataclass(slots=True)
class Alert:
    """A pending or firing alert as stored in ``P:alerts:state`` (JSON)."""

    fingerprint: str
    rule: str
    subject: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str  # "pending" | "firing"
    value: float
    active_at: float
    starts_at: float | None = None
    notified: str = ""  # "firing" once a firing notification went out
    last_notified: float = 0.0
    updated: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Alert | None:
        try:
            data = json.loads(raw)
            return cls(**data)
        except (ValueError, TypeError):
            return None

    def view(self) -> dict[str, Any]:
        """JSON-ready (API, CLI)."""
        return {"fingerprint": self.fingerprint, "alertname": self.rule,
                "subject": self.subject, "state": self.state, "value": self.value,
                "severity": self.labels.get("severity"), "labels": self.labels,
                "annotations": self.annotations, "active_at": iso(self.active_at),
                "starts_at": iso(self.starts_at), "notified": self.notified == "firing",
                "last_notified": iso(self.last_notified or None)}


@dataclass(slots=True)
class Outcome:
    """What one evaluation changes: states to write and delete, history, notifications."""

    write: dict[str, Alert] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    notify: list[dict[str, Any]] = field(default_factory=list)


def labels_for(rule: Rule, subject: str, fleet: str) -> dict[str, str]:
    labels = {"fleet": fleet, **rule.labels, "alertname": rule.name, "severity": rule.severity}
    label = rule.spec.subject
    if label is not None and subject != FLEET:
        labels[label] = subject
    return labels


def silenced(silences: Iterable[Mapping[str, Any]], rule: str, subject: str,
             now: float) -> bool:
    return any(float(s.get("until", 0)) > now
               and fnmatch.fnmatchcase(rule, str(s.get("rule", "")))
               and fnmatch.fnmatchcase(subject, str(s.get("scope", "*")))
               for s in silences)


class Transitions:
    """Computes an :class:`Outcome` (see the module docstring for the rules it applies)."""

    def __init__(self, fleet: str, hysteresis: float, repeat_interval: float,
                 external_url: str = "") -> None:
        self.fleet = fleet
        self.hysteresis = hysteresis
        self.repeat = repeat_interval
        self.external_url = external_url.rstrip("/")

    def apply(self, rules: list[Rule], samples: Mapping[str, list[Sample] | Exception],
              stored: Mapping[str, Alert], silences: Sequence[Mapping[str, Any]],
              now: float) -> Outcome:
        out = Outcome()
        by_rule = {r.name: r for r in rules}
        seen: set[str] = set()
        for rule in rules:
            found = samples.get(rule.name)
            if not rule.enabled or found is None or isinstance(found, Exception):
                continue
            for sample in found:
                labels = labels_for(rule, sample.subject, self.fleet)
                fp = fingerprint(labels)
                seen.add(fp)
                self._step(out, rule, sample, labels, fp, stored.get(fp), silences, now)
        for fp, alert in stored.items():
            if fp in seen:
                continue
            known = by_rule.get(alert.rule)
            result = samples.get(alert.rule)
            if known is not None and known.enabled and (result is None
                                                      or isinstance(result, Exception)):
                continue  # data missing this round: keep the alert as it is
            self._end(out, alert, silences, now, "no longer reported")
        return out

    def _annotations(self, rule: Rule, sample: Sample) -> dict[str, str]:
        values = {"value": sample.value, "threshold": rule.threshold, "window": rule.window,
                  "subject": sample.subject if sample.subject != FLEET else "the fleet",
                  "unit": rule.spec.unit, "alertname": rule.name, **sample.extra}
        return {k: render(v, values) for k, v in rule.annotations.items()}

    def _step(self, out: Outcome, rule: Rule, sample: Sample, labels: dict[str, str],
              fp: str, alert: Alert | None, silences: Sequence[Mapping[str, Any]],
              now: float) -> None:
        if alert is None or alert.state == "pending":
            if not rule.breached(sample.value):
                if alert is not None:
                    out.delete.append(fp)  # pending never fired: nothing to tell
                return
            if alert is None:
                alert = Alert(fp, rule.name, sample.subject, labels, {}, "pending",
                              sample.value, active_at=now)
            alert.value, alert.updated = sample.value, now
            alert.annotations = self._annotations(rule, sample)
            if now - alert.active_at >= rule.for_:
                alert.state, alert.starts_at = "firing", now
                self._history(out, alert, "pending", "firing", silences, now)
            out.write[fp] = alert
            self._maybe_notify(out, alert, silences, now)
            return
        if not rule.still_breached(sample.value, self.hysteresis):
            alert.value = sample.value
            alert.annotations = self._annotations(rule, sample)
            self._end(out, alert, silences, now, "recovered")
            return
        alert.value, alert.updated = sample.value, now
        alert.annotations = self._annotations(rule, sample)
        out.write[fp] = alert
        self._maybe_notify(out, alert, silences, now)

    def _end(self, out: Outcome, alert: Alert, silences: Sequence[Mapping[str, Any]], now: float,
             why: str) -> None:
        out.delete.append(alert.fingerprint)
        if alert.state != "firing":
            return
        quiet = silenced(silences, alert.rule, alert.subject, now)
        told = alert.notified == "firing" and not quiet
        self._history(out, alert, "firing", "resolved", silences, now, why, notified=told)
        if told:
            out.notify.append(self.notification(alert, "resolved", now, "alert resolved"))

    def _maybe_notify(self, out: Outcome, alert: Alert, silences: Sequence[Mapping[str, Any]],
                      now: float) -> None:
        if alert.state != "firing" or silenced(silences, alert.rule, alert.subject, now):
            return
        if alert.notified != "firing":
            reason = "first notification"
        elif now - alert.last_notified >= self.repeat:
            reason = "repeat interval elapsed"
        else:
            return
        alert.notified, alert.last_notified = "firing", now
        out.notify.append(self.notification(alert, "firing", now, reason))
        if out.history and out.history[-1]["fingerprint"] == alert.fingerprint:
            out.history[-1]["notified"] = True

    def _history(self, out: Outcome, alert: Alert, old: str, new: str,
                 silences: Sequence[Mapping[str, Any]], now: float, why: str = "",
                 notified: bool = False) -> None:
        out.history.append({
            "at": iso(now), "ts": now, "fingerprint": alert.fingerprint,
            "alertname": alert.rule, "subject": alert.subject, "from": old, "to": new,
            "value": alert.value, "severity": alert.labels.get("severity"),
            "labels": alert.labels, "summary": alert.annotations.get("summary", ""),
            "silenced": silenced(silences, alert.rule, alert.subject, now),
            "notified": notified, "reason": why,
        })

    def notification(self, alert: Alert, status: str, now: float,
                     reason: str) -> dict[str, Any]:
        """One alert in Alertmanager's shape, plus why it is sent (the outbox entry)."""
        return {
            "status": status,
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": iso(alert.starts_at or alert.active_at),
            "endsAt": iso(now) if status == "resolved" else ZERO_TIME,
            "generatorURL": (f"{self.external_url}/alerts?fingerprint={alert.fingerprint}"
                             if self.external_url else ""),
            "fingerprint": alert.fingerprint,
            "value": alert.value,
            "reason": reason,
        }


__all__ = ["ZERO_TIME", "Alert", "Outcome", "Transitions", "fingerprint", "labels_for",
           "silenced"]

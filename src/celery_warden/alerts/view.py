"""Alerts, read: what the API (``/api/v1/alerts``), ``/metrics`` (``warden_alerts_firing``), the
stream, the dashboard and ``warden alerts`` show. JSON-ready dicts, so a route is one call.

Reading never needs the lease: any replica answers from Redis what the evaluator decided.
"""

from __future__ import annotations

import fnmatch
import time
from collections import Counter
from typing import Any

import redis

from celery_warden.alerts.rulefile import RuleError, load_rules
from celery_warden.alerts.store import AlertStore
from celery_warden.keys import Keys
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


class AlertsView:
    """Firing and pending alerts, history, silences, rules and notification health."""

    def __init__(self, settings: WardenSettings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self._own_client = client is None
        self.redis = client or redis_client(settings.redis_url)
        self.store = AlertStore(self.redis, Keys(settings.key_prefix), settings.alert_history)

    def close(self) -> None:
        if self._own_client:
            self.redis.close()

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts: firing first, then by severity and name."""
        views = [a.view() for a in self.store.states().values()]
        return sorted(views, key=lambda v: (v["state"] != "firing",
                                            SEVERITY_ORDER.get(v["severity"] or "", 3),
                                            v["alertname"], v["subject"]))

    def firing_counts(self) -> list[dict[str, Any]]:
        """Firing alerts per (alertname, severity): the ``warden_alerts_firing`` gauge."""
        counts = Counter((a.rule, a.labels.get("severity", "")) for a in
                         self.store.states().values() if a.state == "firing")
        return [{"alertname": n, "severity": s, "count": c}
                for (n, s), c in sorted(counts.items())]

    def rules(self) -> dict[str, Any]:
        """The rules in force, or the reason the rules file is refused."""
        try:
            return {"rules": [r.describe() for r in load_rules(self.settings)], "error": None}
        except RuleError as exc:
            return {"rules": [], "error": str(exc)}

    def overview(self) -> dict[str, Any]:
        """Everything ``GET /api/v1/alerts`` answers: alerts, silences, the evaluator, the
        notifiers' counts and the latest failed notifications."""
        alerts = self.alerts()
        return {
            "firing": [a for a in alerts if a["state"] == "firing"],
            "pending": [a for a in alerts if a["state"] == "pending"],
            "silences": [self.store.silence_view(s) for s in self.store.silences()],
            "evaluator": {**self.store.holder(),
                          "interval_seconds": self.settings.alert_interval},
            "notifications": {**self.store.stats(),
                              "queued": self.store.pending_notifications(),
                              "recent_failures": self.failures(5)},
            **self.rules(),
        }

    def history(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Transitions (firing, resolved), newest first."""
        return self.store.history(max(1, min(limit, 1000)), max(0, offset))

    def failures(self, limit: int = 20) -> list[dict[str, Any]]:
        """Notifications that failed every attempt, newest first (without their bodies)."""
        return [{k: v for k, v in f.items() if k != "notification"}
                for f in self.store.failures(max(1, min(limit, 1000)))]

    def silence(self, rule: str, seconds: float, scope: str = "*", comment: str = "",
                author: str = "") -> dict[str, Any]:
        """Silence a rule (a name or glob) for ``seconds``; refuses a name no rule has."""
        if seconds <= 0:
            raise ValueError("a silence needs a positive duration")
        names = [r["name"] for r in self.rules()["rules"]]
        if names and not any(fnmatch.fnmatchcase(n, rule) for n in names):
            raise ValueError(f"no alert rule matches {rule!r}; rules: {', '.join(names)}")
        return self.store.silence(rule, seconds, scope or "*", comment, author, time.time())

    def silences(self) -> list[dict[str, Any]]:
        return [self.store.silence_view(s) for s in self.store.silences()]

    def unsilence(self, silence_id: str) -> bool:
        return self.store.unsilence(silence_id)


__all__ = ["AlertsView"]

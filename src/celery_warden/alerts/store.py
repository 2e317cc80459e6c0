"""Alert state in Redis: the lease, states, history, silences, the notification outbox and
failed notifications — everything an evaluator on another machine needs to take over.

Why an outbox: a transition and the notifications it causes are written in one fenced script
call (``lua/alerts_commit.lua``), then delivered by the lease holder from ``P:alerts:outbox``
through ``P:alerts:sending`` (moved back when a new holder takes over), so a notification
survives the death of the evaluator that decided it: delivery is at least once across a
take-over, exactly once otherwise. Every delivery that failed all its attempts is kept in
``P:alerts:failed`` (bounded) and counted in ``P:alerts:stats``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, cast

import redis

from celery_warden import scripts
from celery_warden.alerts.state import Alert, Outcome
from celery_warden.keys import Keys
from celery_warden.timefmt import iso

#: ``hold`` answers.
NOT_HELD, RENEWED, ACQUIRED = 0, 1, 2


class AlertStore:
    """Reads and writes the alert keys of one fleet (one prefix)."""

    def __init__(self, client: redis.Redis, keys: Keys, history_max: int) -> None:
        self.redis = client
        self.keys = keys
        self.history_max = history_max

    # -- the lease ---------------------------------------------------------------------------
    def hold(self, token: str, ttl: float) -> int:
        """Acquire or renew the lease (``ACQUIRED``, ``RENEWED`` or ``NOT_HELD``)."""
        lease = scripts.script(self.redis, "alerts_lease")
        return int(lease(keys=[self.keys.alert_lease], args=[token, int(ttl * 1000), "hold"]))

    def release(self, token: str) -> bool:
        lease = scripts.script(self.redis, "alerts_lease")
        return bool(lease(keys=[self.keys.alert_lease], args=[token, 0, "release"]))

    def holder(self) -> dict[str, Any]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.keys.alert_lease)
        pipe.pttl(self.keys.alert_lease)
        owner, ttl = pipe.execute()
        return {"owner": owner, "expires_in": max(0, int(ttl)) / 1000 if owner else None}

    # -- states ------------------------------------------------------------------------------
    def states(self) -> dict[str, Alert]:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.alert_state))
        out = {}
        for fp, text in raw.items():
            alert = Alert.from_json(text)
            if alert is not None:
                out[fp] = alert
        return out

    def commit(self, token: str, ttl: float, outcome: Outcome) -> bool:
        """Apply an outcome if we still hold the lease (one script call)."""
        doc = {
            "write": {fp: a.to_json() for fp, a in outcome.write.items()},
            "delete": outcome.delete,
            "history": [json.dumps(h, separators=(",", ":")) for h in outcome.history],
            "notify": [json.dumps(n, separators=(",", ":")) for n in outcome.notify],
        }
        commit = scripts.script(self.redis, "alerts_commit")
        keys = [self.keys.alert_lease, self.keys.alert_state, self.keys.alert_history,
                self.keys.alert_outbox]
        done = commit(keys=keys, args=[token, int(ttl * 1000), self.history_max,
                                       json.dumps(doc, separators=(",", ":"))])
        return bool(done)

    def history(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        raw = self.redis.lrange(self.keys.alert_history, offset, offset + limit - 1)
        return [json.loads(r) for r in cast(list[str], raw)]

    # -- silences ----------------------------------------------------------------------------
    def silence(self, rule: str, seconds: float, scope: str = "*", comment: str = "",
                author: str = "", now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        entry: dict[str, Any] = {"id": uuid.uuid4().hex[:12], "rule": rule, "scope": scope,
                 "until": now + seconds, "created": now, "comment": comment, "by": author}
        self.redis.hset(self.keys.alert_silences, entry["id"], json.dumps(entry))
        return self.silence_view(entry)

    def silences(self, now: float | None = None) -> list[dict[str, Any]]:
        """Active silences (expired ones are removed when met)."""
        now = time.time() if now is None else now
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.alert_silences))
        active: list[dict[str, Any]] = []
        expired: list[str] = []
        for sid, text in raw.items():
            try:
                entry = json.loads(text)
                until = float(entry["until"])
            except (ValueError, KeyError, TypeError):
                until, entry = 0.0, None
            if entry is not None and until > now:
                active.append(entry)
            else:
                expired.append(sid)
        if expired:
            self.redis.hdel(self.keys.alert_silences, *expired)
        return sorted(active, key=lambda e: e["until"])

    def unsilence(self, silence_id: str) -> bool:
        return bool(self.redis.hdel(self.keys.alert_silences, silence_id))

    @staticmethod
    def silence_view(entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "until_at": iso(entry["until"]), "created_at": iso(entry["created"])}

    # -- the outbox --------------------------------------------------------------------------
    def take(self) -> str | None:
        """The oldest queued notification, moved to ``sending`` (``None`` when none)."""
        found = self.redis.lmove(self.keys.alert_outbox, self.keys.alert_sending,
                                 "RIGHT", "LEFT")
        return cast(str | None, found)

    def done(self, entry: str) -> None:
        self.redis.lrem(self.keys.alert_sending, 1, entry)

    def recover(self) -> int:
        """Move notifications a previous holder was delivering back to the outbox."""
        moved = 0
        while self.redis.lmove(self.keys.alert_sending, self.keys.alert_outbox,
                               "RIGHT", "RIGHT"):
            moved += 1
        return moved

    def pending_notifications(self) -> int:
        return int(self.redis.llen(self.keys.alert_outbox)) + int(
            self.redis.llen(self.keys.alert_sending))

    # -- delivery results --------------------------------------------------------------------
    def delivered(self, notifier: str) -> None:
        self.redis.hincrby(self.keys.alert_stats, f"sent:{notifier}", 1)

    def failed(self, notifier: str, target: str, error: str, attempts: int,
               notification: dict[str, Any], now: float | None = None) -> None:
        """Keep a notification every attempt of which failed (bounded) and count it."""
        now = time.time() if now is None else now
        entry = {"at": iso(now), "ts": now, "notifier": notifier, "target": target,
                 "error": error[:500], "attempts": attempts,
                 "status": notification.get("status"),
                 "alertname": notification.get("labels", {}).get("alertname"),
                 "fingerprint": notification.get("fingerprint"), "notification": notification}
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(self.keys.alert_failed, json.dumps(entry, separators=(",", ":")))
        pipe.ltrim(self.keys.alert_failed, 0, self.history_max - 1)
        pipe.hincrby(self.keys.alert_stats, f"failed:{notifier}", 1)
        pipe.execute()

    def failures(self, limit: int = 20) -> list[dict[str, Any]]:
        raw = self.redis.lrange(self.keys.alert_failed, 0, limit - 1)
        return [json.loads(r) for r in cast(list[str], raw)]

    def stats(self) -> dict[str, dict[str, int]]:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.alert_stats))
        out: dict[str, dict[str, int]] = {"sent": {}, "failed": {}}
        for key, value in raw.items():
            kind, _, notifier = key.partition(":")
            if kind in out:
                out[kind][notifier] = int(value)
        return out


__all__ = ["ACQUIRED", "NOT_HELD", "RENEWED", "AlertStore"]

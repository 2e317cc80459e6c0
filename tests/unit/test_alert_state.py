"""Alert life cycle as a pure function: pending, firing, resolved with hysteresis, one
notification per transition, repeats, silences, missing data, and Prometheus fingerprints."""

from __future__ import annotations

from dataclasses import replace

from celery_warden.alerts.rulefile import load_rules
from celery_warden.alerts.sources import FLEET, Sample
from celery_warden.alerts.state import ZERO_TIME, Alert, Transitions, fingerprint
from celery_warden.settings import load_settings

RULES = {r.name: r for r in load_rules(load_settings())}
RATE = RULES["CeleryTaskHighFailRate"]


class Life:
    """Runs evaluations against an in-memory copy of what the store would keep."""

    def __init__(self, rules, repeat=3600.0):
        self.rules = rules
        self.t = Transitions("fleet-a", hysteresis=10.0, repeat_interval=repeat,
                             external_url="https://warden.example/")
        self.stored: dict[str, Alert] = {}
        self.sent: list[dict] = []
        self.history: list[dict] = []
        self.silences: list[dict] = []

    def step(self, now, samples):
        out = self.t.apply(self.rules, samples, self.stored, self.silences, now)
        for fp in out.delete:
            self.stored.pop(fp, None)
        self.stored.update(out.write)
        self.sent += out.notify
        self.history += out.history
        return out


def test_prometheus_fingerprint():
    """The fingerprint is Prometheus' label-set fingerprint (prometheus/common's test vector),
    so Warden and Alertmanager name the same alert the same way."""
    labels = {"name": "garland, briggs", "fear": "love is not enough"}
    assert int(fingerprint(labels), 16) == 5799056148416392346
    assert fingerprint({}) == "cbf29ce484222325"


def test_fires_once_repeats_after_the_interval_and_resolves_once_with_hysteresis():
    """Breach -> one 'firing' (Alertmanager shape, endsAt zero time); still breached -> no new
    notification until the repeat interval; 9.5 % is inside the hysteresis band (still firing);
    9 % resolves with exactly one 'resolved'."""
    life = Life([RATE], repeat=100.0)
    life.step(0, {RATE.name: [Sample("shop.pay", 30.0, {"count": 40})]})
    assert [n["status"] for n in life.sent] == ["firing"]
    first = life.sent[0]
    assert first["labels"] == {"fleet": "fleet-a", "alertname": "CeleryTaskHighFailRate",
                               "severity": "warning", "name": "shop.pay"}
    assert first["endsAt"] == ZERO_TIME and first["startsAt"] == "1970-01-01T00:00:00Z"
    assert first["fingerprint"] == fingerprint(first["labels"])
    assert "30% of tasks of shop.pay failed" in first["annotations"]["description"]
    assert first["generatorURL"].startswith("https://warden.example/alerts?fingerprint=")
    life.step(15, {RATE.name: [Sample("shop.pay", 12.0)]})
    life.step(30, {RATE.name: [Sample("shop.pay", 9.5)]})
    assert len(life.sent) == 1
    life.step(101, {RATE.name: [Sample("shop.pay", 11.0)]})
    assert [n["reason"] for n in life.sent] == ["first notification", "repeat interval elapsed"]
    life.step(120, {RATE.name: [Sample("shop.pay", 9.0)]})
    assert [n["status"] for n in life.sent] == ["firing", "firing", "resolved"]
    assert life.sent[-1]["endsAt"] == "1970-01-01T00:02:00Z"
    assert not life.stored
    assert [(h["from"], h["to"], h["notified"]) for h in life.history] == [
        ("pending", "firing", True), ("firing", "resolved", True)]


def test_for_keeps_an_alert_pending_and_a_short_breach_never_notifies():
    """With for=60s the alert is pending first; a breach that ends before 60 s leaves no
    notification and no history; one that holds fires at 60 s."""
    rule = replace(RULES["CeleryHighQueueLength"], for_=60.0)
    life = Life([rule])
    life.step(0, {rule.name: [Sample("default", 5000.0)]})
    assert [a.state for a in life.stored.values()] == ["pending"] and not life.sent
    life.step(30, {rule.name: [Sample("default", 10.0)]})
    assert not life.stored and not life.sent and not life.history
    life.step(40, {rule.name: [Sample("default", 5000.0)]})
    life.step(90, {rule.name: [Sample("default", 5000.0)]})
    assert not life.sent
    life.step(100, {rule.name: [Sample("default", 5000.0)]})
    assert [n["status"] for n in life.sent] == ["firing"]
    assert life.sent[0]["labels"]["queue_name"] == "default"


def test_a_silence_suppresses_notifications_not_states():
    """While silenced the alert fires (history says silenced) but nothing is sent; still firing
    when the silence ends, it is notified then; a resolution of an alert never notified is not
    notified either."""
    life = Life([RATE])
    life.silences = [{"rule": "CeleryTask*", "scope": "*", "until": 50}]
    life.step(0, {RATE.name: [Sample("a", 50.0)]})
    assert not life.sent and life.history[-1]["silenced"] is True
    assert [a.state for a in life.stored.values()] == ["firing"]
    life.step(60, {RATE.name: [Sample("a", 50.0)]})
    assert [n["status"] for n in life.sent] == ["firing"]
    life.silences = [{"rule": "CeleryTaskHighFailRate", "scope": "b*", "until": 1e12}]
    life.step(70, {RATE.name: [Sample("a", 50.0), Sample("b1", 50.0)]})
    assert [n["labels"].get("name") for n in life.sent] == ["a"]
    life.step(80, {RATE.name: [Sample("a", 50.0)]})  # b1 resolves, silenced and never told
    assert len(life.sent) == 1
    assert life.history[-1]["to"] == "resolved" and life.history[-1]["notified"] is False


def test_missing_data_keeps_alerts_and_a_vanished_subject_or_disabled_rule_resolves():
    """A rule whose source failed changes nothing; a subject no longer reported resolves, as
    does every alert of a rule switched off."""
    worker = RULES["CeleryWorkerDown"]
    life = Life([RATE, worker])
    life.step(0, {RATE.name: [Sample("a", 50.0)], worker.name: [Sample("w1@h", 200.0)]})
    assert len(life.sent) == 2
    life.step(15, {RATE.name: ConnectionError("redis down"), worker.name: [Sample("w1@h", 215.)]})
    assert len(life.stored) == 2 and len(life.sent) == 2
    life.step(30, {RATE.name: [], worker.name: [Sample("w1@h", 230.0)]})
    assert [n["status"] for n in life.sent][-1] == "resolved"
    assert life.history[-1]["reason"] == "no longer reported"
    life.rules = [RATE, replace(worker, enabled=False)]
    life.step(45, {RATE.name: []})
    assert not life.stored
    assert [n["labels"]["alertname"] for n in life.sent if n["status"] == "resolved"] == [
        "CeleryTaskHighFailRate", "CeleryWorkerDown"]


def test_fleet_wide_alert_has_no_subject_label():
    """An aggregated rule's alert is one per fleet, labelled without a task name."""
    fleet = RULES["CeleryFleetHighFailRate"]
    life = Life([fleet])
    life.step(0, {fleet.name: [Sample(FLEET, 15.0)]})
    assert "name" not in life.sent[0]["labels"]
    assert "of all tasks" in life.sent[0]["annotations"]["description"]

"""The evaluator on real Redis with a real webhook receiver on loopback: one notification per
transition even with two evaluators, a fenced commit, silences, a broken webhook retried and its
failure kept, a bounded history, and the beat entry point."""

from __future__ import annotations

import json
import time

import pytest

from celery_warden.alerts.engine import Evaluator, evaluate_once
from celery_warden.alerts.state import Outcome
from celery_warden.alerts.view import AlertsView
from celery_warden.record.recorder import Recorder
from tests.receiver import receiver
from tests.support import wait_for

FAST = {"WARDEN_ALERT_INTERVAL": 0.4, "WARDEN_ALERT_NOTIFY_BACKOFF": 0.05,
        "WARDEN_ALERT_LOG": "false"}


def record(settings, name: str, failures: int, successes: int) -> None:
    """Task outcomes written through a real recorder (what workers would have flushed)."""
    recorder = Recorder(settings)
    now = time.time()
    for i in range(failures + successes):
        recorder.observe(name, now, "failure" if i < failures else "success", duration=0.01)
    assert recorder.flush()
    recorder.stop()


@pytest.fixture
def evaluators():
    made: list[Evaluator] = []
    yield made
    for e in made:
        e.close()


@pytest.fixture
def view():
    made: list[AlertsView] = []

    def make(settings):
        made.append(AlertsView(settings))
        return made[-1]
    yield make
    for v in made:
        v.close()


def test_two_evaluators_notify_once(settings_factory, evaluators, view):
    """Two evaluators of one fleet (two replicas of `warden serve`): one holds the lease, the
    receiver gets exactly one 'firing' and, after recovery, one 'resolved'."""
    with receiver() as hook:
        settings = settings_factory(WARDEN_ALERT_WEBHOOK_URL=hook.url, **FAST)
        evaluators += [Evaluator(settings).start(), Evaluator(settings).start()]
        record(settings, "t.pay", failures=30, successes=10)
        firing = hook.wait(1)[0]
        assert firing["status"] == "firing"
        assert firing["alerts"][0]["labels"]["alertname"] in (
            "CeleryTaskHighFailRate", "CeleryFleetHighFailRate")
        hook.wait(2)  # the per-task and the fleet-wide rule
        time.sleep(4 * settings.alert_interval)
        assert hook.statuses() == ["firing", "firing"]
        assert sum(e.leader for e in evaluators) == 1
        record(settings, "t.pay", failures=0, successes=500)
        hook.wait(4)
        time.sleep(3 * settings.alert_interval)
        assert hook.statuses() == ["firing", "firing", "resolved", "resolved"]
    history = view(settings).history()
    assert [h["to"] for h in history] == ["resolved", "resolved", "firing", "firing"]


def test_an_evaluator_that_lost_its_lease_writes_nothing(settings_factory, evaluators, view):
    """A commit is fenced by the lease: an evaluator whose lease lapsed and was taken cannot
    change states or queue notifications (so it can never notify twice)."""
    settings = settings_factory(**FAST)
    record(settings, "t.x", failures=30, successes=0)
    a, b = Evaluator(settings), Evaluator(settings)
    evaluators += [a, b]
    assert a.hold_lease()
    a.store.release(a.token)
    assert b.hold_lease()
    assert a.evaluate().evaluated is False and not a.leader
    assert view(settings).alerts() == []
    result = b.evaluate()
    assert result.evaluated and result.firing == 2
    assert not a.store.commit(a.token, 1.0, Outcome(delete=list(a.store.states())))
    assert len(view(settings).alerts()) == 2


def test_a_silence_suppresses_and_its_end_lets_the_alert_through(settings_factory,
                                                                evaluators, view):
    """`warden alerts silence CeleryTaskHighFailRate --for ...`: the alert fires silently
    (visible in the API and history, no notification); when the silence ends it is sent."""
    with receiver() as hook:
        settings = settings_factory(WARDEN_ALERT_WEBHOOK_URL=hook.url, **FAST,
                                    WARDEN_ALERT_DISABLED="CeleryFleetHighFailRate")
        alerts = view(settings)
        silence = alerts.silence("CeleryTaskHighFailRate", 5.0, comment="deploying")
        record(settings, "t.y", failures=30, successes=0)
        evaluators.append(Evaluator(settings).start())
        wait_for(lambda: alerts.overview()["firing"], 10, message="alert firing")
        assert alerts.history()[0]["silenced"] is True and hook.bodies == []
        assert [s["id"] for s in alerts.silences()] == [silence["id"]]
        (body,) = hook.wait(1, timeout=10)
        assert time.time() >= silence["until"]
        assert body["status"] == "firing"
    with pytest.raises(ValueError, match="no alert rule matches 'NoSuchRule'"):
        alerts.silence("NoSuchRule", 60)


def test_a_broken_webhook_is_retried_and_its_failure_is_kept(settings_factory, evaluators,
                                                             view):
    """Every attempt answered 500: the notification is tried WARDEN_ALERT_NOTIFY_ATTEMPTS
    times, then kept in the failed list and counted — never silently dropped."""
    with receiver("/hook/t0ken") as hook:
        hook.answer(*[500] * 10)
        settings = settings_factory(WARDEN_ALERT_WEBHOOK_URL=hook.url, **FAST,
                                    WARDEN_ALERT_NOTIFY_ATTEMPTS=3,
                                    WARDEN_ALERT_DISABLED="CeleryFleetHighFailRate")
        record(settings, "t.z", failures=30, successes=0)
        evaluators.append(Evaluator(settings).start())
        alerts = view(settings)
        failed = wait_for(alerts.failures, 10, message="a failed notification")
        assert len(hook.bodies) == 3
    assert failed[0]["attempts"] == 3 and failed[0]["error"] == "HTTP 500 Internal Server Error"
    assert failed[0]["notifier"] == "webhook" and "t0ken" not in json.dumps(failed)
    overview = alerts.overview()
    assert overview["notifications"]["failed"] == {"webhook": 1}
    assert overview["notifications"]["queued"] == 0
    assert overview["notifications"]["recent_failures"][0]["alertname"] == \
        "CeleryTaskHighFailRate"


def test_history_is_kept_in_redis_within_its_bound(settings_factory, evaluators):
    """WARDEN_ALERT_HISTORY bounds the transition list."""
    settings = settings_factory(WARDEN_ALERT_HISTORY=10, **FAST)
    evaluator = Evaluator(settings)
    evaluators.append(evaluator)
    assert evaluator.hold_lease()
    entries = [{"at": i} for i in range(25)]
    assert evaluator.store.commit(evaluator.token, 1.0, Outcome(history=entries))
    kept = evaluator.store.history(limit=100)
    assert [h["at"] for h in kept] == list(range(24, 14, -1))


def test_beat_round_takes_the_lease_only_when_free(settings_factory, evaluators):
    """maintenance.evaluate_alerts (beat) evaluates when no evaluator holds the lease, and does
    nothing while `warden alerts run` holds it."""
    settings = settings_factory(**FAST)
    record(settings, "t.beat", failures=30, successes=0)
    assert evaluate_once(settings)["firing"] == 2
    holder = Evaluator(settings)
    evaluators.append(holder)
    assert holder.hold_lease()
    assert evaluate_once(settings) == {"evaluated": False, "firing": 0, "notifications": 0,
                                       "errors": {}}

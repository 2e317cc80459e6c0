"""Warden(app): one call wires monitoring in, a second call is a no-op, uninstall undoes it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery, signals

from celery_warden.keys import Keys
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.heartbeat import HeartbeatStep
from celery_warden.warden import Warden

SIGNALS = [signals.before_task_publish, signals.task_received,
           signals.task_prerun, signals.task_postrun, signals.task_failure,
           signals.task_revoked, signals.worker_process_init]


def counts() -> list[int]:
    return [len(sig.receivers) for sig in SIGNALS]


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("warden-unit", set_as_current=False)
    yield app
    warden = Warden.installed_on(app)
    if warden is not None:
        warden.uninstall()


def test_second_call_returns_same_object_and_connects_once(app, settings):
    """Warden(app) twice is one Warden; its handlers are connected to each signal once."""
    before = counts()
    first = Warden(app, settings)
    after_first = counts()
    assert after_first == [n + 1 for n in before]
    second = Warden(app)
    assert second is first
    assert counts() == after_first
    assert second.settings is settings, "the second call does not replace the settings"
    assert Warden.installed_on(app) is first


def test_two_apps_get_two_wardens(settings):
    """Each app has its own Warden (and handlers); installing on one leaves the other bare."""
    a = Celery("warden-a", set_as_current=False)
    b = Celery("warden-b", set_as_current=False)
    before = counts()
    wa = Warden(a, settings)
    try:
        assert Warden.installed_on(b) is None
        wb = Warden(b, settings)
        try:
            assert wa is not wb
            assert counts() == [n + 2 for n in before]
        finally:
            wb.uninstall()
    finally:
        wa.uninstall()
    assert counts() == before


def test_uninstall_disconnects_everything(app, settings):
    """uninstall() removes every handler, the heartbeat step and the wrappers around the
    app's publisher and task consumer, and forgets the app."""
    before = counts()
    warden = Warden(app, settings)
    assert HeartbeatStep in app.steps["worker"]
    assert {"send_task_message", "TaskConsumer"} <= set(vars(app.amqp))
    warden.uninstall()
    assert counts() == before
    assert HeartbeatStep not in app.steps["worker"]
    assert vars(app.amqp)["TaskConsumer"] == type(app.amqp).TaskConsumer.__get__(app.amqp)
    assert Warden.installed_on(app) is None
    again = Warden(app, settings)
    assert again is not warden, "a fresh Warden can be installed after uninstall"
    assert counts() == [n + 1 for n in before]


def test_installed_on_ignores_other_objects():
    """installed_on returns None for apps without Warden and for arbitrary objects."""
    assert Warden.installed_on(Celery("bare", set_as_current=False)) is None
    assert Warden.installed_on(object()) is None


def test_monitor_shares_settings_and_app(app, settings):
    """warden.monitor() reads the same store (same settings) through the same app."""
    warden = Warden(app, settings)
    monitor = warden.monitor()
    try:
        assert isinstance(monitor, CeleryMonitor)
        assert monitor.settings is settings
        assert monitor.app is app
    finally:
        monitor.redis.close()


def test_handlers_only_act_for_their_own_app(app, settings):
    """Task signals are global; a task of another app is ignored, one of ours is recorded."""
    warden = Warden(app, settings)
    warden.recorder.stop()  # keep records in the buffer so the test can count them
    other = Celery("other", set_as_current=False)

    @other.task(name="other.t", shared=False)
    def theirs():
        return 1

    @app.task(name="mine.t", shared=False)
    def mine():
        return 1

    signals.task_prerun.send(sender=theirs, task_id="their-id", task=theirs, args=(), kwargs={})
    signals.task_prerun.send(sender=mine, task_id="my-id", task=mine, args=(), kwargs={})
    # Started tasks are written by the flusher while they run (not from the handler).
    assert warden.recorder.flush()
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    keys = Keys(settings.key_prefix)
    assert client.hget(keys.task("my-id"), "state") == "STARTED"
    assert not client.exists(keys.task("their-id"))


def test_a_task_is_recorded_sent_only_once_its_publish_returned(settings):
    """Warden connects no after_task_publish receiver (Celery's dispatch of it then costs
    nothing): its wrapper of send_task_message records SENT once the publish returned, so a
    publish that raised leaves no SENT record, and one that returned has it."""
    from celery_warden import celery_config
    from celery_warden.embedded import free_port
    from celery_warden.settings import load_settings
    from tests.support import client_app

    assert not [r for r in signals.after_task_publish.receivers
                if "celery_warden" in str(r[0])]
    dead = Celery("warden-dead-broker", set_as_current=False)
    dead.conf.update(celery_config(settings))
    dead.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    warden = Warden(dead, load_settings(REDIS_URL=settings.redis_url,
                                        WARDEN_KEY_PREFIX=settings.key_prefix))
    try:
        assert not [r for r in signals.after_task_publish.receivers
                    if "celery_warden" in str(r[0])]
        with pytest.raises(Exception):  # noqa: B017 - kombu's error for a refused connection
            dead.send_task("t.never", task_id="never-sent", retry=False)
        assert not warden.recorder.holds("never-sent")
    finally:
        warden.uninstall()
    app = client_app(settings)
    result = app.send_task("t.sent", task_id="sent-once")
    assert Warden.installed_on(app).recorder.holds(result.id)  # type: ignore[union-attr]
    assert CeleryMonitor(settings, app=app).get_task_status(result.id)["state"] == "SENT"

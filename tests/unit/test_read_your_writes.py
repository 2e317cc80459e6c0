"""Core defect 4: read your own writes. The spec's example reads a task's status right after
``add.delay(5, 3)``; the publishing process must see what it has just buffered, and an id that no
process has recorded yet is PENDING (as Celery's AsyncResult says), not "never seen"."""

from __future__ import annotations

from celery_warden.read.monitor import CeleryMonitor
from tests.support import client_app


def test_status_right_after_publishing_includes_the_buffered_record(settings):
    """Twenty tasks sent with no worker: each is read as SENT at once, from the same process,
    although the recorder's flush interval has not passed."""
    app = client_app(settings.model_copy(update={"flush_interval": 5.0}))
    monitor = CeleryMonitor(settings, app=app)
    try:
        for i in range(20):
            result = app.send_task("fleet.add", (i, 1))
            status = monitor.get_task_status(result.id)
            assert status["known"] is True, status
            assert status["state"] == "SENT" and status["name"] == "fleet.add"
    finally:
        app.close()


def test_an_id_nobody_recorded_yet_is_pending_not_unknown(settings):
    """Across processes a record can lag one flush interval: the answer is PENDING with
    known False and a detail that says so, never 'never seen' for a task just sent."""
    status = CeleryMonitor(settings).get_task_status("not-recorded-yet")
    assert status["state"] == "PENDING"
    assert status["known"] is False
    assert "WARDEN_FLUSH_INTERVAL" in status["detail"]

"""Core defect 11: two Wardens in one process count a consumer's rejected and unknown messages
once, for their own app only."""

from __future__ import annotations

import uuid

from kombu import Connection, Exchange, Producer

from celery_warden.read.monitor import CeleryMonitor
from tests.support import WorkerProcess, client_app, delete_prefix, wait_for


def test_consumer_signals_are_counted_by_the_running_apps_warden_only(settings, workers,
                                                                      redis_client):
    """An unknown task and a message that is not a task reach the worker of `app`; its Warden
    counts one of each, the second app's Warden (other prefix, same process) none."""
    workers.append(WorkerProcess(settings, app="tests.apps.two_wardens").start())
    app = client_app(settings)
    other = settings.model_copy(update={"key_prefix": f"{settings.key_prefix}other"})
    try:
        app.send_task("two.no_such_task", (1,))
        queue = f"{settings.queue_prefix}default"
        with Connection(settings.effective_broker_url,
                        transport_options=app.conf.broker_transport_options) as conn:
            Producer(conn).publish({"not": "a task"}, exchange=Exchange(queue, type="direct"),
                                   routing_key=queue, headers={"id": str(uuid.uuid4())},
                                   serializer="json")
        assert app.send_task("two.ok", (3,)).get(timeout=30) == 3
        ours = CeleryMonitor(settings)
        wait_for(lambda: ours.get_recorder_stats().get("unknown") == 1
                 and ours.get_recorder_stats().get("rejected") == 1, 15,
                 message="the running app's Warden counts one unknown, one rejected")
        assert CeleryMonitor(other).get_recorder_stats() == {}, "the other Warden counted"
    finally:
        app.close()
        delete_prefix(redis_client, f"{other.key_prefix}:")

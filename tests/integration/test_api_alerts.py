"""The alert evaluator inside ``warden serve``: two replicas, one evaluator (the Redis lease),
one notification, visible at ``GET /api/v1/alerts``; stop the holder and the other takes over.
"""

from __future__ import annotations

import time

from celery_warden.keys import Keys
from celery_warden.serve.tokens import TokenStore
from tests.api_server import ApiServer
from tests.receiver import receiver, warden_client
from tests.support import WorkerProcess, wait_for

INTERVAL = 1.0
SLACK = 3.0


def test_two_serve_replicas_evaluate_once_and_fail_over(settings_factory, workers,
                                                        redis_client):
    """api.explode fails 6 times (100 % > 10 %, at least 5 tasks): the webhook gets one
    Alertmanager 'firing' from whichever replica holds the lease; both replicas show it at
    /api/v1/alerts with the same evaluator; stopping the holder hands the lease over, and the
    new holder does not notify again."""
    with receiver() as hook:
        s = settings_factory(WARDEN_ALERT_INTERVAL=INTERVAL, WARDEN_ALERT_WEBHOOK_URL=hook.url,
                             WARDEN_ALERT_FAILURE_MIN_TASKS=5, WARDEN_ALERT_LOG="false",
                             WARDEN_ALERT_DISABLED="CeleryFleetHighFailRate")
        token, _ = TokenStore(redis_client, Keys(s.key_prefix)).create("ops", "read")
        env = {"WARDEN_SERVE_ALERTS": "true"}
        workers.append(WorkerProcess(s, app="tests.apps.api").start())
        with ApiServer(s, extra_env=env) as one, ApiServer(s, extra_env=env) as two:
            with warden_client(s) as app:
                failures = [app.send_task("api.explode", (f"down {i}",)) for i in range(6)]
                for r in failures:
                    r.get(timeout=30, propagate=False)
            (body,) = hook.wait(1, timeout=30)
            assert body["status"] == "firing"
            assert body["alerts"][0]["labels"]["alertname"] == "CeleryTaskHighFailRate"
            assert body["alerts"][0]["labels"]["name"] == "api.explode"
            views = []
            for server in (one, two):
                with server.client(token) as c:
                    views.append(c.get("/api/v1/alerts").json())
            for view in views:
                assert [a["alertname"] for a in view["firing"]] == ["CeleryTaskHighFailRate"]
            owner = views[0]["evaluator"]["owner"]
            assert owner and owner == views[1]["evaluator"]["owner"]
            holder, other = (one, two) if f":{one.process.pid}:" in owner else (two, one)
            assert f":{holder.process.pid}:" in owner
            holder.stop()  # gives the lease up on the way out
            wait_for(lambda: f":{other.process.pid}:" in str(redis_client.get(
                Keys(s.key_prefix).alert_lease)), INTERVAL + SLACK, 0.05, "the other replica")
            time.sleep(3 * INTERVAL)
            assert hook.statuses() == ["firing"]  # the new holder did not notify it again

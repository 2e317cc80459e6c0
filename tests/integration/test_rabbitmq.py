"""End to end on a RabbitMQ broker: tasks run and are counted exactly; queues carry their arguments.

Warden's store stays on Redis; only the Celery broker is RabbitMQ. Every test uses its own queue
prefix and deletes the queues and exchanges it declared (``rabbit_fleet``), so nothing is left on
a shared broker. Without RabbitMQ these tests skip locally and fail in CI (``rabbitmq_url``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from amqp.exceptions import PreconditionFailed
from celery import Celery
from kombu import Connection

from celery_warden import CeleryMonitor, Warden, celery_config
from celery_warden.config import QUEUES, dead_letter_names, queue_name
from celery_warden.settings import WardenSettings
from tests.conftest import make_settings
from tests.support import WorkerProcess, delete_prefix, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

#: WARDEN_QUEUE_MESSAGE_TTL's default (7 days), in milliseconds as RabbitMQ takes it.
DEFAULT_TTL_MS = 7 * 24 * 3600 * 1000


# -- helpers shared with test_queues_priority.py -------------------------------------------------
def delete_rabbit_objects(settings: WardenSettings) -> None:
    """Delete the queues and exchanges a test's prefix may have declared (one channel each:
    a failed operation closes its channel)."""
    dlx, dlq = dead_letter_names(settings)
    queues = [queue_name(settings, q) for q in QUEUES] + [dlq]
    exchanges = [queue_name(settings, q) for q in QUEUES] + [dlx]
    with Connection(settings.effective_broker_url, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=2)
        for name in queues:
            _quietly(conn, lambda ch, n=name: ch.queue_delete(queue=n))
        for name in exchanges:
            _quietly(conn, lambda ch, n=name: ch.exchange_delete(exchange=n))


def _quietly(conn: Connection, op: Callable[[Any], Any]) -> None:
    channel = conn.channel()
    try:
        op(channel)
    except Exception:  # clean-up of something that may not exist
        pass
    finally:
        with contextlib.suppress(Exception):
            channel.close()


@contextlib.contextmanager
def rabbit_fleet(redis_url: str, rabbitmq_url: str, **overrides: object
                 ) -> Iterator[WardenSettings]:
    """Settings with a RabbitMQ broker (store and results on Redis); cleans both up after."""
    s = make_settings(redis_url, CELERY_BROKER_URL=rabbitmq_url, **overrides)
    try:
        yield s
    finally:
        delete_rabbit_objects(s)
        client = redis.Redis.from_url(redis_url)
        try:
            delete_prefix(client, f"{s.key_prefix}:", s.broker_key_prefix)
        finally:
            client.close()


@contextlib.contextmanager
def client_apps() -> Iterator[Callable[..., Celery]]:
    """Builds Warden-wired publisher apps; uninstalls Warden and closes them afterwards, so no
    stale signal handler of one test handles the next test's publishes."""
    apps: list[Celery] = []

    def make(settings: WardenSettings, warden: bool = True) -> Celery:
        app = Celery(f"client-{settings.key_prefix}", set_as_current=False)
        app.conf.update(celery_config(settings))
        if warden:
            Warden(app, settings)
        apps.append(app)
        return app

    try:
        yield make
    finally:
        for app in apps:
            installed = Warden.installed_on(app)
            if installed is not None:
                installed.uninstall()
            app.close()


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def rabbit_settings(redis_url: str, rabbitmq_url: str) -> Iterator[WardenSettings]:
    with rabbit_fleet(redis_url, rabbitmq_url) as s:
        yield s


@pytest.fixture
def clients() -> Iterator[Callable[..., Celery]]:
    with client_apps() as make:
        yield make


def _declare(conn: Connection, name: str, arguments: dict[str, Any]) -> None:
    """A non-passive declare that must be equivalent to the existing queue (else 406)."""
    channel = conn.channel()
    try:
        channel.queue_declare(queue=name, durable=True, exclusive=False, auto_delete=False,
                              arguments=arguments)
    finally:
        with contextlib.suppress(Exception):
            channel.close()


# -- tests ----------------------------------------------------------------------------------------
def test_tasks_run_and_are_counted_exactly_on_rabbitmq(rabbit_settings, workers, clients):
    """On a RabbitMQ broker 200 successes, 20 failures and 10 tasks retried twice each are
    recorded exactly once each, records carry the worker and queue, and the queues end empty."""
    s = rabbit_settings
    workers.append(WorkerProcess(s, concurrency=2).start())
    app = clients(s)
    adds = [app.send_task("fleet.add", (i, 1)) for i in range(200)]
    fails = [app.send_task("fleet.fail", ("rabbit",)) for _ in range(20)]
    retried = [app.send_task("fleet.retry_then_succeed", (2,)) for _ in range(10)]
    assert [r.get(timeout=60) for r in adds] == [i + 1 for i in range(200)]
    for r in fails:
        r.get(timeout=60, propagate=False)
        assert r.state == "FAILURE"
    assert [r.get(timeout=60) for r in retried] == [2] * 10

    monitor = CeleryMonitor(s, app=app)
    wait_for(lambda: monitor.get_performance_stats("fleet.add", "10m")["success"] >= 200, 15,
             0.2, "200 successes recorded")
    wait_for(lambda: monitor.get_performance_stats("fleet.retry_then_succeed", "10m")["success"]
             >= 10, 15, 0.2, "retried tasks recorded")
    time.sleep(1.0)  # a double count would arrive within a few flush intervals
    add = monitor.get_performance_stats("fleet.add", "10m")
    assert (add["success"], add["failure"], add["count"]) == (200, 0, 200)
    assert monitor.get_performance_stats("fleet.fail", "10m")["failure"] == 20
    retry = monitor.get_performance_stats("fleet.retry_then_succeed", "10m")
    assert (retry["success"], retry["retry"]) == (10, 20)

    status = monitor.get_task_status(adds[0].id)
    assert status["state"] == "SUCCESS"
    assert status["worker"] == workers[0].hostname
    assert status["queue"] == queue_name(s, "default")
    assert status["priority"] == 5
    assert monitor.get_task_status(fails[0].id)["error"] == {"type": "ValueError",
                                                             "message": "rabbit"}
    assert monitor.get_task_status(retried[0].id)["retries"] == 2
    depths = monitor.get_queue_depths([queue_name(s, "default")])
    assert depths == {queue_name(s, "default"): 0}


@pytest.mark.parametrize("mode", ["all", "priority", "none"])
def test_declared_queue_carries_exactly_the_arguments_of_its_mode(redis_url, rabbitmq_url,
                                                                   clients, mode):
    """Publishing declares the queue with exactly the arguments of
    WARDEN_RABBITMQ_QUEUE_ARGUMENTS: all = x-max-priority=10, the message TTL and the
    dead-letter exchange/routing key; priority (the default) = x-max-priority only; none = no
    argument. An equivalent re-declare passes; one that drops, changes or adds any of the four
    is refused by RabbitMQ with 406 PRECONDITION_FAILED."""
    with rabbit_fleet(redis_url, rabbitmq_url, WARDEN_RABBITMQ_QUEUE_ARGUMENTS=mode) as s:
        app = clients(s)
        app.send_task("fleet.noop")  # Celery declares the target queue on publish
        name = queue_name(s, "default")
        dlx, dlq = dead_letter_names(s)
        every = {
            "x-max-priority": 10,
            "x-message-ttl": DEFAULT_TTL_MS,
            "x-dead-letter-exchange": dlx,
            "x-dead-letter-routing-key": dlq,
        }
        expected = {"all": every, "priority": {"x-max-priority": 10}, "none": {}}[mode]
        assert dlx == f"{s.queue_prefix}warden.dlx" and dlq == f"{s.queue_prefix}warden.dlq"
        with Connection(s.effective_broker_url, connect_timeout=5) as conn:
            wait_for(lambda: CeleryMonitor(s, app=app).get_queue_depths([name])[name] == 1, 10,
                     0.1, "queue declared with the message in it")
            _declare(conn, name, expected)  # equivalent: accepted
            for key in every:
                changed = ({k: v for k, v in expected.items() if k != key} if key in expected
                           else {**expected, key: every[key]})
                with pytest.raises(PreconditionFailed):
                    _declare(conn, name, changed)
            with pytest.raises(PreconditionFailed):
                _declare(conn, name, {**expected, "x-max-priority": 5})

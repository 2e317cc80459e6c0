"""celery_config: at-least-once, JSON only, three prefixed queues, broker-specific priorities."""

from __future__ import annotations

import pytest
from celery import Celery

from celery_warden.config import (
    QUEUES,
    WardenRouter,
    build_queues,
    celery_config,
    dead_letter_names,
    dead_letter_queue,
    queue_name,
)
from celery_warden.priority import MAX_PRIORITY
from celery_warden.settings import load_settings

AMQP = "amqp://guest:guest@127.0.0.1:5672//"


def make(**env: object):
    base: dict[str, object] = {"REDIS_URL": "redis://127.0.0.1:6379/0"}
    base.update(env)
    return load_settings(**base)


def test_reliability_and_serialisation_defaults():
    """JSON only, late acks, reject on worker lost, prefetch/concurrency from settings."""
    conf = celery_config(make(CELERY_WORKER_PREFETCH=3, CELERY_WORKER_CONCURRENCY=7))
    assert conf["accept_content"] == ["json"]
    assert conf["result_accept_content"] == ["json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 3
    assert conf["worker_concurrency"] == 7
    assert conf["task_track_started"] is True


def test_broker_and_backend_default_to_redis_url():
    """Without CELERY_BROKER_URL/CELERY_RESULT_BACKEND both come from REDIS_URL."""
    conf = celery_config(make(REDIS_URL="redis://10.1.2.3:6379/4"))
    assert conf["broker_url"] == conf["result_backend"] == "redis://10.1.2.3:6379/4"


def test_three_prefixed_queues_with_default_queue():
    """default/high_priority/low_priority, each prefixed; the default queue is <prefix>default."""
    conf = celery_config(make(WARDEN_QUEUE_PREFIX="fleet1."))
    names = [q.name for q in conf["task_queues"]]
    assert names == ["fleet1.default", "fleet1.high_priority", "fleet1.low_priority"]
    assert [q.routing_key for q in conf["task_queues"]] == names
    assert conf["task_default_queue"] == "fleet1.default"
    assert conf["task_default_routing_key"] == "fleet1.default"
    assert len(QUEUES) == 3


def test_redis_broker_priority_steps_and_no_queue_arguments():
    """On Redis: priority_steps 0..9 (kombu caps Redis priorities at 9), no queue arguments."""
    conf = celery_config(make())
    options = conf["broker_transport_options"]
    assert options["priority_steps"] == list(range(MAX_PRIORITY))
    assert options["queue_order_strategy"] == "priority"
    assert "global_keyprefix" not in options
    assert "result_backend_transport_options" not in conf
    for queue in conf["task_queues"]:
        assert not queue.queue_arguments


def test_broker_key_prefix_sets_global_keyprefix():
    """WARDEN_BROKER_KEY_PREFIX prefixes the Redis broker's and result backend's keys."""
    conf = celery_config(make(WARDEN_BROKER_KEY_PREFIX="fleetA:"))
    assert conf["broker_transport_options"]["global_keyprefix"] == "fleetA:"
    assert conf["result_backend_transport_options"] == {"global_keyprefix": "fleetA:"}


@pytest.mark.parametrize("broker", [AMQP, "pyamqp://guest@rabbit//", "amqps://guest@rabbit//"])
def test_rabbitmq_queue_arguments_all(broker):
    """WARDEN_RABBITMQ_QUEUE_ARGUMENTS=all: each queue gets x-max-priority 10, a message TTL in
    ms and a DLX as queue arguments."""
    s = make(CELERY_BROKER_URL=broker, WARDEN_QUEUE_PREFIX="f.", WARDEN_QUEUE_MESSAGE_TTL=600,
             WARDEN_RABBITMQ_QUEUE_ARGUMENTS="ALL")
    conf = celery_config(s)
    dlx, dlq = dead_letter_names(s)
    assert (dlx, dlq) == ("f.warden.dlx", "f.warden.dlq")
    for queue in conf["task_queues"]:
        assert queue.queue_arguments == {
            "x-max-priority": 10,
            "x-message-ttl": 600_000,
            "x-dead-letter-exchange": dlx,
            "x-dead-letter-routing-key": dlq,
        }
    # Publisher confirms: a publish on a dying connection raises instead of vanishing.
    assert conf["broker_transport_options"] == {"confirm_publish": True}
    dead = dead_letter_queue(s)
    assert dead.name == dlq and dead.exchange.name == dlx and dead.durable


def test_rabbitmq_default_declares_only_the_priority_argument():
    """By default (priority) queues carry only x-max-priority: TTL and dead-lettering come from
    a policy, which RabbitMQ applies to existing queues without redeclaring them."""
    s = make(CELERY_BROKER_URL=AMQP)
    assert s.rabbitmq_queue_arguments == "priority"
    conf = celery_config(s)
    assert [q.queue_arguments for q in conf["task_queues"]] == [{"x-max-priority": 10}] * 3
    assert conf["task_queue_max_priority"] == MAX_PRIORITY


def test_rabbitmq_none_declares_no_argument_even_through_celery():
    """none adopts queues that exist without arguments: no argument of Warden's, and Celery's
    task_queue_max_priority is off, so Celery does not add x-max-priority either."""
    s = make(CELERY_BROKER_URL=AMQP, WARDEN_RABBITMQ_QUEUE_ARGUMENTS="none")
    app = Celery("none-mode", set_as_current=False)
    app.conf.update(celery_config(s))
    assert app.conf.task_queue_max_priority is None
    assert [q.queue_arguments or {} for q in app.amqp.queues.values()] == [{}] * 3
    redis = make(WARDEN_RABBITMQ_QUEUE_ARGUMENTS="none")  # a Redis broker ignores the setting
    assert celery_config(redis)["task_queue_max_priority"] == MAX_PRIORITY


def test_overrides_win():
    """Keyword overrides replace the recommended values."""
    conf = celery_config(make(), task_acks_late=False, worker_concurrency=1)
    assert conf["task_acks_late"] is False and conf["worker_concurrency"] == 1


def test_build_queues_matches_queue_name():
    """queue_name and build_queues agree on the real names of the logical queues."""
    s = make(WARDEN_QUEUE_PREFIX="x-")
    assert [q.name for q in build_queues(s)] == [queue_name(s, q) for q in QUEUES]


def app_with_tasks(settings):
    app = Celery("config-test", set_as_current=False)
    app.conf.update(celery_config(settings))

    @app.task(name="t.critical", warden_queue="high_priority", shared=False)
    def critical():
        return 1

    @app.task(name="t.plain", shared=False)
    def plain():
        return 2

    return app, critical, plain


def test_router_sends_warden_queue_tasks_to_prefixed_queue():
    """A task declaring warden_queue is routed by Celery's router to the prefixed real queue."""
    s = make(WARDEN_QUEUE_PREFIX="fleet9.")
    app, critical, plain = app_with_tasks(s)
    router = app.amqp.router
    assert router.route({}, critical.name, (), {}, critical)["queue"].name == (
        "fleet9.high_priority")
    assert router.route({}, plain.name, (), {}, plain)["queue"].name == "fleet9.default"
    explicit = router.route({"queue": "fleet9.low_priority"}, critical.name, (), {}, critical)
    assert explicit["queue"].name == "fleet9.low_priority", "an explicit queue wins"


def test_router_returns_none_without_warden_queue():
    """WardenRouter leaves tasks without warden_queue (or with an explicit queue) alone."""
    s = make(WARDEN_QUEUE_PREFIX="p.")
    router = WardenRouter(s)

    class Plain:
        pass

    class Critical:
        warden_queue = "high_priority"

    assert router("n", (), {}, {}, task=Plain()) is None
    assert router("n", (), {}, {}, task=None) is None
    assert router("n", (), {}, {}, task=Critical()) == {"queue": "p.high_priority"}
    assert router("n", (), {}, {"queue": "other"}, task=Critical()) is None


def test_result_backend_writes_retry_through_a_store_restart():
    """A result-backend write on a connection error retries (bounded) instead of raising: raised
    in the worker's failure path, it stranded the message unacknowledged (chaos suite)."""
    conf = celery_config(make())
    assert conf["result_backend_always_retry"] is True
    assert 0 < conf["result_backend_max_retries"] <= 20

"""Queue depth and priority order, on the Redis broker and on RabbitMQ.

Messages are published with no worker running, so the depth is exact and the order in which one
worker (concurrency 1, prefetch 1) later runs them is decided by the broker's priority alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from celery import Celery

from celery_warden import CeleryMonitor
from celery_warden.config import queue_name
from celery_warden.settings import WardenSettings
from tests.integration.test_rabbitmq import client_apps, rabbit_fleet
from tests.support import WorkerProcess, wait_for

pytestmark = pytest.mark.slow

#: (label, priority) in publishing order; None publishes without a priority.
PLAN: list[tuple[str, int | None]] = [
    ("low-1", 0), ("low-2", 0), ("low-3", 0), ("four", 4), ("unset", None), ("six", 6),
    ("urgent", 10),
]
#: Execution order the plan must produce: 10 first, unset between 6 and 4 (it counts as 5),
#: equal priorities first-in first-out.
EXPECTED_ORDER = ["urgent", "six", "unset", "four", "low-1", "low-2", "low-3"]


@pytest.fixture
def clients() -> Iterator[Callable[..., Celery]]:
    with client_apps() as make:
        yield make


@pytest.fixture
def rabbit_settings(redis_url: str, rabbitmq_url: str) -> Iterator[WardenSettings]:
    with rabbit_fleet(redis_url, rabbitmq_url) as s:
        yield s


def _publish_mixed(app: Celery, s: WardenSettings) -> int:
    """34 messages to ``default`` at priorities 0..10 (3 each) plus one without a priority,
    and 5 to ``high_priority``; returns how many went to ``default``."""
    for i in range(33):
        app.send_task("fleet.add", (i, 0), priority=i % 11)
    app.send_task("fleet.add", (0, 0))
    for _ in range(5):
        app.send_task("fleet.add", (0, 0), queue=queue_name(s, "high_priority"))
    return 34


def test_redis_queue_depth_sums_the_priority_sub_lists(settings, clients, redis_client):
    """On Redis every priority has its own list; get_queue_depths() reports their sum per queue,
    0 for a configured queue nothing was published to, and 0 for an unknown name (no key)."""
    app = clients(settings)
    n = _publish_mixed(app, settings)
    default, high, low = (queue_name(settings, q) for q in ("default", "high_priority",
                                                              "low_priority"))
    lists = list(redis_client.scan_iter(match=f"{settings.broker_key_prefix}{default}*"))
    assert len(lists) >= 10, f"expected one Redis list per priority, got {sorted(lists)}"
    assert sum(redis_client.llen(k) for k in lists) == n

    monitor = CeleryMonitor(settings, app=app)
    assert monitor.get_queue_depths() == {default: n, high: 5, low: 0}
    unknown = queue_name(settings, "never-used")
    assert monitor.get_queue_depths([unknown]) == {unknown: 0}
    assert monitor.get_kpis("5m")["queue_depth"]["value"] == n + 5


def test_rabbitmq_queue_depth_counts_ready_messages(rabbit_settings, clients):
    """On RabbitMQ get_queue_depths() reports the ready messages of each declared queue (all
    priorities), 0 for a declared empty queue and None for a queue the broker does not have."""
    s = rabbit_settings
    app = clients(s)
    n = _publish_mixed(app, s)
    default, high, low = (queue_name(s, q) for q in ("default", "high_priority", "low_priority"))
    with app.connection_for_write() as conn:  # declare the empty queue the way Celery would
        app.amqp.queues[low].bind(conn.default_channel).declare()
    monitor = CeleryMonitor(s, app=app)
    expected = {default: n, high: 5, low: 0}
    # basic.publish is asynchronous: wait until the broker has enqueued everything.
    wait_for(lambda: monitor.get_queue_depths() == expected, 10, 0.1, f"depths {expected}")
    missing = queue_name(s, "never-declared")
    assert monitor.get_queue_depths([missing, default]) == {missing: None, default: n}


def _assert_priority_order(s: WardenSettings, app: Celery, workers: list[WorkerProcess],
                           redis_client) -> None:
    results = {}
    for label, prio in PLAN:
        options = {} if prio is None else {"priority": prio}
        results[label] = app.send_task("fleet.record_order", (label,), **options)
    monitor = CeleryMonitor(s, app=app)
    default = queue_name(s, "default")
    wait_for(lambda: monitor.get_queue_depths([default])[default] == len(PLAN), 10, 0.1,
             "every message enqueued before the worker starts")
    workers.append(WorkerProcess(s, concurrency=1).start())
    assert s.worker_prefetch == 1
    for label, result in results.items():
        assert result.get(timeout=30) == label
    assert redis_client.lrange(f"{s.key_prefix}:order", 0, -1) == EXPECTED_ORDER
    wait_for(lambda: monitor.get_task_status(results["low-3"].id)["state"] == "SUCCESS", 10,
             0.1, "records written")
    assert monitor.get_task_status(results["unset"].id)["priority"] == 5
    assert monitor.get_task_status(results["urgent"].id)["priority"] == 10
    assert monitor.get_task_status(results["low-1"].id)["priority"] == 0


def test_priority_10_overtakes_0_on_redis(settings, workers, clients, redis_client):
    """Redis broker: with 0s, a 4, an unprioritised task, a 6 and a 10 waiting, one worker
    slot runs the 10 first and the unprioritised one as a 5; equal priorities stay FIFO."""
    _assert_priority_order(settings, clients(settings), workers, redis_client)


def test_priority_10_overtakes_0_on_rabbitmq(rabbit_settings, workers, clients, redis_client):
    """RabbitMQ broker: the same publishing plan gives the same execution order (10 is the most
    urgent on both brokers; no priority means 5)."""
    _assert_priority_order(rabbit_settings, clients(rabbit_settings), workers, redis_client)

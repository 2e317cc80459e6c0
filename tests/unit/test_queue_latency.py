"""The oldest waiting message per queue, read on a real broker without consuming anything:
the tail of every Redis priority lane, the later of send time and ETA, unknown without
Warden's header, and not measured on RabbitMQ (peeking would mark messages redelivered)."""

from __future__ import annotations

import time

from celery import Celery

from celery_warden.config import celery_config
from celery_warden.read.latency import RABBITMQ_REASON
from celery_warden.read.monitor import CeleryMonitor
from tests.receiver import warden_client


def test_oldest_message_age_across_priority_lanes(settings):
    """Three messages at three priorities, the first sent ~1 s ago: the age is that of the
    first whatever lane it sits in; nothing is consumed; an empty queue is 0 s."""
    queue = f"{settings.queue_prefix}default"
    with warden_client(settings) as app:
        first = time.time()
        app.send_task("lat.work", queue=queue, priority=0)
        time.sleep(1.0)
        app.send_task("lat.work", queue=queue, priority=9)
        app.send_task("lat.work", queue=queue, priority=5, countdown=3600)
        monitor = CeleryMonitor(settings, app=app)
        try:
            ages = monitor.get_queue_latency([queue, f"{settings.queue_prefix}low_priority"])
            depth = monitor.get_queue_depths([queue])[queue]
        finally:
            monitor.redis.close()
    age = ages[queue]["age"]
    assert time.time() - first - 0.3 <= age <= time.time() - first + 0.1
    assert ages[f"{settings.queue_prefix}low_priority"] == {"age": 0.0, "reason": None}
    assert depth == 3  # read, not consumed


def test_messages_without_warden_have_no_known_age(settings):
    """A publisher without Warden stamps no warden_sent: the age is unknown, with why."""
    plain = Celery("plain", set_as_current=False)
    plain.conf.update(celery_config(settings))
    queue = f"{settings.queue_prefix}high_priority"
    plain.send_task("lat.work", queue=queue)
    monitor = CeleryMonitor(settings, app=plain)
    try:
        found = monitor.get_queue_latency([queue])[queue]
    finally:
        monitor.redis.close()
        plain.close()
    assert found["age"] is None and "warden_sent" in found["reason"]


def test_rabbitmq_is_not_peeked(settings_factory, rabbitmq_url):
    """On RabbitMQ the age is None with the documented reason (no basic.get)."""
    settings = settings_factory(CELERY_BROKER_URL=rabbitmq_url)
    monitor = CeleryMonitor(settings)
    try:
        found = monitor.get_queue_latency([f"{settings.queue_prefix}default"])
    finally:
        monitor.redis.close()
    assert found == {f"{settings.queue_prefix}default": {"age": None,
                                                        "reason": RABBITMQ_REASON}}

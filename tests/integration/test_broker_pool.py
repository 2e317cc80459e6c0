"""Recurring broker reads (queue depths, health probes) borrow one kept connection instead of
opening one per call, and a kept connection that died is replaced within the same call."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
from celery import Celery
from kombu import pools

from celery_warden.read.health import broker_answers
from celery_warden.read.queues import queue_depths


def _app(url: str) -> Celery:
    return Celery(f"pool-{uuid.uuid4().hex[:6]}", broker=url, set_as_current=False)


def _kept(app: Celery):
    """The pool the reads borrow from (kombu's, per broker URL and options)."""
    return pools.connections[app.connection_for_read()]


def _local_port(app: Celery) -> int | None:
    """The local TCP port of the connection the pool keeps (None when it keeps none open)."""
    conn = _kept(app).acquire(block=True, timeout=5)
    try:
        transport = conn._connection  # the py-amqp connection, when connected
        sock = getattr(getattr(transport, "transport", None), "sock", None)
        return sock.getsockname()[1] if sock is not None else None
    finally:
        conn.release()


def test_rabbitmq_reads_reuse_one_kept_connection(rabbitmq_url):
    """30 depth reads and 30 health probes: one AMQP connection, the same local port before and
    after (a connection per call, as before, keeps none open between calls)."""
    app = _app(rabbitmq_url)
    name = f"pool-q-{uuid.uuid4().hex[:8]}"
    assert queue_depths(app, [name]) == {name: None}  # RabbitMQ does not know it
    port = _local_port(app)
    assert port is not None
    for _ in range(30):
        assert broker_answers(app) is None
        assert queue_depths(app, [name]) == {name: None}
    assert _local_port(app) == port


def test_a_kept_connection_that_died_is_replaced_in_the_same_call(rabbitmq_url):
    """The kept connection's socket is cut (as a broker restart would): the next probe and read
    still answer, from a new connection."""
    app = _app(rabbitmq_url)
    assert broker_answers(app) is None
    conn = _kept(app).acquire(block=True, timeout=5)
    try:
        before = conn._connection.transport.sock.getsockname()[1]
        conn._connection.transport.sock.shutdown(socket.SHUT_RDWR)
    finally:
        conn.release()
    name = f"pool-q-{uuid.uuid4().hex[:8]}"
    assert queue_depths(app, [name]) == {name: None}  # answered: no error reached the caller
    assert broker_answers(app) is None
    assert _local_port(app) not in (None, before)


def test_a_broker_that_does_not_answer_is_reported_not_retried_forever():
    """Nothing listens on the port: the probe says so within a few seconds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    app = _app(f"amqp://guest:guest@127.0.0.1:{port}//")
    t0 = time.monotonic()
    reason = broker_answers(app)
    assert reason is not None and reason.startswith("broker does not answer")
    assert time.monotonic() - t0 < 15


def test_redis_broker_reads_borrow_the_same_kept_connection(redis_url):
    """On a Redis broker too: the depth read and the probe (a PING) go through one kept kombu
    connection."""
    app = _app(redis_url)
    name = f"pool-q-{uuid.uuid4().hex[:8]}"
    assert queue_depths(app, [name]) == {name: 0}
    assert broker_answers(app) is None
    pool = _kept(app)
    first = pool.acquire(block=True, timeout=5)
    first.release()
    for _ in range(10):
        assert queue_depths(app, [name]) == {name: 0}
    again = pool.acquire(block=True, timeout=5)
    try:
        assert again is first
    finally:
        again.release()


def test_a_kept_connection_to_a_broker_that_went_silent_does_not_hang_the_probe(rabbitmq_url,
                                                                                monkeypatch):
    """Through a loopback proxy to RabbitMQ: a probe keeps the connection; the proxy then
    forwards nothing (a broker that stopped answering, the TCP connection still open): the next
    probe and depth read return an error within seconds instead of waiting forever; once the
    proxy forwards again, the probe answers."""
    from urllib.parse import urlsplit

    from celery_warden.read import broker_pool
    from tests.chaos.proxy import CuttableProxy

    monkeypatch.setattr(broker_pool, "READ_TIMEOUT", 1.0)
    target = urlsplit(rabbitmq_url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 5672).start()
    try:
        app = _app(f"amqp://guest:guest@127.0.0.1:{proxy.port}//")
        app.conf.broker_connection_timeout = 2
        assert broker_answers(app) is None
        proxy.frozen.set()
        t0 = time.monotonic()
        reason = broker_answers(app)
        assert reason is not None and reason.startswith("broker does not answer")
        name = f"pool-q-{uuid.uuid4().hex[:8]}"
        with pytest.raises(Exception) as failed:  # any broker error is the expected answer
            queue_depths(app, [name])
        assert not isinstance(failed.value, AssertionError)
        elapsed = time.monotonic() - t0
        assert elapsed < 20, elapsed
        proxy.frozen.clear()
        assert broker_answers(app) is None
    finally:
        proxy.close()

"""Broker connections for reads that recur — health probes, queue depths, oldest ages — pooled.

Why: Celery's ``app.connection_for_read()`` / ``connection_for_write()`` open a new connection
per call. Each health probe (a load balancer or Kubernetes asks every few seconds, per
replica), each ``/metrics`` scrape and each sampler tick paid a TCP and, on RabbitMQ, an AMQP
handshake, and left RabbitMQ a pair of "accepting / closing AMQP connection" log lines: the
"connection churn" RabbitMQ's guide warns against. kombu already keeps connection pools per
broker URL and options (``kombu.pools.connections``, the one Celery's producer pool comes from),
so these reads borrow from it: one connection per concurrent reader, kept open.

A kept connection can die with the broker (a restart, a dropped TCP connection). :func:`using`
then throws that connection away and runs the read once more on a fresh one, so a probe after a
broker restart answers from the restarted broker instead of failing once; a broker that is still
down fails the fresh attempt too, and that error is the answer. A kept connection can also hang:
a broker that stopped answering without closing it. A fresh connection was bounded by its
connect timeout (the AMQP handshake included); a kept AMQP socket waits forever by default, so
its reads get :data:`READ_TIMEOUT` for the duration of the borrow (Celery's own use of the
same pooled connection keeps its setting: the previous timeout is put back).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from kombu import pools

T = TypeVar("T")

#: Seconds a read over a kept AMQP connection may wait for the broker's answer.
READ_TIMEOUT = 5.0
#: Seconds to wait for a pooled connection when every one is lent out (the pool's limit is
#: kombu's global one, 10 by default: more concurrent broker reads than that wait).
ACQUIRE_TIMEOUT = 5.0


def using(app: Any, read: Callable[[Any], T], *, write: bool = False) -> T:
    """``read(connection)`` on a pooled broker connection of ``app`` (its read URL, or its write
    URL with ``write``), once more on a fresh one if the kept connection had died."""
    params = app.connection_for_write() if write else app.connection_for_read()
    pool = pools.connections[params]
    for attempt in (1, 2):
        conn = pool.acquire(block=True, timeout=ACQUIRE_TIMEOUT)
        try:
            with _bounded(conn):
                return read(conn)
        except Exception as exc:
            lost = _lost(conn, exc)
            conn.collect()  # broken or unknown state: whoever borrows it next reconnects
            if attempt == 2 or not lost:
                raise
        finally:
            conn.release()
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def _bounded(conn: Any) -> Iterator[None]:
    """A kept (connected) AMQP connection's socket with :data:`READ_TIMEOUT` while borrowed."""
    transport = getattr(getattr(conn, "_connection", None), "transport", None)
    sock = getattr(transport, "sock", None)
    if sock is None:  # not connected yet (the connect timeout applies) or not AMQP
        yield
        return
    before = sock.gettimeout()
    sock.settimeout(READ_TIMEOUT)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(before)


def _lost(conn: Any, exc: BaseException) -> bool:
    """Whether ``exc`` says the connection itself is gone (worth one fresh attempt)."""
    errors = (*(getattr(conn, "connection_errors", ()) or ()), OSError, EOFError)
    return isinstance(exc, errors)


def is_redis(conn: Any) -> bool:
    """Whether ``conn`` is a kombu connection to a Redis (or Valkey) broker."""
    return str(getattr(conn, "transport_cls", "")).startswith(("redis", "rediss", "valkey"))


def round_trip(conn: Any) -> None:
    """Ask the broker something over ``conn`` (a kept connection looks connected until used):
    a PING on Redis, a channel opened and closed on AMQP (two synchronous frames)."""
    channel = conn.channel()
    try:
        if is_redis(conn):
            channel.client.ping()
    finally:
        channel.close()


__all__ = ["ACQUIRE_TIMEOUT", "READ_TIMEOUT", "is_redis", "round_trip", "using"]

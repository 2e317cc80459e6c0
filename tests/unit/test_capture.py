"""Failure capture: DLQ entries built from raw broker messages and from task request contexts.

Messages are real: published to the test's Redis broker keys (a Celery task message through
``send_task``, or arbitrary bytes through a kombu producer) and fetched back with
``Queue.get``, so :func:`entry_from_message` sees exactly what the consumer would hand it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from kombu import Connection, Exchange, Queue

from celery_warden import celery_config
from celery_warden.config import queue_name
from celery_warden.dlq.capture import entry_from_context, entry_from_message
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.headers import DLQ_ENTRY as ENTRY_HEADER
from celery_warden.headers import REQUEUES as REQUEUES_HEADER
from celery_warden.priority import HEADER as PRIORITY_HEADER
from celery_warden.settings import WardenSettings
from celery_warden.tasks.base import BaseTask

NOT_UTF8 = b"\x80\x81\xfe\xff\x00binary \xc3\x28 payload"
BAD_JSON = b'[[1, 2], {"k": 3}, {"callbacks": null'  # truncated mid-object


@pytest.fixture
def app(settings: WardenSettings) -> Iterator[Celery]:
    app = Celery(f"capture-{settings.key_prefix}", set_as_current=False)
    app.conf.update(celery_config(settings))
    yield app
    app.close()


class Broker:
    """Publishes to and fetches from the test's default queue on the real broker."""

    def __init__(self, app: Celery, settings: WardenSettings, conn: Connection) -> None:
        self.app = app
        self.name = queue_name(settings, "default")
        self.queue = Queue(self.name, Exchange(self.name, type="direct"), routing_key=self.name)
        self.conn = conn

    def publish_raw(self, body: bytes, content_type: str, content_encoding: str,
                    headers: dict[str, Any], priority: int | None = None) -> None:
        self.conn.Producer().publish(
            body, exchange=self.queue.exchange, routing_key=self.name, declare=[self.queue],
            content_type=content_type, content_encoding=content_encoding, headers=headers,
            priority=priority, serializer=None,
        )

    def fetch(self) -> Any:
        message = self.queue(self.conn.default_channel).get(no_ack=True, accept=["json"])
        assert message is not None, "no message in the queue"
        return message


@pytest.fixture
def broker(app: Celery, settings: WardenSettings) -> Iterator[Broker]:
    with app.connection_for_write() as conn:
        yield Broker(app, settings, conn)


@pytest.fixture
def dlq(settings: WardenSettings, app: Celery) -> Iterator[DeadLetterQueue]:
    q = DeadLetterQueue(settings, app=app)
    yield q
    q.redis.close()


# -- undecodable bodies ---------------------------------------------------------------------
def test_invalid_json_body_is_kept_verbatim(broker, settings, dlq):
    """A JSON body that does not parse: the raw text is kept exactly (utf-8), with the content
    type, encoding and headers; no args/kwargs, so the stored entry is parked, not replayed."""
    broker.publish_raw(BAD_JSON, "application/json", "utf-8",
                       {"task": "t.add", "id": "bad-1", "warden_options": {"max_retries": 1}})
    message = broker.fetch()
    with pytest.raises(Exception):  # noqa: B017 - whatever kombu raises for a broken body
        message.decode()

    e = entry_from_message(message, "undecodable", settings.broker_is_redis,
                           ValueError("Expecting value"), "JSONDecodeError: Expecting value")
    assert (e.id, e.task_id, e.name, e.reason) == ("bad-1", "bad-1", "t.add", "undecodable")
    assert e.args is None and e.kwargs is None
    assert not e.replayable
    assert e.raw is not None
    assert e.raw["body"] == BAD_JSON.decode()
    assert e.raw["body_encoding"] == "utf-8"
    assert (e.raw["content_type"], e.raw["content_encoding"]) == ("application/json", "utf-8")
    assert e.raw["headers"]["id"] == "bad-1"
    assert e.headers == {"warden_options": {"max_retries": 1}}
    assert (e.exc_type, e.exc_message) == ("ValueError", "JSONDecodeError: Expecting value")
    assert e.queue == settings.queue_prefix + "default"

    dlq.add(e)
    stored = dlq.get("bad-1")
    assert stored is not None
    assert stored.status == "parked"
    assert stored.raw == e.raw
    assert stored.raw["body"].encode() == BAD_JSON


def test_non_utf8_body_is_kept_as_base64(broker, settings, dlq):
    """Bytes that are not UTF-8 (a pickle, a binary blob) are stored base64-encoded and decode
    back to exactly the bytes that were on the wire."""
    broker.publish_raw(NOT_UTF8, "application/x-python-serialize", "binary",
                       {"task": "t.add", "id": "bin-1"})
    message = broker.fetch()
    e = entry_from_message(message, "undecodable", settings.broker_is_redis)
    assert e.raw is not None
    assert e.raw["body_encoding"] == "base64"
    assert base64.b64decode(e.raw["body"]) == NOT_UTF8
    assert e.raw["content_type"] == "application/x-python-serialize"
    assert e.args is None and e.kwargs is None
    assert e.exc_type is None

    dlq.add(e)
    stored = dlq.get("bin-1")
    assert stored is not None
    assert base64.b64decode(stored.raw["body"]) == NOT_UTF8
    assert stored.status == "parked"


def test_valid_json_that_is_not_a_task_body_has_no_args(broker, settings):
    """A body that is valid JSON but not Celery's (args, kwargs, embed) triple gives no
    args/kwargs (not replayable) and keeps the body."""
    broker.publish_raw(b'{"hello": "world"}', "application/json", "utf-8",
                       {"task": "t.add", "id": "odd-1"})
    e = entry_from_message(broker.fetch(), "invalid_message", settings.broker_is_redis)
    assert e.args is None and e.kwargs is None
    assert e.raw is not None and json.loads(e.raw["body"]) == {"hello": "world"}


def test_message_without_headers_gets_a_generated_id(broker, settings):
    """A message with no task id or name still becomes an entry (``msg-<ns>`` id, no name)."""
    broker.publish_raw(b"not even json", "text/plain", "utf-8", {})
    e = entry_from_message(broker.fetch(), "invalid_message", settings.broker_is_redis)
    assert e.id.startswith("msg-") and e.id == e.task_id
    assert e.name is None
    assert e.raw is not None and e.raw["body"] == "not even json"


# -- valid task messages ------------------------------------------------------------------------
def test_valid_protocol_2_body_fills_args_and_kwargs(app, broker, settings, dlq):
    """An unknown task's real Celery message: args/kwargs decoded from the body, name and id
    from the headers, only warden_* headers kept; stored it is replayable (pending)."""
    result = app.send_task("t.gone", args=[1, "two", [3]], kwargs={"k": {"v": 4}},
                           headers={"warden_options": {"dead_letter": True}, "x-other": 1})
    e = entry_from_message(broker.fetch(), "unknown_task", settings.broker_is_redis)
    assert (e.id, e.task_id, e.name) == (result.id, result.id, "t.gone")
    assert (e.args, e.kwargs) == ([1, "two", [3]], {"k": {"v": 4}})
    assert e.headers == {"warden_options": {"dead_letter": True}}
    assert e.replayable
    assert e.raw is not None
    assert json.loads(e.raw["body"])[:2] == [[1, "two", [3]], {"k": {"v": 4}}]
    assert dlq.add(e).status == "pending"


def test_requeued_message_updates_its_original_entry(app, broker, settings):
    """A message carrying ``warden_dlq_entry`` (a requeue) maps back to that entry id, with
    its requeue count."""
    app.send_task("t.gone", args=[], kwargs={}, task_id="orig-r2",
                  headers={ENTRY_HEADER: "orig", REQUEUES_HEADER: 2})
    e = entry_from_message(broker.fetch(), "unknown_task", settings.broker_is_redis)
    assert (e.id, e.task_id, e.requeues) == ("orig", "orig-r2", 2)


# -- priority ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "broker_priority", "on_redis", "expected"), [
    (8, 3, True, 8),  # the header (user level) wins over the broker property
    (8, 3, False, 8),
    (None, 2, True, 8),  # Redis: broker priority 2 is user priority 10 - 2
    (None, 0, True, 10),
    (None, 10, True, 0),
    (None, 2, False, 2),  # RabbitMQ: the same scale
])
def test_message_priority_is_converted_back_to_user_level(
        broker, header, broker_priority, on_redis, expected):
    """The ``warden_priority`` header is the user-level priority; without it the broker's
    priority property is converted back (Redis: 10 - p; RabbitMQ: unchanged)."""
    headers: dict[str, Any] = {"task": "t.add", "id": "p-1"}
    if header is not None:
        headers[PRIORITY_HEADER] = header
    broker.publish_raw(b"[[], {}, {}]", "application/json", "utf-8", headers,
                       priority=broker_priority)
    message = broker.fetch()
    assert message.properties["priority"] == broker_priority
    assert entry_from_message(message, "unknown_task", on_redis).priority == expected


def test_message_without_any_priority_on_redis_counts_as_most_urgent(broker, settings):
    """No header and no priority: kombu's Redis transport files the message under broker
    priority 0 (polled first), so it is recorded as user priority 10, what it really got."""
    broker.publish_raw(b"[[], {}, {}]", "application/json", "utf-8", {"task": "t", "id": "n"})
    message = broker.fetch()
    assert message.properties.get("priority", 0) == 0
    assert entry_from_message(message, "unknown_task", True).priority == 10


def test_context_priority_prefers_the_header_then_converts_delivery_info(app, settings):
    """In a pool child the request's ``warden_priority`` header wins; without it the delivery
    priority is converted back to user level on Redis."""

    @app.task(base=BaseTask, name="t.ctx", shared=False)
    def ctx(x: int) -> int:
        return x

    task: Any = ctx
    delivery = {"routing_key": queue_name(settings, "default"), "exchange": "", "priority": 1}
    cases = [({PRIORITY_HEADER: 6}, True, 6), ({}, True, 9), ({}, False, 1)]
    for headers, on_redis, expected in cases:
        task.push_request(id="c-1", args=[5], kwargs={}, headers=headers,
                          delivery_info=delivery, hostname="w1@h", retries=0)
        try:
            e = entry_from_context(task, ValueError("bad 5"), "Traceback: bad", "exception",
                                   on_redis)
        finally:
            task.pop_request()
        assert e.priority == expected, (headers, on_redis)
        assert (e.id, e.name, e.args, e.kwargs) == ("c-1", "t.ctx", [5], {})
        assert (e.queue, e.worker, e.exc_type, e.exc_message) == (
            delivery["routing_key"], "w1@h", "ValueError", "bad 5")

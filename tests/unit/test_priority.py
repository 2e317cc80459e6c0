"""Priority: one 0..10 scale (10 most urgent) on both brokers, kept in a header across retries."""

from __future__ import annotations

import pytest

from celery_warden.priority import (
    DEFAULT_PRIORITY,
    HEADER,
    MAX_PRIORITY,
    clamp,
    normalise,
    to_broker,
)


@pytest.mark.parametrize(("user", "broker"), [(10, 0), (0, 10), (None, 5), (7, 3), (5, 5)])
def test_redis_inverts_user_priority(user, broker):
    """On Redis the message property is 10 - priority (kombu polls list 0 first)."""
    headers: dict = {}
    properties = {"priority": user}
    expected_user = DEFAULT_PRIORITY if user is None else user
    assert normalise(headers, properties, broker_is_redis=True) == expected_user
    assert properties["priority"] == broker
    assert headers[HEADER] == expected_user


@pytest.mark.parametrize("user", [0, 3, 10, None])
def test_rabbitmq_keeps_user_priority(user):
    """On RabbitMQ higher numbers already go first, so the property is the user priority."""
    headers: dict = {}
    properties = {"priority": user}
    expected = DEFAULT_PRIORITY if user is None else user
    assert normalise(headers, properties, broker_is_redis=False) == expected
    assert properties["priority"] == expected
    assert headers[HEADER] == expected


def test_missing_priority_property_gets_default():
    """A message published without any priority gets the default, not the most urgent slot."""
    headers: dict = {}
    properties: dict = {}
    assert normalise(headers, properties, broker_is_redis=True) == DEFAULT_PRIORITY
    assert properties["priority"] == MAX_PRIORITY - DEFAULT_PRIORITY


@pytest.mark.parametrize("redis", [True, False])
def test_header_wins_on_republish(redis):
    """A retry re-publishes with the broker priority it received; the header keeps the user's."""
    headers: dict = {}
    properties = {"priority": 9}
    normalise(headers, properties, broker_is_redis=redis)
    broker_priority = properties["priority"]
    # Celery's retry(): same headers, the *broker* priority comes back as the property.
    retry_headers = dict(headers)
    retry_properties = {"priority": broker_priority}
    assert normalise(retry_headers, retry_properties, broker_is_redis=redis) == 9
    assert retry_properties["priority"] == broker_priority
    assert retry_headers[HEADER] == 9
    # And a second retry is still stable (no flip-flopping between 9 and 1).
    again = {"priority": retry_properties["priority"]}
    assert normalise(retry_headers, again, broker_is_redis=redis) == 9
    assert again["priority"] == broker_priority


def test_garbage_header_is_clamped():
    """A header carrying junk is clamped rather than crashing the publisher."""
    headers = {HEADER: "urgent!"}
    properties = {"priority": 2}
    assert normalise(headers, properties, broker_is_redis=True) == DEFAULT_PRIORITY
    assert properties["priority"] == MAX_PRIORITY - DEFAULT_PRIORITY


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 5), ("abc", 5), (object(), 5), ([], 5), (-3, 0), (99, 10), ("7", 7), (3.9, 3),
     (0, 0), (10, 10), ("", 5)],
)
def test_clamp(raw, expected):
    """clamp turns anything into an int in 0..10, falling back to the default for junk."""
    assert clamp(raw) == expected


def test_to_broker_is_an_involution_on_redis():
    """Mapping to Redis twice returns the original value; every value stays in 0..10."""
    for p in range(MAX_PRIORITY + 1):
        assert 0 <= to_broker(p, True) <= MAX_PRIORITY
        assert to_broker(to_broker(p, True), True) == p
        assert to_broker(p, False) == p

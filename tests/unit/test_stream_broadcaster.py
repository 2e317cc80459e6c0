"""The stream's broadcaster: one poll per interval whatever the number of listeners, every event
encoded once and fanned out, a listener that stops reading dropped without holding up the
others, and no polling at all while nobody listens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from celery_warden.alerts.view import AlertsView
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.serve.stream import QUEUE_MAX, Broadcaster, encode, frames
from celery_warden.serve.stream_poll import StreamPoller
from celery_warden.settings import WardenSettings


@pytest.fixture
def poller(settings: WardenSettings) -> Iterator[StreamPoller]:
    monitor = CeleryMonitor(settings)
    yield StreamPoller(monitor, AlertsView(settings, monitor.redis))
    monitor.redis.close()


def test_one_poll_per_interval_for_a_hundred_listeners(poller: StreamPoller) -> None:
    """100 listeners for ~1 s at a 0.25 s interval: about 4 polls (not 400), and every listener
    got the same frames, kpis among them."""

    async def run() -> tuple[int, list[tuple[bytes, ...]]]:
        b = Broadcaster(poller, interval=0.25)
        listeners = [b.subscribe() for _ in range(100)]
        task = asyncio.create_task(b.run())
        await asyncio.sleep(1.1)
        task.cancel()
        received = []
        for listener in listeners:
            frames_ = []
            while not listener.queue.empty():
                frames_.append(listener.queue.get_nowait())
            received.append(tuple(frames_))
        return b.polls, received

    polls, received = asyncio.run(run())
    assert 1 <= polls <= 6  # a loaded machine may poll less often, never once per listener
    assert len(set(received)) == 1  # every listener got the same frames
    assert any(f.startswith(b"event: kpis\ndata: ") for f in received[0])


def test_no_listener_no_poll(poller: StreamPoller) -> None:
    """Nobody connected: the broadcaster waits instead of reading Redis."""

    async def run() -> int:
        b = Broadcaster(poller, interval=0.05)
        task = asyncio.create_task(b.run())
        await asyncio.sleep(0.3)
        task.cancel()
        return b.polls

    assert asyncio.run(run()) == 0


def test_a_slow_listener_is_dropped_and_the_others_get_everything(
        poller: StreamPoller) -> None:
    """A listener that never reads is dropped when its queue is full (its stream ends); a
    reading listener receives every event in order."""

    async def run() -> tuple[bool, list[int], list[bytes]]:
        b = Broadcaster(poller)
        slow, fast = b.subscribe(), b.subscribe()
        got: list[int] = []
        for i in range(QUEUE_MAX + 10):
            b.publish("dlq", {"size": i, "by_reason": {}})
            got.append(json.loads(fast.queue.get_nowait().split(b"data: ")[1])["size"])
        ended = [frame async for frame in frames(b, slow)]
        return slow.dropped.is_set(), got, ended

    dropped, got, ended = asyncio.run(run())
    assert dropped
    assert got == list(range(QUEUE_MAX + 10))
    assert ended == [b"retry: 2000\n: connected\n\n"]  # the stream ends right after the hello


def test_hostile_text_cannot_break_the_frame() -> None:
    """A task name with newlines and a fake event line stays inside one data line."""
    frame = encode("task", {"name": "x\n\nevent: kpis\ndata: {}", "id": "<script>"})
    assert frame.count(b"\n\n") == 1 and frame.endswith(b"\n\n")
    assert frame.splitlines()[0] == b"event: task"
    assert json.loads(frame.splitlines()[1][len(b"data: "):])["id"] == "<script>"

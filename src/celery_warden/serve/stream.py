"""The live stream's broadcaster: one poll of the store per interval, fanned out to listeners.

Why a broadcaster rather than a poll per connection: 100 dashboards polling Redis every second
is 100 times the reads for the same answer. Here one task (started by the server's lifespan,
:func:`stream_broadcaster`) polls through :class:`~celery_warden.serve.stream_poll.StreamPoller`
in a worker thread, encodes each event once as SSE bytes, and puts that one ``bytes`` object on
every listener's ``asyncio.Queue``. A listener whose queue is full (a slow client that stopped
reading) is dropped — its stream ends, the browser's ``EventSource`` reconnects — so a slow
client never blocks the others or grows memory. With no listener the broadcaster does not
poll at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from celery_warden.alerts.view import AlertsView
from celery_warden.serve.context import ServeContext
from celery_warden.serve.stream_poll import StreamPoller

logger = logging.getLogger("celery_warden.serve.stream")

#: Seconds between two polls of the store.
POLL_INTERVAL = 1.0
#: Seconds without an event after which a listener gets a comment line (keeps proxies open).
PING_EVERY = 15.0
#: Events a listener may have waiting before it is dropped as too slow.
QUEUE_MAX = 256
#: Where the broadcaster is kept in ``ServeContext.extras``.
EXTRA = "stream"


def encode(event: str, data: dict[str, Any]) -> bytes:
    """One SSE message. ``json.dumps`` escapes newlines, so a value can never end the frame."""
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


class Listener:
    """One connected client: its queue, and whether it was dropped for being too slow."""

    __slots__ = ("dropped", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_MAX)
        self.dropped = asyncio.Event()


class Broadcaster:
    """Polls once per interval while anyone listens and fans the events out."""

    def __init__(self, poller: StreamPoller, interval: float = POLL_INTERVAL) -> None:
        self.poller = poller
        self.interval = interval
        self.listeners: set[Listener] = set()
        self.polls = 0
        self.dropped = 0
        self.failing = False
        self._wake = asyncio.Event()

    def subscribe(self) -> Listener:
        """A new listener, primed with the latest ``kpis`` and ``dlq`` bodies."""
        listener = Listener()
        for event, body in list(self.poller.latest.items()):
            listener.queue.put_nowait(encode(event, body))
        self.listeners.add(listener)
        self._wake.set()
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        frame = encode(event, data)
        for listener in list(self.listeners):
            try:
                listener.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self.dropped += 1
                self.listeners.discard(listener)
                listener.dropped.set()

    async def run(self) -> None:
        while True:
            if not self.listeners:
                self._wake.clear()
                await self._wake.wait()
            started = time.monotonic()
            try:
                events = await asyncio.to_thread(self.poller.poll)
                self.polls += 1
                if self.failing:
                    self.failing = False
                    logger.warning("warden: stream polling works again")
            except Exception as exc:  # the store or broker is down: try again next interval
                if not self.failing:  # once per outage, not once a second
                    self.failing = True
                    logger.warning("warden: stream poll failed (retrying every %.0f s): %s: %s",
                                   self.interval, type(exc).__name__, exc)
                events = []
            for event, data in events:
                self.publish(event, data)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))


async def frames(broadcaster: Broadcaster, listener: Listener) -> AsyncIterator[bytes]:
    """The bytes one client receives: events as they come, a comment ping when idle."""
    yield b"retry: 2000\n: connected\n\n"
    try:
        while not listener.dropped.is_set():
            try:
                frame = await asyncio.wait_for(listener.queue.get(), PING_EVERY)
            except TimeoutError:
                yield b": ping\n\n"
                continue
            yield frame
    finally:
        broadcaster.unsubscribe(listener)


@asynccontextmanager
async def stream_broadcaster(ctx: ServeContext) -> AsyncIterator[None]:
    """Lifespan part: starts the broadcaster task and stops it with the server."""
    alerts = AlertsView(ctx.settings, ctx.redis)
    broadcaster = Broadcaster(StreamPoller(ctx.monitor, alerts, ctx.masked))
    ctx.extras[EXTRA] = broadcaster
    task = asyncio.create_task(broadcaster.run(), name="warden-stream")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


__all__ = ["EXTRA", "PING_EVERY", "POLL_INTERVAL", "Broadcaster", "Listener", "encode",
           "frames", "stream_broadcaster"]

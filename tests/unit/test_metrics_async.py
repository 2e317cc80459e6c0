"""The API server's asyncio read of a performance summary (``MetricsReader.aperformance``,
awaited on its loop) answers exactly what the blocking read answers: one name, the fleet, each
window length, with and without the block marker, and refuses the same windows."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
import redis.asyncio as aredis

from celery_warden.errors import WindowError
from celery_warden.keys import Keys
from celery_warden.read import metrics
from celery_warden.read.metrics import MetricsReader
from tests.unit.test_blocks import manual, workload


def test_the_asyncio_read_equals_the_blocking_read(settings, redis_client, recorders,
                                                   monkeypatch):
    procs = [manual(settings, recorders) for _ in range(2)]
    now = time.time()
    workload(procs, ["a.one", "a.two"], now - 7000, now, 600, seed=5)
    keys = Keys(settings.key_prefix)
    # Both reads end their windows at the same instant (a minute boundary between two reads
    # would move the window by a minute and the counts with it).
    monkeypatch.setattr(metrics, "time", SimpleNamespace(time=lambda: now + 1,
                                                         monotonic=time.monotonic))

    async def compare() -> None:
        client = aredis.Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            for marker in (True, False):
                if not marker:  # a store whose blocks are not complete yet: minutes only
                    redis_client.delete(keys.blocks_since)
                sync_reader = MetricsReader(settings, redis_client)
                async_reader = MetricsReader(settings, client)
                for name in ("a.one", "a.two", None, "a.unknown"):
                    for window in ("5m", "1h", "90m", "2h"):
                        expected = sync_reader.performance(name, window)
                        got = await async_reader.aperformance(client, name, window)
                        assert got == expected, (marker, name, window)
                with pytest.raises(WindowError):
                    await async_reader.aperformance(client, "a.one", "10y")
        finally:
            await client.aclose()

    asyncio.run(compare())
    assert sum(MetricsReader(settings, redis_client).performance(None, "2h")[k]
               for k in ("success", "failure", "revoked")) > 0  # the workload was read

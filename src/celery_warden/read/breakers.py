"""Circuit breakers, read: every breaker's state and the fleet's trips over a window."""

from __future__ import annotations

import time
from typing import Any

import redis

from celery_warden.fleet.breaker_state import count_trips, read_breakers
from celery_warden.keys import Keys
from celery_warden.read.metrics import Window
from celery_warden.record.windows import parse_window
from celery_warden.settings import WardenSettings


class BreakerReader:
    """Reads the breakers' shared state (two pipelined round trips for all of them)."""

    def __init__(self, settings: WardenSettings, client: redis.Redis) -> None:
        self.keys = Keys(settings.key_prefix)
        self.redis = client

    def all(self) -> list[dict[str, Any]]:
        """Every breaker: state, window counts, trips, config, recent transitions."""
        return read_breakers(self.redis, self.keys)

    def trips(self, window: Window) -> int:
        """Transitions to open, fleet-wide, within the window (KPI 7)."""
        end = time.time()
        return count_trips(self.redis, self.keys, end - parse_window(window), end)


__all__ = ["BreakerReader"]

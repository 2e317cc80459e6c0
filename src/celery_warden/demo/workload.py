"""The workload: a thread sending the reference app's task mix at a steady rate."""

from __future__ import annotations

import random
import threading
import time
from typing import TYPE_CHECKING, Any

from celery_warden.config import queue_name

if TYPE_CHECKING:
    from celery import Celery

    from celery_warden.settings import WardenSettings

#: The workload: (task name, weight). Weights are percentages.
MIX: tuple[tuple[str, int], ...] = (
    ("example.add", 55),
    ("example.process_order", 15),
    ("example.flaky", 12),
    ("example.urgent_ping", 8),
    ("example.slow", 5),
    ("example.always_fails", 5),
)


class Workload(threading.Thread):
    """Sends the task mix at a steady rate by name (``send_task``) with the reference app."""

    def __init__(self, app: Celery, settings: WardenSettings, rate: float) -> None:
        super().__init__(name="warden-demo-workload", daemon=True)
        self.app = app
        self.settings = settings
        self.rate = rate
        self.stopping = threading.Event()
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None
        self.by_name: dict[str, int] = {}
        self._rng = random.Random()
        self._names = [name for name, _ in MIX]
        self._weights = [weight for _, weight in MIX]
        self._order = 0

    def message(self, name: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments and options of one message of ``name``."""
        rng = self._rng
        self._order += 1
        default = queue_name(self.settings, "default")
        if name == "example.add":
            return (rng.randint(0, 1000), rng.randint(0, 1000)), {"queue": default}
        if name == "example.slow":
            return (round(rng.uniform(0.2, 1.0), 3),), {
                "queue": queue_name(self.settings, "low_priority"), "priority": 2}
        if name == "example.flaky":
            return (0.3,), {"queue": default}
        if name == "example.always_fails":
            return (self._order,), {"queue": default}
        if name == "example.process_order":
            items = [{"sku": f"SKU-{rng.randint(1, 500)}", "price": round(rng.uniform(1, 90), 2),
                      "qty": rng.randint(1, 4)} for _ in range(rng.randint(1, 5))]
            return (self._order, items), {"queue": default}
        if name == "example.urgent_ping":
            return (), {"queue": queue_name(self.settings, "high_priority"), "priority": 9}
        return (), {"queue": default}

    def send_one(self) -> None:
        name = self._rng.choices(self._names, self._weights)[0]
        args, options = self.message(name)
        self.app.send_task(name, args=args, ignore_result=True, **options)
        self.sent += 1
        self.by_name[name] = self.by_name.get(name, 0) + 1

    def run(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stopping.is_set():
            try:
                self.send_one()
            except Exception as exc:  # broker unreachable: count it, back off, keep going
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.stopping.wait(1.0)
                next_at = time.monotonic()
                continue
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stopping.wait(delay)
            elif delay < -1.0:  # fell behind (slow broker): do not burst to catch up
                next_at = time.monotonic()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

"""The evaluator: exactly one per fleet, wherever it runs.

It runs as a thread (:meth:`Evaluator.start` / :meth:`Evaluator.stop`: ``warden serve``, the
demo), in the foreground (``warden alerts run``: :meth:`Evaluator.run_forever`), or one round at
a time from beat (:func:`evaluate_once`). Several may run; only the holder of the Redis lease
(``P:alerts:lease``) evaluates and notifies.

Timing (``I`` = ``WARDEN_ALERT_INTERVAL``): every replica wakes every ``I/4`` to acquire or renew
the lease, whose time to live is ``2I/3``; the holder evaluates every ``I``. If the holder dies,
its lease lapses within ``2I/3`` and another replica takes it at its next wake-up, so the fleet
misses at most one evaluation: the take-over happens within one interval. A holder that stalls
past its lease (a slow broker) cannot notify twice: every state change is committed by a script
that checks the lease (``lua/alerts_commit.lua``), and notifications are only queued by it.

Notifications are delivered by a second thread from the Redis outbox (:mod:`.store`), so a
webhook that is down and being retried with backoff never delays an evaluation or a lease
renewal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from celery_warden.alerts.notifiers import Notifier, deliver, notifiers_from
from celery_warden.alerts.rulefile import load_rules
from celery_warden.alerts.rules import Rule
from celery_warden.alerts.sources import Sources
from celery_warden.alerts.state import Transitions
from celery_warden.alerts.store import ACQUIRED, NOT_HELD, AlertStore
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.settings import WardenSettings

logger = logging.getLogger("celery_warden.alerts.engine")


@dataclass(slots=True)
class Round:
    """What one evaluation did (returned by :meth:`Evaluator.evaluate`)."""

    evaluated: bool
    firing: int = 0
    pending: int = 0
    transitions: int = 0
    notifications: int = 0
    errors: dict[str, str] = field(default_factory=dict)


class Evaluator:
    """Evaluates the rules and hands notifications to the notifiers, under the fleet's lease."""

    def __init__(self, settings: WardenSettings, app: Celery | None = None,
                 rules: list[Rule] | None = None, notifiers: list[Notifier] | None = None,
                 monitor: CeleryMonitor | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.rules = load_rules(settings) if rules is None else rules  # RuleError at start
        self.notifiers = notifiers_from(settings) if notifiers is None else notifiers
        self._own_monitor = monitor is None
        self.monitor = monitor or CeleryMonitor(settings, app=app)
        self.clock = clock
        self.store = AlertStore(self.monitor.redis, self.monitor.keys, settings.alert_history)
        self.sources = Sources(settings, self.monitor, clock)
        self.transitions = Transitions(settings.key_prefix, settings.alert_hysteresis,
                                       settings.alert_repeat_interval,
                                       settings.alert_external_url)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.interval = settings.alert_interval
        self.lease_ttl = max(0.2, self.interval * 2 / 3)
        self.tick = self.interval / 4
        self.leader = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- one round ---------------------------------------------------------------------------
    def hold_lease(self) -> bool:
        """Acquire or renew the lease; a new holder first re-queues undelivered notifications."""
        try:
            held = self.store.hold(self.token, self.lease_ttl)
        except Exception as exc:  # Redis down: nobody may notify
            logger.warning("warden alerts: cannot reach Redis for the lease: %s", exc)
            held = NOT_HELD
        if held == ACQUIRED:
            logger.info("warden alerts: this process (%s) is now the fleet's evaluator",
                        self.token)
            self.store.recover()
        self.leader = held != NOT_HELD
        return self.leader

    def evaluate(self) -> Round:
        """One evaluation (the caller holds the lease): read, decide, commit fenced."""
        now = self.clock()
        samples = self.sources.collect(self.rules)
        errors = {name: f"{type(r).__name__}: {r}" for name, r in samples.items()
                  if isinstance(r, Exception)}
        for name, error in errors.items():
            logger.warning("warden alerts: rule %s not evaluated: %s", name, error)
        stored = self.store.states()
        silences = self.store.silences(now)
        outcome = self.transitions.apply(self.rules, samples, stored, silences, now)
        if not self.store.commit(self.token, self.lease_ttl, outcome):
            self.leader = False
            return Round(evaluated=False, errors=errors)
        after = {**{fp: a for fp, a in stored.items() if fp not in outcome.delete},
                 **outcome.write}
        if outcome.notify:
            self._wake.set()
        return Round(evaluated=True,
                     firing=sum(1 for a in after.values() if a.state == "firing"),
                     pending=sum(1 for a in after.values() if a.state == "pending"),
                     transitions=len(outcome.history), notifications=len(outcome.notify),
                     errors=errors)

    def dispatch(self, stop: threading.Event | None = None) -> int:
        """Deliver queued notifications while we hold the lease; returns how many."""
        sent = 0
        stop = stop or threading.Event()
        while self.leader and not stop.is_set():
            entry = self.store.take()
            if entry is None:
                break
            try:
                notification = json.loads(entry)
            except ValueError:
                self.store.done(entry)
                continue
            interrupted = False
            for notifier in self.notifiers:
                ok, attempts, error = deliver(
                    notifier, notification, self.settings.alert_notify_attempts,
                    self.settings.alert_notify_backoff, stop)
                if ok is None:
                    interrupted = True
                    break
                if ok:
                    self.store.delivered(notifier.name)
                else:
                    logger.error("warden alerts: %s notification of %s to %s failed after %d "
                                 "attempt(s): %s", notification.get("status"),
                                 notification.get("labels", {}).get("alertname"),
                                 notifier.target, attempts, error)
                    self.store.failed(notifier.name, notifier.target, error, attempts,
                                      notification)
            if interrupted:
                break  # left in "sending": the next holder re-queues it
            self.store.done(entry)
            sent += 1
        return sent

    def run_once(self, release: bool = True) -> Round:
        """One round for beat: take the lease if free, evaluate, deliver, let go."""
        if not self.hold_lease():
            return Round(evaluated=False)
        try:
            result = self.evaluate()
            self.dispatch()
            return result
        finally:
            if release:
                self.store.release(self.token)
                self.leader = False

    # -- as a service ------------------------------------------------------------------------
    def _evaluate_loop(self) -> None:
        next_at = 0.0
        while not self._stop.is_set():
            if self.hold_lease() and time.monotonic() >= next_at:
                next_at = time.monotonic() + self.interval
                try:
                    self.evaluate()
                except Exception:
                    logger.exception("warden alerts: evaluation failed")
            self._stop.wait(self.tick)

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            try:
                self.dispatch(self._stop)
            except Exception:
                logger.exception("warden alerts: delivering notifications failed")

    def start(self) -> Evaluator:
        """Run in background threads (daemon) until :meth:`stop`."""
        if self._threads:
            return self
        self._stop.clear()
        for target, name in ((self._evaluate_loop, "warden-alerts"),
                             (self._dispatch_loop, "warden-alerts-notify")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both threads and give the lease up, so another replica takes over at once."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        with contextlib.suppress(Exception):  # Redis down: the lease lapses by itself
            self.store.release(self.token)
        self.leader = False

    def close(self) -> None:
        """Stop, and close the Redis connections this evaluator opened."""
        self.stop()
        if self._own_monitor:
            self.monitor.redis.close()

    def run_forever(self) -> None:
        """``warden alerts run``: until interrupted (SIGINT/SIGTERM via KeyboardInterrupt)."""
        self.start()
        try:
            while any(t.is_alive() for t in self._threads):
                time.sleep(0.5)
        finally:
            self.close()


def evaluate_once(settings: WardenSettings, app: Celery | None = None) -> dict[str, Any]:
    """The beat task's body (``maintenance.evaluate_alerts`` in the reference app): one round
    if no other evaluator holds the lease."""
    evaluator = Evaluator(settings, app=app)
    try:
        result = evaluator.run_once()
    finally:
        evaluator.close()
    return {"evaluated": result.evaluated, "firing": result.firing,
            "notifications": result.notifications, "errors": result.errors}


__all__ = ["Evaluator", "Round", "evaluate_once"]

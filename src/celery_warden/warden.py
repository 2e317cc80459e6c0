"""``Warden(app)``: wire monitoring into an existing Celery app with one call.

What the call does: builds this app's :class:`~celery_warden.services.Services` (settings, keys,
store client, redactor, recorder) and hands them to every part it wires in — the signal handlers
(:mod:`celery_warden.record.signals`), the failure capture and DLQ (:mod:`celery_warden.dlq`),
the heartbeat and decode-error bootsteps — then attaches the services to the app, so that base
task classes and fleet primitives find them with :func:`~celery_warden.services.services_for`.
Nothing below this module imports it. A second ``Warden(app)`` returns the same object instead
of double-counting.

It does not change the app's configuration: use :func:`celery_warden.config.celery_config` for
the recommended settings (the reference app does both).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from celery_warden import services as svc
from celery_warden.dlq.broker import declare_dead_letter_queue
from celery_warden.dlq.decode import decode_error_step
from celery_warden.dlq.failures import FailureCapture
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.dlq.transit import TransitWatch
from celery_warden.isolation import guarded
from celery_warden.logs import tracing
from celery_warden.rabbitmq.hooks import consumer_guard, policy_notice, publish_guard
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.heartbeat import HeartbeatStep
from celery_warden.record.publish import PUBLISHING
from celery_warden.record.recorder import Recorder
from celery_warden.record.signals import SignalHandlers
from celery_warden.settings import WardenSettings, load_settings
from celery_warden.tasks.probe import PROBE_TASK, probe

_ATTR = "_celery_warden"
logger = logging.getLogger("celery_warden")


class Warden:
    """Monitoring for one Celery app. Idempotent: ``Warden(app) is Warden(app)``."""

    app: Celery
    settings: WardenSettings
    services: svc.Services
    recorder: Recorder
    failures: FailureCapture
    handlers: SignalHandlers

    def __new__(cls, app: Celery, settings: WardenSettings | None = None) -> Warden:
        existing = cls.installed_on(app)
        if existing is not None:
            return existing
        return super().__new__(cls)

    def __init__(self, app: Celery, settings: WardenSettings | None = None) -> None:
        if getattr(self, "_installed", False):
            return
        self.app = app
        self.settings = settings or load_settings()
        self.recorder = Recorder(self.settings)
        self.services = svc.Services(self.settings, app, self.recorder)
        self.failures = FailureCapture(self.services)
        self.recorder.dlq_sink = self.failures.deliver_spooled  # spooled DLQ entries
        self.transit: TransitWatch | None = None
        ready = [self._watch_transit] if self.settings.broker_is_redis else [
            self._declare_dead_letters]
        self.handlers = SignalHandlers(self.services, self.recorder, self.failures, ready)
        self.handlers.connect()
        tracing.install(self.settings, app)  # WARDEN_OTEL; after our handlers (see tracing)
        self._decode_step = decode_error_step(self.failures)
        app.steps["worker"].add(HeartbeatStep)
        app.steps["consumer"].add(self._decode_step)
        self._wrap_publisher()
        # `warden check --submit` follows it end to end (registered lazily: the app is not
        # finalized here).
        app.task(name=PROBE_TASK, ignore_result=True, shared=False)(probe)
        svc.attach(app, self.services)
        setattr(app, _ATTR, self)
        self._installed = True

    def _declare_dead_letters(self) -> None:
        declare_dead_letter_queue(self.app, self.settings)
        with self.app.connection_for_write() as conn:
            notice = policy_notice(self.settings, conn.virtual_host or "/")
        if notice:
            logger.info("%s", notice)

    def _watch_transit(self) -> None:
        """Redis broker: look for tasks lost between the broker and a worker from this worker's
        main process (only the holder of the fleet's lease looks; see dlq.transit)."""
        if self.settings.lost_in_transit_after <= 0 or self.transit is not None:
            return
        self.transit = TransitWatch(self.app, self.settings, self.dlq(), self.recorder)
        self.transit.start()

    def _wrap_publisher(self) -> None:
        """Mark publishes of this app, so that with several apps (and Wardens) in one process
        each Warden handles only its own app's publish signals; and turn RabbitMQ's refusal of
        a queue that exists with other arguments into one clear error (rabbitmq.hooks)."""
        amqp = self.app.amqp
        original = amqp.send_task_message
        publish = self.handlers.publish
        amqp.__dict__["send_task_message"] = publish_guard(
            self.app, self.settings, original, PUBLISHING, publish.slot,
            guarded(publish.published))
        self._original_sender = original
        # A worker declares its queues when it starts consuming: refuse to start clearly.
        self._original_consumer = amqp.TaskConsumer
        amqp.__dict__["TaskConsumer"] = consumer_guard(self.app, self.settings,
                                                       self._original_consumer)

    @staticmethod
    def installed_on(app: Any) -> Warden | None:
        """The Warden wired into ``app``, if any."""
        existing = getattr(app, _ATTR, None)
        return existing if isinstance(existing, Warden) else None

    def dlq(self) -> DeadLetterQueue:
        """The dead letter queue of this fleet (same store and broker)."""
        return DeadLetterQueue(self.settings, app=self.app)

    def monitor(self) -> CeleryMonitor:
        """A read-side monitor over the same store and broker."""
        return CeleryMonitor(self.settings, app=self.app)

    def uninstall(self) -> None:
        """Disconnect everything (for tests and for apps that re-configure at run time)."""
        self.handlers.disconnect()
        if self.transit is not None:
            self.transit.stop()
            self.transit = None
        self.app.amqp.__dict__["send_task_message"] = self._original_sender
        self.app.amqp.__dict__["TaskConsumer"] = self._original_consumer
        self.app.steps["worker"].discard(HeartbeatStep)
        self.app.steps["consumer"].discard(self._decode_step)
        self.recorder.stop()
        svc.detach(self.app, self.services)
        if getattr(self.app, _ATTR, None) is self:
            delattr(self.app, _ATTR)
        self._installed = False


__all__ = ["Warden"]

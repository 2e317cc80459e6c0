"""``Warden(app)``: wire monitoring into an existing Celery app with one call.

What the call does: connects the signal handlers (:mod:`celery_warden.signals`), adds the
heartbeat bootstep to the worker blueprint, creates this process's recorder, and remembers itself
on the app so a second ``Warden(app)`` returns the same object instead of double-counting.
It does not change the app's configuration: use :func:`celery_warden.config.celery_config` for
the recommended settings (the reference app does both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import Celery

from celery_warden import tracing
from celery_warden.decode_errors import DecodeErrorStep
from celery_warden.heartbeat import Heartbeat, HeartbeatStep
from celery_warden.recorder import Recorder
from celery_warden.settings import WardenSettings, load_settings
from celery_warden.signals import PUBLISHING_APP, SignalHandlers

if TYPE_CHECKING:
    from celery_warden.dlq import DeadLetterQueue
    from celery_warden.monitor import CeleryMonitor

_ATTR = "_celery_warden"


class Warden:
    """Monitoring for one Celery app. Idempotent: ``Warden(app) is Warden(app)``."""

    app: Celery
    settings: WardenSettings
    recorder: Recorder
    handlers: SignalHandlers
    heartbeat: Heartbeat | None
    worker_started: float | None

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
        self.heartbeat = None
        self.worker_started = None
        self.handlers = SignalHandlers(self)
        self.handlers.connect()
        tracing.install(self.settings, app)  # WARDEN_OTEL; after our handlers (see tracing)
        app.steps["worker"].add(HeartbeatStep)
        app.steps["consumer"].add(DecodeErrorStep)
        self._wrap_publisher()
        setattr(app, _ATTR, self)
        self._installed = True

    def _wrap_publisher(self) -> None:
        """Mark publishes of this app, so that with several apps (and Wardens) in one process
        each Warden handles only its own app's publish signals."""
        amqp = self.app.amqp
        original = amqp.send_task_message
        app = self.app

        def send_task_message(*args: Any, **kwargs: Any) -> Any:
            token = PUBLISHING_APP.set(app)
            try:
                return original(*args, **kwargs)
            finally:
                PUBLISHING_APP.reset(token)

        amqp.__dict__["send_task_message"] = send_task_message
        self._original_sender = original

    @staticmethod
    def installed_on(app: Any) -> Warden | None:
        """The Warden wired into ``app``, if any."""
        existing = getattr(app, _ATTR, None)
        return existing if isinstance(existing, Warden) else None

    def dlq(self) -> DeadLetterQueue:
        """The dead letter queue of this fleet (same store and broker)."""
        from celery_warden.dlq import DeadLetterQueue

        return DeadLetterQueue(self.settings, app=self.app)

    def monitor(self) -> CeleryMonitor:
        """A read-side monitor over the same store and broker."""
        from celery_warden.monitor import CeleryMonitor

        return CeleryMonitor(self.settings, app=self.app)

    def uninstall(self) -> None:
        """Disconnect everything (for tests and for apps that re-configure at run time)."""
        self.handlers.disconnect()
        self.app.amqp.__dict__["send_task_message"] = self._original_sender
        self.app.steps["worker"].discard(HeartbeatStep)
        self.app.steps["consumer"].discard(DecodeErrorStep)
        self.recorder.stop()
        if getattr(self.app, _ATTR, None) is self:
            delattr(self.app, _ATTR)
        self._installed = False


__all__ = ["Warden"]

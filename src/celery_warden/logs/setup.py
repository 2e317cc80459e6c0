"""Logging for worker, beat and ``warden`` processes: JSON lines or a readable console format.

``CELERY_JSON_LOGS=true`` gives one JSON object per line; otherwise a readable console format
(colours only on a TTY). Every logger — Celery's own, the user's (stdlib or structlog) and
Warden's — goes through one structlog ``ProcessorFormatter`` on one handler, so every line has
the same fields (see :mod:`celery_warden.logs.context` and ``docs/logging.md``) and passes the
same redaction (:mod:`celery_warden.redaction`) and flood control
(:mod:`celery_warden.logs.flood`).

:func:`install` hooks this into Celery:

* ``setup_logging`` — Celery then installs none of its own handlers. The level is the
  command line's ``--loglevel``/``-l`` when given, else ``CELERY_LOG_LEVEL``;
* ``celeryd_init`` (worker main, before anything is printed) — remembers the node name for the
  ``hostname`` field, configures logging early so start-up warnings are log records too, and in
  JSON mode replaces the worker's banner (printed, not logged) by one ``worker starting`` line
  and makes Celery's printed shutdown notices JSON;
* ``celeryd_after_setup`` — redirects ``print`` in tasks to the ``celery.redirected`` logger
  (``worker_redirect_stdouts``), which Celery skips when logging is customised;
* ``worker_process_shutdown`` — writes flood summaries still pending in a pool child.

:func:`configure_logging` does the same set-up for any other process (``warden`` commands,
scripts); :func:`logging_dict` returns the ``dictConfig`` for projects that merge it into
their own logging configuration.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.config
import os
import sys
from typing import IO, Any

import structlog
from celery import signals
from structlog.typing import EventDict, Processor

from celery_warden.isolation import guarded
from celery_warden.logs import context as lc
from celery_warden.logs import tracing
from celery_warden.logs.flood import FloodFilter
from celery_warden.redaction import Redactor
from celery_warden.settings import WardenSettings

#: Logger of the line that replaces the worker banner in JSON mode.
STARTUP_LOGGER = "celery_warden.worker"
_atexit_registered: list[bool] = []


# -- the chain -------------------------------------------------------------------------------
def context_processors() -> list[Processor]:
    """Fields every line gets (run at the call site for structlog, in the formatter else)."""
    chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        lc.add_timestamp,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        lc.add_process,
        lc.add_celery_context,
    ]
    if tracing.api_available():
        chain.append(tracing.add_trace_ids)
    return chain


def _drop_console_noise(_: Any, __: str, event: EventDict) -> EventDict:
    event.pop("pid", None)
    event.pop("hostname", None)
    return event


def render_processors(settings: WardenSettings, colors: bool = False) -> list[Processor]:
    """What the formatter does last: exceptions, redaction, field names, rendering."""
    redact = lc.RedactProcessor(Redactor(settings.redact_keys))
    meta = structlog.stdlib.ProcessorFormatter.remove_processors_meta
    if settings.json_logs:
        return [
            meta, lc.render_stack_info, lc.structure_exception, redact,
            structlog.processors.EventRenamer("message"), lc.order_fields,
            structlog.processors.JSONRenderer(),
        ]
    return [
        meta, structlog.processors.format_exc_info, _drop_console_noise, redact,
        structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=structlog.dev.
                                      plain_traceback),
    ]


# -- configuration ---------------------------------------------------------------------------
def _default_stream() -> IO[str]:
    """stderr — the real one, even after Celery redirected ``sys.stderr`` to a logger."""
    stream = sys.stderr
    if stream is None or type(stream).__name__ == "LoggingProxy":
        stream = sys.__stderr__
    assert stream is not None
    return stream


def _wants_colour(stream: Any, colorize: bool | None) -> bool:
    if colorize is False or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def logging_dict(settings: WardenSettings, level: str | None = None,
                 stream: IO[str] | None = None, logfile: str | None = None,
                 colorize: bool | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the chosen format, level and destination."""
    stream = stream or _default_stream()
    handler: dict[str, Any]
    if logfile:
        handler = {"class": "logging.handlers.WatchedFileHandler", "filename": logfile,
                   "encoding": "utf-8"}
    else:
        handler = {"class": "logging.StreamHandler", "stream": stream}
    colors = not logfile and not settings.json_logs and _wants_colour(stream, colorize)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "warden": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": render_processors(settings, colors),
                "foreign_pre_chain": [*context_processors(), lc.add_extras],
            }
        },
        "filters": {
            "flood": {"()": FloodFilter, "limit": settings.log_flood_limit,
                      "window": settings.log_flood_window},
        },
        "handlers": {"default": {**handler, "formatter": "warden", "filters": ["flood"]}},
        "root": {"handlers": ["default"], "level": (level or settings.log_level).upper()},
    }


def configure_logging(settings: WardenSettings, level: str | None = None,
                      stream: IO[str] | None = None, logfile: str | None = None,
                      colorize: bool | None = None) -> None:
    """Configure stdlib logging and structlog for this process (``level`` overrides
    ``CELERY_LOG_LEVEL``)."""
    logging.config.dictConfig(logging_dict(settings, level, stream, logfile, colorize))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *context_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def flood_filters() -> list[FloodFilter]:
    """The flood filters on the root logger's handlers (normally one)."""
    return [f for h in logging.getLogger().handlers for f in h.filters
            if isinstance(f, FloodFilter)]


def flush_flood_summaries(**_: Any) -> None:
    """Write the summaries of every open flood window now (shutdown)."""
    for f in flood_filters():
        f.flush()


# -- Celery hooks ----------------------------------------------------------------------------
def loglevel_from_command_line() -> bool:
    """Whether ``--loglevel``/``-l`` was given on the command line (not Celery's default).

    Asks click where the current command's ``loglevel`` came from; without a click context
    (a worker started from code) falls back to looking for the option in ``sys.argv``.
    """
    import click  # celery's command line is click
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if "loglevel" in ctx.params:
            return ctx.get_parameter_source("loglevel") not in (
                None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP,
            )
        ctx = ctx.parent
    return any(a == "-l" or a.startswith(("--loglevel", "-l")) for a in sys.argv[1:])


class _CeleryHooks:
    """The signal receivers :func:`install` connects, bound to one settings object."""

    def __init__(self, settings: WardenSettings) -> None:
        self.settings = settings
        self.redactor = Redactor(settings.redact_keys)

    def setup_logging(self, loglevel: Any = None, logfile: Any = None,
                      colorize: bool | None = None, **_: Any) -> None:
        level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
        explicit = bool(level) and loglevel_from_command_line()
        configure_logging(self.settings, level=str(level) if explicit else None,
                          logfile=logfile if isinstance(logfile, str) else None,
                          colorize=colorize)

    def celeryd_init(self, sender: Any = None, instance: Any = None, **_: Any) -> None:
        lc.set_hostname(str(sender))
        configure_logging(self.settings)  # start-up warnings (e.g. running as root) as records
        if self.settings.json_logs and instance is not None:
            instance.quiet = True  # the banner is print(), not logging: one JSON line instead
            _json_safe_say(self.redactor)

    def celeryd_after_setup(self, sender: Any = None, instance: Any = None, **_: Any) -> None:
        if instance is None:
            return
        if getattr(instance, "redirect_stdouts", False):
            instance.app.log.redirect_stdouts(instance.redirect_stdouts_level)
        if self.settings.json_logs:
            _log_startup(instance, self.redactor)


def install(settings: WardenSettings) -> None:
    """Take over Celery's logging set-up in worker and beat processes of this app."""
    hooks = _CeleryHooks(settings)
    for sig, fn in (
        (signals.setup_logging, hooks.setup_logging),
        (signals.celeryd_init, hooks.celeryd_init),
        (signals.celeryd_after_setup, hooks.celeryd_after_setup),
        (signals.worker_process_shutdown, guarded(flush_flood_summaries)),
    ):
        sig.connect(fn, weak=False, dispatch_uid=f"celery_warden.logging.{fn.__name__}")
    if not _atexit_registered:
        _atexit_registered.append(True)
        atexit.register(flush_flood_summaries)


def _log_startup(worker: Any, redactor: Redactor) -> None:
    """The worker banner's facts as one structured line."""
    import celery

    app = worker.app
    with app.connection_for_write() as conn:
        transport = conn.as_uri()
    queues = sorted(q.name for q in app.amqp.queues.consume_from.values())
    logging.getLogger(STARTUP_LOGGER).info(
        "worker starting", extra={
            "app": app.main, "celery_version": celery.__version__,
            "transport": redactor.redact_text(transport),
            "results": redactor.redact_text(str(app.backend.as_uri())),
            "concurrency": worker.concurrency,
            "pool": str(getattr(worker.pool_cls, "__module__", "")).rsplit(".", 1)[-1],
            "queues": queues,
            "tasks": sorted(n for n in app.tasks if not n.startswith("celery.")),
        },
    )


def _json_safe_say(redactor: Redactor) -> None:
    """Make the worker's printed notices (``worker: Warm shutdown``, ...) JSON lines.

    Celery writes them with ``os.write`` from signal handlers (no logging there: a handler may
    interrupt a write to the same stream), so this stays a single ``os.write`` too.
    """
    from celery.apps import worker as worker_module

    original = getattr(worker_module, "safe_say", None)
    if original is None or getattr(original, "_warden", False):
        return

    def safe_say(msg: str, f: Any = sys.__stderr__) -> None:
        event = lc.add_timestamp(None, "", {})
        event.update({
            "level": "info", "logger": "celery.apps.worker",
            "message": redactor.redact_text(str(msg).strip()),
        })
        event = lc.add_process(None, "", event)
        event["hostname"] = lc.hostname()
        try:
            fd = f.fileno() if hasattr(f, "fileno") else 2
            os.write(fd, (json.dumps(event) + "\n").encode())
        except (OSError, ValueError):
            pass

    safe_say._warden = True  # type: ignore[attr-defined]
    setattr(worker_module, "safe_say", safe_say)  # noqa: B010 - not in celery's type stubs


__all__ = [
    "configure_logging", "context_processors", "flush_flood_summaries", "install",
    "logging_dict", "loglevel_from_command_line", "render_processors",
]

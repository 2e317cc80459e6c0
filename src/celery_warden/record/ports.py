"""What the record layer needs from layers above it, handed in by ``Warden``.

The signal handlers see a task fail for good, a message arrive for an unknown task or a worker
become ready; what to do then (write a DLQ entry, declare RabbitMQ's dead-letter queue) belongs
to the DLQ layer above. ``Warden`` passes those parts in, so nothing here imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class FailureSink(Protocol):
    """Where final failures go (:class:`celery_warden.dlq.failures.FailureCapture`)."""

    #: Task ids the worker's main process dead-lettered as poison pills (revoked locally).
    poisoned: set[str]

    def child_failure(self, task: Any, exc: BaseException | None, einfo: Any) -> str | None:
        """A task failed for good in the pool child running it."""

    def main_failure(self, task: Any, request: Any, exc: BaseException | None, reason: str,
                     einfo: Any = None) -> str | None:
        """A hard time limit or a lost worker, seen in the worker's main process."""

    def redelivered(self, request: Any) -> int | None:
        """A redelivered message arrived; a count when it was dead-lettered as a poison pill."""

    def from_message(self, message: Any, reason: str, exc: BaseException | None = None,
                     extra: str | None = None) -> str | None:
        """A message that never became a task request (unknown task, invalid, undecodable)."""


#: Called in the worker's main process when the worker is ready (e.g. declare dead letters).
ReadyHook = Callable[[], None]

__all__ = ["FailureSink", "ReadyHook"]

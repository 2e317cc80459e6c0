"""One exception root for everything Warden raises on purpose.

Callers catch :class:`WardenError` to handle any Warden failure; the subclasses name the
situation so that control flow never depends on parsing messages (Dramatiq's ``errors.py``
is the model).
"""

from __future__ import annotations


class WardenError(Exception):
    """Root of every exception Warden raises deliberately."""


class SettingsError(WardenError, ValueError):
    """A configuration value is invalid; the message names the variable and what it accepts."""


class WindowError(WardenError, ValueError):
    """A query window is malformed, too short, or longer than the data the store keeps."""


class EmbeddedRedisError(WardenError, RuntimeError):
    """The embedded ``redis-server`` could not be started or did not answer."""


class QueueArgumentsMismatch(WardenError):
    """RabbitMQ queues exist with arguments that differ from what Warden declares, so RabbitMQ
    refuses Warden's declaration (``PRECONDITION_FAILED``). The message names each queue and
    argument and what to do; ``broker_reply`` keeps RabbitMQ's own words."""

    def __init__(self, message: str, broker_reply: str | None = None) -> None:
        self.broker_reply = broker_reply
        super().__init__(message)


class CircuitOpenError(WardenError):
    """A circuit breaker refused the call: it is open (or half-open with no trial permit left).

    ``retry_after`` is the number of seconds until the breaker may let a call through again
    (``None`` when an operator forced it open). Inside a Warden task this never reaches the
    caller: the task is deferred instead.
    """

    def __init__(self, name: str, state: str, retry_after: float | None) -> None:
        self.name = name
        self.state = state
        self.retry_after = retry_after
        when = "" if retry_after is None else f"; retry in {retry_after:.3f}s"
        super().__init__(f"circuit breaker {name!r} is {state}{when}")


class DuplicateTaskError(WardenError):
    """Another run of the same idempotency key holds the claim (raised to callers outside a
    worker; a task in a worker is deferred instead)."""

    def __init__(self, key: str, holder: str | None, retry_after: float | None = None) -> None:
        self.key = key
        self.holder = holder
        self.retry_after = retry_after
        super().__init__(f"idempotency key {key!r} is being processed by task {holder}")


class RateLimited(WardenError):
    """A fleet-wide rate limit has no free slot now; ``retry_after`` says when one is."""

    def __init__(self, limit: str, retry_after: float) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"fleet rate limit {limit} reached; retry in {retry_after:.3f}s")


__all__ = ["CircuitOpenError", "DuplicateTaskError", "EmbeddedRedisError",
           "QueueArgumentsMismatch", "RateLimited", "SettingsError", "WardenError", "WindowError"]

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


class EmbeddedRedisError(WardenError, RuntimeError):
    """The embedded ``redis-server`` could not be started or did not answer."""


__all__ = ["EmbeddedRedisError", "SettingsError", "WardenError"]

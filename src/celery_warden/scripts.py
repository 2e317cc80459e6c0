"""The Lua scripts every Redis-side state change runs through, loaded from ``lua/<name>.lua``.

Why scripts: the store's flush, the DLQ's claims and the fleet primitives each read and change
several keys as one step; a script runs atomically on the server in one round trip, so no two
processes interleave a read and a write and no step costs more than one network trip.
redis-py's ``Script`` calls ``EVALSHA`` and reloads the source on ``NOSCRIPT`` (after a Redis
restart or ``SCRIPT FLUSH``).

The texts are read once, when this module is imported (by the thread importing the app,
normally the main thread), not on first use: a first use on a background thread (the flusher's
first flush) would run an import there, and a pool child forked at that moment would inherit
that module's import lock held and hang on its own first flush.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, TypeVar

import redis
import redis.asyncio as aredis
from redis.commands.core import AsyncScript, Script

S = TypeVar("S", Script, AsyncScript)

_registered: dict[tuple[int, str], Script] = {}
_registered_async: dict[tuple[int, str], AsyncScript] = {}


def _read_all() -> dict[str, str]:
    lua = resources.files("celery_warden").joinpath("lua")
    return {entry.name[: -len(".lua")]: entry.read_text() for entry in lua.iterdir()
            if entry.name.endswith(".lua")}


#: Every ``lua/<name>.lua`` shipped in the package, by name (see the module docstring).
_SOURCES = _read_all()


def source(name: str) -> str:
    """The text of ``lua/<name>.lua`` shipped in the package."""
    return _SOURCES[name]


def script(conn: redis.Redis, name: str) -> Script:
    """The script ``name`` registered on ``conn`` (cached per client object)."""
    return _cached(_registered, conn, name)


def async_script(conn: aredis.Redis, name: str) -> AsyncScript:
    """The script ``name`` registered on the asyncio client ``conn`` (cached per client)."""
    return _cached(_registered_async, conn, name)


def _cached(cache: dict[tuple[int, str], S], conn: Any, name: str) -> S:
    """``cache``'s registration of ``name`` on ``conn``, made anew when the entry belongs to
    another client that got the same ``id`` after the first was collected."""
    key = (id(conn), name)
    found = cache.get(key)
    if found is None or found.registered_client is not conn:
        found = cache[key] = conn.register_script(source(name))
    return found


__all__ = ["async_script", "script", "source"]

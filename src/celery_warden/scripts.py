"""The Lua scripts every Redis-side state change runs through, loaded from ``lua/<name>.lua``.

Why scripts: the store's flush, the DLQ's claims and the fleet primitives each read and change
several keys as one step; a script runs atomically on the server in one round trip, so no two
processes interleave a read and a write and no step costs more than one network trip.
redis-py's ``Script`` calls ``EVALSHA`` and reloads the source on ``NOSCRIPT`` (after a Redis
restart or ``SCRIPT FLUSH``).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

_registered: dict[tuple[int, str], Script] = {}


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua`` shipped in the package."""
    return resources.files("celery_warden").joinpath(f"lua/{name}.lua").read_text()


def script(conn: redis.Redis, name: str) -> Script:
    """The script ``name`` registered on ``conn`` (cached per client object)."""
    key = (id(conn), name)
    found = _registered.get(key)
    if found is None or found.registered_client is not conn:
        found = _registered[key] = conn.register_script(source(name))
    return found


__all__ = ["script", "source"]

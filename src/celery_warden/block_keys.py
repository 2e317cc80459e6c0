"""Key names of the 10-minute metric blocks (``P:m10:<name>:<start>``, ``P:fm10:<start>``) and
of the marker that says since when they are complete (``P:blocks:since``).

Why blocks: a one-hour performance summary of one name merged 61 minute buckets of ~40 fields
in Redis (``lua/merge_buckets.lua``, ~2 ms of Redis CPU); with 10-minute blocks in the middle
it reads 7-16 (:func:`celery_warden.record.windows.cover`). Why a module of its own:
:class:`~celery_warden.keys.Keys` inherits these (one key builder, one keyspace table in
``keys.py``'s docstring) and ``keys.py`` is at its size limit.
"""

from __future__ import annotations


class BlockKeys:
    """Mixin of :class:`~celery_warden.keys.Keys` (which supplies ``prefix``)."""

    __slots__ = ()
    prefix: str

    def name_block(self, task_name: str, start: int) -> str:
        """One name's bucket for the 10 minutes from ``start`` (a multiple of 600): the same
        fields as its minute buckets, summed. ``m10``, not ``m``: a scan of ``P:m:*`` (the
        minute buckets) does not match it."""
        return f"{self.prefix}:m10:{task_name}:{start}"

    def fleet_block(self, start: int) -> str:
        """Every name's 10-minute block folded into one."""
        return f"{self.prefix}:fm10:{start}"

    @property
    def blocks_since(self) -> str:
        """Epoch second from which every writer has written the 10-minute blocks (set once by
        ``lua/flush.lua``, no TTL): a block before it may miss what an older version wrote, so
        readers take its minutes instead."""
        return f"{self.prefix}:blocks:since"


__all__ = ["BlockKeys"]

"""Every Redis key name Warden uses, built in one place under one prefix.

arq's ``constants.py`` is the model: nothing else in the package formats a key string, so a
reader can see the whole keyspace here and an operator can isolate fleets with
``WARDEN_KEY_PREFIX``.

Keyspace (``P`` = prefix):

=================================  =======  ==================================================
key                                type     holds
=================================  =======  ==================================================
``P:task:<id>``                    hash     one task's record (TTL ``WARDEN_TASK_TTL``)
``P:recent``                       zset     task ids by last update time (listing, id lookup)
``P:m:<name>:<minute>``            hash     per-minute metric bucket for one task name
``P:h:<name>:<hour>``              hash     hourly roll-up of the same fields
``P:names``                        zset     task names by last time seen
``P:queues``                       zset     queue names by last time seen
``P:worker:<hostname>``            hash     a worker's latest heartbeat
``P:workers``                      zset     worker hostnames by last heartbeat time
``P:stats:<name>``                 hash     process-level counters (e.g. dropped records)
=================================  =======  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE = 60
HOUR = 3600


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one prefix. Cheap to copy; build it from settings once."""

    prefix: str = "warden"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    @property
    def recent(self) -> str:
        return f"{self.prefix}:recent"

    def minute_bucket(self, task_name: str, minute: int) -> str:
        """Bucket for the minute starting at epoch second ``minute`` (a multiple of 60)."""
        return f"{self.prefix}:m:{task_name}:{minute}"

    def hour_bucket(self, task_name: str, hour: int) -> str:
        """Bucket for the hour starting at epoch second ``hour`` (a multiple of 3600)."""
        return f"{self.prefix}:h:{task_name}:{hour}"

    @property
    def names(self) -> str:
        return f"{self.prefix}:names"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    def worker(self, hostname: str) -> str:
        return f"{self.prefix}:worker:{hostname}"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def stats(self, name: str) -> str:
        return f"{self.prefix}:stats:{name}"

    @property
    def pattern(self) -> str:
        """Glob matching every key under this prefix (for scoped clean-up, never FLUSHDB)."""
        return f"{self.prefix}:*"


def minute_of(ts: float) -> int:
    return int(ts // MINUTE) * MINUTE


def hour_of(ts: float) -> int:
    return int(ts // HOUR) * HOUR


__all__ = ["HOUR", "MINUTE", "Keys", "hour_of", "minute_of"]

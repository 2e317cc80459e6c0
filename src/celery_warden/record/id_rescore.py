"""The one-time upgrade of the id buckets to scored buckets (``lua/id_rescore.lua``).

Why: an id prefix search merges the id buckets newest first by score (``read/task_search.py``).
Before that, buckets were read by ``ZRANGEBYLEX`` and every entry had score 0; a store written
by such a version keeps those entries until their records expire (``WARDEN_TASK_TTL``), and a
merge by score would list them last and outside any ``since``/``until`` range. The retention
sweep (every worker, ``warden serve``, beat's maintenance task) runs :func:`rescore_id_buckets`
until the shared progress key says ``done``: each call gives the score-0 entries of the next
buckets their ``P:recent`` score, at most :data:`ENTRIES_PER_CALL` of them (one atomic step of
~5 ms; sweepers running at once take different buckets). A fresh store walks its 65,536 empty
buckets once, in well under a second.

Until a bucket is rescored its old entries come last in a prefix search, by id, and a
``since``/``until`` range leaves them out: they are the records last written before the
upgrade, so older than every record written since, and the order of the two groups is right.
"""

from __future__ import annotations

from typing import cast

import redis

from celery_warden.keys import Keys
from celery_warden.scripts import script

#: Buckets one script call looks at, at most (an empty one costs ~7 us).
BUCKETS_PER_CALL = 4096
#: Entries one call rescores, at most (~10 us of Redis each, measured at 1,000,000 records).
ENTRIES_PER_CALL = 500
#: Calls per sweep at most (a sweep runs every minute, in every worker): 16,000 entries, so a
#: 1,000,000-record store written by an older version is done within an hour of sweeps.
CALLS_PER_SWEEP = 32


def rescore_id_buckets(client: redis.Redis, keys: Keys, calls: int = CALLS_PER_SWEEP) -> int:
    """Run up to ``calls`` rescoring steps; the entries rescored or removed (0 when done)."""
    run = script(client, "id_rescore")
    moved = 0
    for _ in range(calls):
        step, finished = cast(list[int], run(keys=[keys.recent, keys.id_rescore],
                                             args=[keys.task_id_bucket(""), BUCKETS_PER_CALL,
                                                   ENTRIES_PER_CALL]))
        moved += int(step)
        if int(finished):
            break
    return moved


__all__ = ["BUCKETS_PER_CALL", "CALLS_PER_SWEEP", "ENTRIES_PER_CALL", "rescore_id_buckets"]

"""How writes to one task record are ordered, so that they can arrive in any order.

A record is written by up to three processes (publisher, worker main, pool child) whose flushes
land in any order: the publisher's SENT can arrive after the child's SUCCESS for a fast task.
Each write carries ``(seq, rank)``: ``seq`` orders the deliveries of one task id (retries first,
then deferrals within a retry), ``rank`` orders states within one delivery. The store applies a
write's attempt fields only when its ``(seq, rank)`` is not older than the stored one.
"""

from __future__ import annotations

#: Deferrals (circuit open, rate limited) counted per retry in the delivery order.
MAX_DEFERS = 999

#: Ordering of states within one delivery; a write never moves a record backwards.
RANK_SENT, RANK_RECEIVED, RANK_STARTED, RANK_RETRY, RANK_FINAL = 1, 2, 3, 4, 5

#: States that end a delivery (ranked RANK_FINAL).
FINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED", "IGNORED"})


def delivery_seq(retries: int, defers: int = 0) -> int:
    """Order of one delivery of a task id: retries first, then deferrals within a retry."""
    return retries * (MAX_DEFERS + 1) + min(max(defers, 0), MAX_DEFERS)


def retries_of(seq: int) -> int:
    """The retry count a delivery order belongs to."""
    return seq // (MAX_DEFERS + 1)


__all__ = ["FINAL_STATES", "MAX_DEFERS", "RANK_FINAL", "RANK_RECEIVED", "RANK_RETRY",
           "RANK_SENT", "RANK_STARTED", "delivery_seq", "retries_of"]

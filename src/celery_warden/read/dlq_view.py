"""The DLQ as the API pages it: filters, an offset cursor, counts for confirmations.

Listing reuses :meth:`DeadLetterQueue.list_entries` (newest first, malformed entries skipped
and counted). The cursor is the offset of the next entry among those matching, as text; a
bulk action walks the same filters and acts on at most :data:`BULK_MAX` entries per call
(``capped: true`` says to call again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery_warden.dlq.store import DeadLetterQueue

#: Entries one bulk call or count walks at most.
BULK_MAX = 10_000


@dataclass(frozen=True, slots=True)
class DlqFilter:
    reason: str | None = None
    task_name: str | None = None
    status: str | None = None
    older_than_s: float | None = None


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit() or len(cursor) > 9:
        raise ValueError("invalid cursor")
    return int(cursor)


def dlq_page(dlq: DeadLetterQueue, f: DlqFilter, cursor: str | None,
             limit: int) -> dict[str, Any]:
    offset = _offset(cursor)
    entries = dlq.list_entries(limit=limit + 1, offset=offset, task_name=f.task_name,
                               reason=f.reason, status=f.status, older_than=f.older_than_s)
    more = len(entries) > limit
    return {"items": [dlq.view(e) for e in entries[:limit]],
            "next_cursor": str(offset + limit) if more else None,
            "skipped": entries.skipped}


def matching_ids(dlq: DeadLetterQueue, f: DlqFilter, cap: int = BULK_MAX) -> tuple[list[str],
                                                                                    bool]:
    """Ids of up to ``cap`` matching entries, and whether there were more."""
    entries = dlq.list_entries(limit=cap + 1, task_name=f.task_name, reason=f.reason,
                               status=f.status, older_than=f.older_than_s)
    ids = [e.id for e in entries]
    return ids[:cap], len(ids) > cap


__all__ = ["BULK_MAX", "DlqFilter", "dlq_page", "matching_ids"]

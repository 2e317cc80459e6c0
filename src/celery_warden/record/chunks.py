"""Sealing: a flusher batch turned into numbered chunks, each one script call.

Why chunks carry numbers: a flush can fail after Redis applied part of it (a later call of a
chunked batch fails) or all of it (Redis ran the script but the reply was lost). The batch is
tried again, and counters must not be added twice. Each chunk gets the next number of its
*writer* (one random id per recorder and process); the script keeps the highest number applied
per writer (``P:flushed:<writer>``) and skips a chunk it has seen. Chunks are therefore applied
in number order, and once sealed a chunk never changes except by losing task records the buffer
bound evicts (that only removes writes, so a repeat stays harmless). One key per process
lifetime, not per flush.

Formatting happens here, on the flusher thread: handlers hand over raw values (floats, argument
previews, a running task's start fields) so that nothing is formatted on a task's path.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from celery_warden.keys import INDEXED_STATES, Keys
from celery_warden.record import fold, totals
from celery_warden.record.batch import Batch, Preview, TaskDelta
from celery_warden.record.order import delivery_seq
from celery_warden.redaction import Redactor
from celery_warden.settings import WardenSettings

#: Records per script call. A script blocks the (often shared) Redis while it runs, ~10-15 µs per
#: record, and every other client's command waits behind it: a publisher's ``delay()`` at
#: ~1,500/s waited for flushes of 200 records (~3 ms each) often enough to cost it ~6-19 % of
#: its rate, against 0.5-3.5 % with 25 (``bench/publisher_ab.py``, 2 x 7 alternated rounds,
#: 2026-11-28); a worker's consumer waits the same way. A call has its own cost too: with
#: 100-record batches through ``StoreWriter`` on an embedded Redis, client CPU 5.4-6.4 /
#: 6.2-7.3 / 7.4-8.8 µs and Redis CPU 7-11 / 8-13 / 8-14 µs per record at 200 / 50 / 25 per
#: call. 50 keeps a call under ~1 ms for ~1 µs more per record.
MAX_TASKS_PER_CALL = 50
#: Error groups (distinct failure fingerprints) kept in the store; the least recently seen go.
MAX_ERROR_GROUPS = 10_000
#: The indexed states as the flush script looks them up (a set, as a JSON object).
_IX_STATES = dict.fromkeys(INDEXED_STATES, 1)


@dataclass(slots=True)
class Chunk:
    """One script call's worth of a batch: the numbered unit of idempotency."""

    seq: int
    now: float
    payload: dict[str, Any]
    #: Task records as flat arrays (see :meth:`Chunker.flat`), packed when applied.
    records: list[list[Any]] = field(default_factory=list)
    #: Outcomes counted in its minute buckets (what dropping it would lose, for the report).
    outcomes: int = 0
    #: Whether a write of this chunk was attempted (it may have been applied).
    attempted: bool = False


class Chunker:
    """Seals batches into numbered chunks for one writer id."""

    def __init__(self, settings: WardenSettings, redactor: Redactor | None = None,
                 writer_id: str | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redactor = redactor or Redactor(settings.redact_keys)
        self.writer_id = writer_id or secrets.token_hex(8)
        self.seq = 0

    def seal(self, batch: Batch, now: float) -> list[Chunk]:
        """The batch as chunks of at most ``MAX_TASKS_PER_CALL`` task records; buckets,
        error groups, heartbeats and counters go in the first."""
        records = [self.flat(tid, d) for tid, d in batch.tasks.items()]
        task_key = self.keys.task
        records += [sent_record(task_key, e) for e in batch.sent]
        out = []
        for start in range(0, max(len(records), 1), MAX_TASKS_PER_CALL):
            self.seq += 1
            payload = self._payload(batch, self.seq, include_rest=start == 0)
            out.append(Chunk(self.seq, now, payload, records[start : start + MAX_TASKS_PER_CALL]))
        out[0].outcomes = sum(b.outcomes() for b in batch.minutes.values())
        return out

    def flat(self, task_id: str, d: TaskDelta) -> list[Any]:
        """One task record as a flat array for the script, values formatted here (on the
        flusher thread): key, id, update time, seq, rank, #static pairs, static k/v, attempt
        k/v."""
        fmt = self._format
        static, attempt = d.static, d.attempt
        if d.run is not None:
            run_static, run_attempt, _, _ = d.run.start_fields()  # fresh dicts: ours to update
            if static:
                run_static.update(static)
            static = run_static
            if d.rank:
                run_attempt.update(attempt)
                attempt = run_attempt
        out: list[Any] = [self.keys.task(task_id), task_id, repr(d.updated), d.seq, d.rank, 0]
        # Strings, floats and ints inline (most values): one call less per value, ~15 per
        # record; an empty argument preview is its placeholder.
        append = out.append
        for k, v in static.items():
            if v is not None:
                kind = type(v)
                append(k)
                append(v if kind is str else f"{v:.6f}" if kind is float else
                       v.empty if kind is Preview and not v.value else fmt(v))
        out[5] = (len(out) - 6) // 2
        for k, v in attempt.items():
            if v is not None:
                kind = type(v)
                append(k)
                append(v if kind is str else f"{v:.6f}" if kind is float else
                       str(v) if kind is int else fmt(v))
        return out

    def _format(self, value: Any) -> str:
        """Stored form of a record value. Handlers hand over raw values so that formatting
        (and redacting argument previews) happens here, off the task's path."""
        kind = type(value)  # exact types first: ~15 values per record, on every flush
        if kind is float:
            return f"{value:.6f}"
        if kind is int:
            return str(value)
        if isinstance(value, str):
            return value
        if isinstance(value, float):
            return f"{value:.6f}"
        if isinstance(value, bool | int):
            return str(int(value))
        if isinstance(value, Preview):
            return self.redactor.preview(value.value) if value.value else value.empty
        return json.dumps(value, default=str)

    def _payload(self, batch: Batch, seq: int, *, include_rest: bool) -> dict[str, Any]:
        k = self.keys
        s = self.settings
        payload: dict[str, Any] = {
            "writer": k.flush_writer(self.writer_id),
            "seq": seq,
            # As long as the counters it protects: a chunk can be tried again that late.
            "writer_ttl": s.metrics_retention,
            "task_ttl": s.task_ttl,
            "recent": k.recent,
            "ix": [k.task_name_index(""), k.task_state_index(""), k.task_id_bucket("")],
            "ix_states": _IX_STATES,
            "workers": [],
            "worker_ttl": s.metrics_retention,
            "buckets": [],
            "summaries": [],
            "index": [],
            "stats": [],
            "errors": [],
            "errors_key": k.error_groups,
            "errors_retention": s.metrics_retention,
            "errors_cap": MAX_ERROR_GROUPS,
            "errors_group_prefix": k.error_group(""),
            "errors_tasks_prefix": k.error_group_tasks(""),
        }
        # cjson encodes an empty dict as an empty array; both iterate as empty in Lua.
        if not include_rest:
            return payload
        payload["buckets"] = fold.bucket_entries(batch, k, s)
        payload["blocks"] = fold.blocks_marker(k)
        payload["summaries"] = fold.summary_entries(batch, k, s)
        if batch.names:
            payload["index"].append([k.names, sorted(batch.names)])
        if batch.queues:
            payload["index"].append([k.queues, sorted(batch.queues)])
        payload["workers"] = [[k.worker(h), f, h] for h, f in batch.workers.items()]
        payload["workers_key"] = k.workers
        payload["stats"] = [[k.stats("recorder"), n, v] for n, v in batch.stats.items()]
        payload["errors"] = [
            [k.error_group(fp), k.error_group_tasks(fp), fp, e.count, repr(e.first), repr(e.last),
             e.info or {}, e.names or {}, e.task_ids,  # LPUSH in order: newest ends first
             [[k.error_group_minute(fp, m), c] for m, c in e.minutes.items()],
             s.metrics_retention]
            for fp, e in batch.errors.items()
        ]
        if batch.counters or batch.hists:
            payload["totals"] = totals.fold(batch.counters, batch.hists)
            payload["totals_counters"] = k.totals_counters
            payload["totals_hists"] = k.totals_hists
            payload["totals_packed"] = k.totals_packed
            payload["totals_slots"] = totals.SLOTS
            payload["totals_meta"] = k.totals_meta
            payload["caps"] = [totals.MAX_NAMES, totals.MAX_SETS_PER_NAME,
                               totals.MAX_EXCEPTIONS_PER_NAME]
        return payload


#: Where a publish's time goes: the first publish (retries 0) and a retry's re-publish. The first
#: send time is what the timeline, the workflow's child walk and ``sent_at`` need; overwriting
#: it with each re-publish made a retried task's timeline start after its own retries.
SEND_FIELDS = ("sent", "resent")


def sent_fields(entry: tuple[Any, ...]) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
    """A publish tuple (``RecordBuffer.sent``) as record fields: (static, attempt or None for a
    retry's re-publish — the finishing attempt owns the state —, retries). A re-publish writes
    its time to ``resent`` (:data:`SEND_FIELDS`): ``sent`` keeps the first publish, whatever
    order the writes arrive in."""
    _, name, queue, sent, priority, parent_id, root_id, eta, retries, _host, group = entry
    static: dict[str, Any] = {"name": name, "queue": queue, SEND_FIELDS[retries > 0]: sent,
                              "priority": priority}
    if parent_id:
        static["parent_id"] = parent_id
    if root_id:
        static["root_id"] = root_id
    if group:
        static["group"] = group
    if eta is not None:
        static["eta"] = eta
    return static, ({"state": "SENT"} if retries == 0 else None), retries


def sent_record(task_key: Any, entry: tuple[Any, ...]) -> list[Any]:
    """A publish tuple as the script's flat record, built directly (the publisher's flush
    is most of what Warden costs a publishing process)."""
    tid, name, queue, sent, priority, parent_id, root_id, eta, retries, _host, group = entry
    out: list[Any] = [task_key(tid), tid, repr(sent), delivery_seq(retries), 0 if retries else 1,
                      4, "name", name, "queue", queue, SEND_FIELDS[retries > 0], f"{sent:.6f}",
                      "priority", priority]
    if parent_id:
        out += ("parent_id", parent_id)
    if root_id:
        out += ("root_id", root_id)
    if group:
        out += ("group", group)
    if eta is not None:
        out += ("eta", f"{eta:.6f}")
    out[5] = (len(out) - 6) // 2
    if not retries:
        out += ("state", "SENT", "retries", "0")
    return out


__all__ = ["MAX_ERROR_GROUPS", "MAX_TASKS_PER_CALL", "SEND_FIELDS", "Chunk", "Chunker",
           "sent_fields", "sent_record"]

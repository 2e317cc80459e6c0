"""Task listing and search: filters over the task indexes, newest first, by cursor.

The store keeps task ids by last update in ``P:recent`` and, at the same scores, in one index
per task name and one per non-success state (``lua/flush.lua`` writes them, the retention sweep
and the age trim clean them; ``docs/storage.md``). A search walks the most selective index its
filters allow (the smaller of the name's and the state's over the time range, else
``P:recent``) newest first and checks every filter on each record — inside Redis, in one
read-only script (``lua/task_search.lua``: an ``HMGET`` of the filtered fields per record, no
data sent back for a record that does not match), which returns the fields a list item shows
with each match (no second round trip). An id prefix of two characters or more is answered
from the id buckets (ids grouped by their first four hex digits, each bucket scored like
``P:recent``): the 1, 16 or 256 buckets that can hold it are merged newest first, so a page
examines about as many entries as it returns whatever the store's size. Ids that do not start
with four lowercase hex digits (custom ids) share one bucket read by ``ZRANGEBYLEX``.
Two bounds keep every page cheap whatever the filter: a page holds at most ``limit`` (≤ 200)
items, and at most :data:`SCAN_BUDGET` records are examined per request. A page that ran out of
budget returns what it found with a cursor to go on from (``complete: false``), so a search for
something rare costs the client more requests, never the server a long one.

The cursor is ``<score>:<task id>`` of the last record examined: the next page starts strictly
after it (ties on the score are ordered by id, as ``ZREVRANGEBYSCORE`` orders them).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, cast

import redis
import redis.asyncio as aredis

from celery_warden import scripts
from celery_warden.keys import INDEXED_STATES, Keys
from celery_warden.read.tasks import ITEM_KEYS, SUMMARY_FIELDS, task_summary
from celery_warden.redaction import Redactor

#: Records examined at most per page.
SCAN_BUDGET = 5_000
#: Records one script call examines at most (~10 ms of the server's time).
CALL_BUDGET = 1_000
#: An id prefix this long or longer is answered from the id buckets (a shorter one matches one
#: id in 16: a walk with the id checked finds a page of them at once; from the buckets it would
#: merge 4,096 keys).
MIN_BUCKET_PREFIX = 2
#: Custom ids (the ``~`` bucket) a prefix may match for them to be merged in (they are all
#: read, scored from ``P:recent`` and sorted in one script call); past that ``P:recent`` is
#: walked with the id checked instead.
MAX_PREFIX_MATCHES = 5_000
_HEX = "0123456789abcdef"


class CursorError(ValueError):
    """A cursor that this API did not hand out."""


@dataclass(frozen=True, slots=True)
class TaskFilter:
    state: str | None = None
    name: str | None = None
    queue: str | None = None
    worker: str | None = None
    since: float | None = None
    until: float | None = None
    id_prefix: str | None = None
    q: str | None = None

    def script_filters(self) -> dict[str, str]:
        """The filters as ``lua/task_search.lua`` applies them (absent = any)."""
        out = {"state": self.state.upper() if self.state else None, "name": self.name,
               "queue": self.queue, "worker": self.worker, "id_prefix": self.id_prefix,
               "q": self.q}
        return {k: v for k, v in out.items() if v}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def id_buckets(keys: Keys, prefix: str) -> list[str]:
    """The id buckets that can hold ids starting with ``prefix`` (``lua/flush.lua`` puts an id
    whose first 4 characters are lowercase hex digits in that bucket, any other in ``~``); empty
    when the prefix is too short to be worth it."""
    if len(prefix) < MIN_BUCKET_PREFIX:
        return []
    head, other = prefix[:4], keys.task_id_bucket("~")
    if any(c not in _HEX for c in head):
        return [other]
    tails = ("".join(t) for t in itertools.product(_HEX, repeat=4 - len(head)))
    return [keys.task_id_bucket(head + tail) for tail in tails] + (
        [other] if len(head) < 4 else [])


def parse_cursor(cursor: str) -> tuple[float, str]:
    score, sep, task_id = cursor.partition(":")
    try:
        value = float(score)
    except ValueError:
        raise CursorError("invalid cursor") from None
    if not sep or value != value:  # NaN
        raise CursorError("invalid cursor")
    return value, task_id


#: One store call the search needs, as the drivers of :class:`TaskSearch` run it:
#: ``("search", keys, args)`` -> the reply of ``lua/task_search.lua``, or
#: ``("pipe", [(command, *args), ...])`` -> the replies of those redis-py commands, pipelined.
Call = tuple[Any, ...]
Steps = Generator[Call, Any, dict[str, Any]]


def masked_items(redactor: Redactor, items: list[dict[str, Any]],
                 raw: list[list[str | None]]) -> list[dict[str, Any]]:
    """``redactor.redact(items)`` for list items built by
    :func:`~celery_warden.read.tasks.task_summary` from the script's replies ``raw``.

    Why from the replies: every string of an item is one of the record values it was built
    from (an id, a name, an error message already masked), or one the item makes itself (ISO
    times, ``PENDING``), which holds no anchor word, URL or secret key. So when no item key is
    secret and the replies' strings, joined, pass no gate of the redactor
    (:meth:`~celery_warden.redaction.Redactor.may_change`), masking the items changes nothing
    and is skipped: one join of a flat list instead of a walk through 50-200 dicts (~150 µs of
    a page's ~1 ms of server CPU). Otherwise the items are masked as any response body is
    (``tests/unit/test_task_search_mask.py`` compares the two on hostile values)."""
    if any(map(redactor.is_secret, ITEM_KEYS)) or redactor.may_change(
            "\n".join([v for rows in raw for v in rows if v is not None])):
        return redactor.redact_records(items)
    return items


class TaskSearch:
    """Lists tasks from the task indexes with filters, newest first.

    The search itself (:meth:`steps`) performs no I/O: it yields the store calls it needs and
    is sent their replies, so the blocking :meth:`page` and the asyncio :meth:`apage` (the API
    server awaits it on its loop, no thread pool hop) run one algorithm."""

    def __init__(self, client: redis.Redis, keys: Keys, redactor: Redactor) -> None:
        self.redis = client
        self.keys = keys
        self.redactor = redactor

    def page(self, f: TaskFilter, cursor: str | None = None, limit: int = 50,
             budget: int = SCAN_BUDGET) -> dict[str, Any]:
        """``{"items", "next_cursor", "complete", "examined"}``: ``next_cursor`` is ``None``
        when nothing older is left to examine (read with the blocking client)."""
        return cast(dict[str, Any], self._run(self.steps(f, cursor, limit, budget)))

    async def apage(self, client: aredis.Redis, f: TaskFilter, cursor: str | None = None,
                    limit: int = 50, budget: int = SCAN_BUDGET) -> dict[str, Any]:
        """:meth:`page` read through the asyncio ``client`` instead."""
        steps = self.steps(f, cursor, limit, budget)
        return cast(dict[str, Any], await self._arun(client, steps))

    def index(self, f: TaskFilter) -> str:
        """The index a search for ``f`` walks (:meth:`index_steps`)."""
        return cast(str, self._run(self.index_steps(f)))

    async def _arun(self, client: aredis.Redis, steps: Generator[Call, Any, Any]) -> Any:
        """Run ``steps`` with the asyncio ``client``; their return value."""
        reply: Any = None
        try:
            while True:
                call = steps.send(reply)
                if call[0] == "search":
                    reply = await scripts.async_script(client, "task_search")(
                        keys=call[1], args=call[2])
                else:
                    pipe = client.pipeline(transaction=False)
                    for command, *args in call[1]:
                        getattr(pipe, command)(*args)
                    reply = await pipe.execute()
        except StopIteration as done:
            return done.value

    def _run(self, steps: Generator[Call, Any, Any]) -> Any:
        """Run ``steps`` with the blocking client; their return value."""
        reply: Any = None
        try:
            while True:
                call = steps.send(reply)
                if call[0] == "search":
                    reply = scripts.script(self.redis, "task_search")(keys=call[1],
                                                                      args=call[2])
                else:
                    pipe = self.redis.pipeline(transaction=False)
                    for command, *args in call[1]:
                        getattr(pipe, command)(*args)
                    reply = pipe.execute()
        except StopIteration as done:
            return done.value

    def steps(self, f: TaskFilter, cursor: str | None, limit: int, budget: int) -> Steps:
        """The search as a generator of store calls (:data:`Call`). The walk and the filters
        run in Redis (``lua/task_search.lua``), :data:`CALL_BUDGET` records per call so no
        call holds the server long; the script returns the list fields
        (:data:`~celery_warden.read.tasks.SUMMARY_FIELDS`) of the matches with them."""
        after: tuple[float, str] | None = parse_cursor(cursor) if cursor else None
        found: list[dict[str, Any]] = []
        raw: list[list[str | None]] = []  # the script's replies: what the items are made of
        examined, exhausted = 0, False
        filters = json.dumps(f.script_filters())
        prefix = f.id_prefix or ""
        buckets = id_buckets(self.keys, prefix)
        lex = self.keys.task_id_bucket("~")
        has_lex = lex in buckets
        scored = [b for b in buckets if b != lex]
        walk = scored if buckets else [(yield from self.index_steps(f))]
        # The buckets of a 2-4 hex digit prefix hold exactly the ids that start with it; a
        # longer prefix, the '~' bucket and a walked index are checked id by id.
        implied = bool(scored) and len(prefix) <= 4
        keys = [self.keys.recent, *walk, *([lex] if has_lex else [])]
        flags = ["1" if has_lex else "0", "1" if implied else "0", MAX_PREFIX_MATCHES]
        while len(found) < limit and examined < budget and not exhausted:
            top = f.until
            if after is not None:  # start at the cursor's score, not at the newest record
                top = after[0] if top is None else min(top, after[0])
            reply = yield ("search", keys, [
                self.keys.task(""), "+inf" if top is None else repr(top),
                "-inf" if f.since is None else repr(f.since),
                "" if after is None else repr(after[0]), "" if after is None else after[1],
                limit - len(found), min(CALL_BUDGET, budget - examined), filters, *flags,
                *SUMMARY_FIELDS])
            examined += int(reply[0])
            exhausted = bool(int(reply[1]))
            if reply[3]:
                after = (float(reply[2]), _text(reply[3]))
            rows = reply[4:]
            if rows and type(rows[0]) is not str:  # a client that does not decode replies
                rows = [None if v is None else _text(v) for v in rows]
            raw.append(rows)
            stride = 2 + len(SUMMARY_FIELDS)
            for i in range(0, len(rows), stride):
                found.append(task_summary(rows[i], rows[i + 2:i + stride], float(rows[i + 1]),
                                          self.redactor))
        next_cursor = None
        if after is not None and examined and not (exhausted and len(found) < limit):
            next_cursor = f"{after[0]!r}:{after[1]}"
        return {"items": masked_items(self.redactor, found, raw), "next_cursor": next_cursor,
                "complete": exhausted or len(found) >= limit, "examined": examined}

    def index_steps(self, f: TaskFilter) -> Generator[Call, Any, str]:
        """The index to walk for ``f``: of the name's and the state's index, the one with fewer
        entries in the time range (one ``ZCOUNT`` each); ``P:recent`` when neither applies."""
        state = f.state.upper() if f.state else None
        choices = ([self.keys.task_name_index(f.name)] if f.name else []) + (
            [self.keys.task_state_index(state)] if state in INDEXED_STATES else [])
        if len(choices) < 2:
            return choices[0] if choices else self.keys.recent
        lo = "-inf" if f.since is None else repr(f.since)
        hi = "+inf" if f.until is None else repr(f.until)
        counts = yield ("pipe", [("zcount", key, lo, hi) for key in choices])
        return min(zip(counts, choices, strict=True))[1]


__all__ = ["CALL_BUDGET", "MAX_PREFIX_MATCHES", "MIN_BUCKET_PREFIX", "SCAN_BUDGET",
           "CursorError", "TaskFilter", "TaskSearch", "id_buckets", "masked_items",
           "parse_cursor"]

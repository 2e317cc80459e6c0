"""Tasks running in this process (a pool child): prerun hands a run over, postrun ends it.

Cost on the task's path: :meth:`TaskBuffer.begin` is one dict insert, no lock; the task is
counted as started — and its queue wait observed — when it ends (one lock acquisition for the
record, its minute bucket and its totals) or, if it still runs at a flush, by the flusher
(:meth:`TaskBuffer.started_records`, which writes its STARTED record then). ``run.flushed``,
set under the lock, says which of the two counted it, so the start is counted once.
"""

from __future__ import annotations

from typing import Any, Protocol

from celery_warden.record import totals
from celery_warden.record.batch import TaskDelta
from celery_warden.record.buffer import RecordBuffer
from celery_warden.record.order import RANK_FINAL, RANK_STARTED, delivery_seq


class _Group:
    """Finished tasks of one label set in one drain: what their totals add up to."""

    __slots__ = ("events", "received", "runtimes", "started", "waits")

    def __init__(self) -> None:
        self.received = 0
        self.started = 0
        self.events: dict[tuple[str, str], int] = {}
        self.waits: list[float] = []
        self.runtimes: list[float] = []


class Running(Protocol):
    """A task running in this process, as the signal handlers describe it to the recorder."""

    flushed: bool
    retries: int
    defers: int
    name: str
    worker: str
    queue: str
    wait: float | None

    @property
    def counts_received(self) -> bool:
        """Whether the receipt of this delivery is counted with its end (``record/worker.py``)."""
        ...

    def start_fields(self) -> tuple[dict[str, Any], dict[str, Any], int, int]:
        """(static fields, STARTED attempt fields, retries, defers), values unformatted."""
        ...

    def facts(self) -> tuple[Any, ...]:
        """Plain values a spool entry keeps to rebuild the record (see ``replay.ReplayRun``)."""
        ...


class TaskBuffer(RecordBuffer):
    """The record buffer plus the tasks running in this process."""

    def begin(self, task_id: str, run: Running) -> None:
        """A task started here. Nothing is written or counted yet (see the module doc)."""
        if not self._running:
            self._start()
        self._in_flight[task_id] = run

    def count_start(self, name: str, worker: str, queue: str, wait: float | None) -> None:
        """Count a start the flusher counted in a process that died (spool replay)."""
        with self._lock:
            totals.count(self._batch.counters, ("started", name, worker, queue, ""))
            if wait is not None:
                totals.observe(self._batch.hists, ("queue_wait", name, worker, queue), wait)

    def _count_start_locked(self, run: Running) -> None:
        totals.count(self._batch.counters, ("started", run.name, run.worker, run.queue, ""))
        if run.wait is not None:
            totals.observe(self._batch.hists, ("queue_wait", run.name, run.worker, run.queue),
                           run.wait)

    def end(self, task_id: str, run: Running, name: str, final: dict[str, Any], rank: int,
            outcome: str, finished: float, runtime: float, wait: float | None) -> None:
        """A task finished here: one tuple queued (and spooled) under one lock acquisition.

        Why queued: building the record, the minute bucket and the totals for each task on the
        task's path cost a pool child ~15 µs of cold-cache work per task (``bench/child_path.py``);
        the flusher does the same for every finished task in one warm loop when it takes the
        buffer (:meth:`_drain_ended_locked`), which is cheaper and off the task's path. Whether
        the start is counted here is decided now, under the lock, so the flusher's
        :meth:`started_records` and the spool entry agree on it.
        """
        self._in_flight.pop(task_id, None)
        if not self._running:
            self._start()
        final["retries"] = run.retries
        with self._lock:
            counted = run.flushed
            run.flushed = True
            if self._spool is not None:
                self._spooled(("E", task_id, name, final, rank, outcome, finished, runtime, wait,
                               run.facts(), counted))
            ended = self._ended
            ended.append((task_id, run, name, final, rank, outcome, finished, runtime, wait,
                          counted))
            if len(ended) + len(self._batch.tasks) + self._carried >= self.settings.buffer_size:
                self._drain_ended_locked()  # the bound applies as if nothing were queued

    def _drain_ended_locked(self) -> None:
        """Turn the queued finished tasks into records, bucket counts and totals (the caller
        holds the lock: the flusher's :meth:`take`, or a change that must come after them).

        Totals are gathered per label set (task name, worker, queue) first and added once per
        set: a batch's tasks share a few, and each addition costs a tuple and a look-up."""
        ended, self._ended = self._ended, []
        batch = self._batch
        tasks = batch.tasks
        groups: dict[tuple[str, str, str], _Group] = {}
        for task_id, run, name, final, rank, outcome, finished, runtime, wait, counted in ended:
            retries = run.retries
            seq = delivery_seq(retries, run.defers)
            delta = tasks.get(task_id)
            if delta is None:
                self._make_room_locked(tasks)
                tasks[task_id] = TaskDelta(attempt=final, seq=seq, rank=rank, updated=finished,
                                           run=run)
            else:
                if (seq, rank) >= (delta.seq, delta.rank):
                    if seq > delta.seq:
                        delta.attempt.clear()
                    delta.attempt.update(final)
                    delta.seq, delta.rank = seq, rank
                delta.run = run
                delta.updated = finished
            self._observe_locked(name, finished, outcome, runtime, wait, None,
                                 rank == RANK_FINAL and retries > 0)
            labels = (name, run.worker, run.queue)
            g = groups.get(labels)
            if g is None:
                g = groups[labels] = _Group()
            if run.counts_received:
                g.received += 1
            if not counted:
                g.started += 1
                if run.wait is not None:
                    g.waits.append(run.wait)
            event = totals.OUTCOME_EVENTS.get(outcome)
            if event is not None:
                key = (event, final.get("exc_type") or "" if event == "failed" else "")
                g.events[key] = g.events.get(key, 0) + 1
            g.runtimes.append(runtime)
        counters, hists = batch.counters, batch.hists
        for (name, worker, queue), g in groups.items():
            if g.received:
                totals.count_many(counters, ("received", name, worker, queue, ""), g.received)
            if g.started:
                totals.count_many(counters, ("started", name, worker, queue, ""), g.started)
            if g.waits:
                totals.observe_many(hists, ("queue_wait", name, worker, queue), g.waits)
            for (event, exc), n in g.events.items():
                totals.count_many(counters, (event, name, worker, queue, exc), n)
            totals.observe_many(hists, ("runtime", name, worker, queue), g.runtimes)

    def forget(self, task_id: str) -> None:
        """A task that started here will not finish here (its outcome is reported elsewhere)."""
        self._in_flight.pop(task_id, None)

    def started_records(self) -> None:
        """Count and write STARTED records for tasks still running at flush time (flusher
        thread)."""
        for task_id, run in list(self._in_flight.items()):  # list(): atomic under the GIL
            if run.flushed:
                continue
            static, attempt, retries, defers = run.start_fields()
            # One lock for the check and the record: with the record in a second one, a task
            # that ended in between could have its final record dropped by the buffer bound
            # and then get this STARTED one — a finished task left STARTED (found reading this
            # while chasing a drop counted twice in a store outage).
            with self._lock:
                if run.flushed:
                    continue
                run.flushed = True
                if self._spool is not None:
                    self._spooled(("R", run.name, run.worker, run.queue, run.wait))
                self._count_start_locked(run)
                self._task_locked(task_id, static, attempt, retries, RANK_STARTED, defers, None)


__all__ = ["Running", "TaskBuffer"]

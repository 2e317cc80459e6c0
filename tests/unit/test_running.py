"""The drain of finished tasks (``TaskBuffer._drain_ended_locked``) counts exactly what a
count per task would: it gathers totals per label set before adding them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from celery_warden.record import totals
from celery_warden.record.order import RANK_FINAL, RANK_RETRY
from celery_warden.record.running import TaskBuffer
from celery_warden.settings import WardenSettings
from tests.unit.test_totals import FakeRun

OUTCOMES = ["success", "failure", "retry", "revoked", "deferred", "ignored"]

task = st.tuples(
    st.sampled_from(["t.a", "t.b", "t.<script>"]),  # name
    st.sampled_from(["celery@h1", "celery@h2"]),  # worker
    st.sampled_from(["q1", "q2", ""]),  # queue
    st.sampled_from(OUTCOMES),
    st.sampled_from(["", "ValueError", "KeyError"]),  # exc_type
    st.floats(min_value=0, max_value=100, allow_nan=False),  # runtime
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e4, allow_nan=False)),  # wait
    st.booleans(),  # start already counted by the flusher (a STARTED record was flushed)
    st.booleans(),  # receipt counted here
    st.integers(min_value=0, max_value=3),  # retries
)


def reference(tasks: list[tuple[object, ...]]
              ) -> tuple[dict[object, int], dict[object, list[float]]]:
    """One count per task and event, as the drain did before it grouped them."""
    counters: dict[totals.CounterKey, int] = {}
    hists: dict[totals.HistKey, list[float]] = {}
    for name, worker, queue, outcome, exc, runtime, wait, counted, received, _ in tasks:
        if received:
            totals.count(counters, ("received", name, worker, queue, ""))  # type: ignore[arg-type]
        if not counted:
            totals.count(counters, ("started", name, worker, queue, ""))  # type: ignore[arg-type]
            if wait is not None:
                totals.observe(hists, ("queue_wait", name, worker, queue), wait)  # type: ignore[arg-type]
        event = totals.OUTCOME_EVENTS.get(outcome)  # type: ignore[arg-type]
        if event is not None:
            totals.count(counters, (event, name, worker, queue,  # type: ignore[arg-type]
                                    exc if event == "failed" else ""))
        totals.observe(hists, ("runtime", name, worker, queue), runtime)  # type: ignore[arg-type]
    return counters, hists


@settings(max_examples=150, deadline=None)
@given(st.lists(task, max_size=60))
def test_grouped_totals_equal_one_count_per_task(tasks: list[tuple[object, ...]]) -> None:
    buf = TaskBuffer(WardenSettings())
    for i, (name, worker, queue, outcome, exc, runtime, wait, counted, received,
            retries) in enumerate(tasks):
        run = FakeRun(name, worker, queue, wait)  # type: ignore[arg-type]
        run.retries = retries  # type: ignore[assignment]
        run.counts_received = received  # type: ignore[assignment]
        final: dict[str, object] = {"state": str(outcome).upper()}
        if exc:
            final["exc_type"] = exc
        rank = RANK_RETRY if outcome == "retry" else RANK_FINAL
        buf._ended.append((f"id-{i}", run, name, final, rank, outcome, 1.0e9 + i, runtime,
                           wait, counted))
    with buf._lock:
        buf._drain_ended_locked()
    counters, hists = reference(tasks)
    assert buf._batch.counters == counters
    assert buf._batch.hists == hists
    assert len(buf._batch.tasks) == len(tasks)

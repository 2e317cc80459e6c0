"""The chaos suite's reduced case (``make chaos`` is the full one): 200 mixed tasks
under a handful of faults, on each broker, reconciled against ground truth kept outside Warden.

Pins the promise end to end: every submitted id is SUCCESS, in the DLQ with a reason, or
REVOKED — none lost — Warden's record of each id agrees with what really ran, and every second
execution of an attempt is explained by a fault the run injected.
"""

from __future__ import annotations

import pytest

from tests.chaos.driver import Schedule, run
from tests.chaos.reconcile import Report

pytestmark = pytest.mark.slow

#: A handful of faults over a ~5 s submission window.
REDUCED = Schedule(child_kill_every=2.0, worker_kills=1, long_sigterms=1, store_restarts=1,
                   broker_cuts=1)


def _check(report: Report) -> None:
    """No loss, miscount or re-execution without a known cause; poison messages exact.

    A message kombu's Redis transport loses between ``BRPOP`` and its ``unacked`` write when
    a worker is SIGKILLed is not lost to Warden: its detector files it in the DLQ as
    ``lost_in_transit`` (``dlq/transit.py``), and the reconciliation attributes it to a worker
    SIGKILL. Anything the reconciliation cannot attribute to an injected fault fails the test,
    and so does a success counter off by more than the re-runs explain."""
    print(report.table(limit=None))
    assert not report.lost, f"tasks lost: {report.lost}"
    assert not report.transit_causes.get("unexplained"), report.in_transit
    assert not report.miscount_causes.get("unexplained"), f"miscounted: {report.miscounted}"
    assert not report.counts.unexplained, f"success counters off: {report.counts.unexplained}"
    assert not report.reexecutions.get("unexplained"), report.reexecutions
    if report.broker == "rabbitmq":
        assert not report.transit_causes, "RabbitMQ keeps unacknowledged messages"
    assert report.dead_lettered["poison_pill"] == 1
    assert report.dead_lettered["unknown_task"] == 1
    assert report.dead_lettered["undecodable"] == 1
    # The pickle body: Warden files it as invalid_message; on RabbitMQ Celery's rejection also
    # dead-letters it through the broker, and the drain may file it first.
    assert report.dead_lettered["invalid_message"] + report.dead_lettered["broker_dead_letter"] >= 1
    assert report.succeeded > report.submitted * 0.8


@pytest.mark.timeout(300)
def test_chaos_on_redis_loses_nothing_and_counts_exactly() -> None:
    """Redis broker: pool-child and worker SIGKILLs, a SIGTERM during a long task, a Redis
    restart (AOF on) under store and broker, poison messages and racing DLQ processors."""
    _check(run("redis", 200, rate=80.0, schedule=REDUCED, settle_timeout=60.0))


@pytest.mark.rabbitmq
@pytest.mark.timeout(300)
def test_chaos_on_rabbitmq_loses_nothing_and_counts_exactly(rabbitmq_url: str) -> None:
    """RabbitMQ broker: the same faults plus a cut of every broker connection."""
    _check(run("rabbitmq", 200, rate=80.0, schedule=REDUCED, settle_timeout=60.0))

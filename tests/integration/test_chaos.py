"""The chaos suite's reduced case (``make chaos`` is the full one): a few hundred mixed tasks
under a handful of faults, on each broker, reconciled against ground truth kept outside Warden.

Pins the promise end to end: every submitted id is SUCCESS, in the DLQ with a reason, or
REVOKED — none lost — Warden's record of each id agrees with what really ran, and every second
execution of an attempt is explained by a fault the run injected.
"""

from __future__ import annotations

import pytest

from tests.chaos.driver import Schedule, run

pytestmark = pytest.mark.slow

#: A handful of faults over a ~5 s submission window.
REDUCED = Schedule(child_kill_every=2.0, worker_kills=1, long_sigterms=1, store_restarts=1,
                   broker_cuts=1)


def _check(report: object) -> None:
    print(report.table())  # type: ignore[attr-defined]
    assert not report.lost, f"tasks lost: {report.lost}"  # type: ignore[attr-defined]
    assert not report.miscounted, f"Warden miscounted: {report.miscounted}"  # type: ignore[attr-defined]
    assert not report.reexecutions.get("unexplained")  # type: ignore[attr-defined]
    assert report.dead_lettered["poison_pill"] == 1  # type: ignore[attr-defined]
    assert report.dead_lettered["unknown_task"] == 1  # type: ignore[attr-defined]


@pytest.mark.timeout(300)
def test_chaos_on_redis_loses_nothing_and_counts_exactly() -> None:
    """Redis broker: pool-child and worker SIGKILLs, a SIGTERM during a long task, a Redis
    restart (AOF on) under store and broker, poison messages and racing DLQ processors."""
    _check(run("redis", 300, rate=60.0, schedule=REDUCED, settle_timeout=60.0))


@pytest.mark.rabbitmq
@pytest.mark.timeout(300)
def test_chaos_on_rabbitmq_loses_nothing_and_counts_exactly(rabbitmq_url: str) -> None:
    """RabbitMQ broker: the same faults plus a cut of every broker connection."""
    _check(run("rabbitmq", 300, rate=60.0, schedule=REDUCED, settle_timeout=60.0))

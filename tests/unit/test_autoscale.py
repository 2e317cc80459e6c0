"""The autoscaling signal: the formula against a simulated load (rising, steady with noise,
draining) where the recommendation tracks what is needed and does not flap, and the real reader
on a real broker (every priority lane in the backlog, the queue's task mix, KEDA's shape)."""

from __future__ import annotations

import itertools
import math
import random
import time

from celery_warden.alerts.demand import QueueLoad
from celery_warden.autoscale import Autoscaler, Bounds, decide
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.recorder import Recorder
from celery_warden.services import services_for
from tests.receiver import warden_client

S = 0.5  # seconds per task
BOUNDS = Bounds(minimum=1, maximum=60, target_latency=30.0, stabilization=300.0)
DT = 5.0


def simulate(rates: list[float], batches: dict[int, int] | None = None, delay: int = 6,
             seed: int = 7) -> list[dict]:
    """A queue served by as many processes as the recommendation of ``delay`` steps earlier
    said (pods take 30 s to start); ``batches`` drop many messages at once at a step. Each step
    records the load, the need and the recommendation."""
    rng = random.Random(seed)
    backlog, history, steps = 0.0, [], []
    given = [1] * (delay + 1)
    for i, rate in enumerate(rates):
        now = i * DT
        processes = given[-delay - 1]
        arrived = rate * DT + (batches or {}).get(i, 0)
        served = min(backlog + arrived, processes * DT / S)
        growth = (arrived - served) / DT
        backlog = backlog + arrived - served
        load = QueueLoad("q", queued=round(backlog), reserved=0, active=processes,
                         arrival_rate=max(0.0, served / DT + growth),
                         completion_rate=served / DT, service_time=S * rng.uniform(0.97, 1.03),
                         current_processes=processes)
        decision = decide(load, BOUNDS, history, now)
        history.append((now, decision["desired_now"]))
        given.append(decision["desired_processes"])
        steps.append({"t": now, "rate": rate, "backlog": backlog, "need": rate * S,
                      "n": decision["desired_processes"], "running": processes,
                      "wait": backlog * S / processes})
    return steps


def changes(steps: list[dict]) -> list[tuple[float, int]]:
    return [(b["t"], b["n"] - a["n"]) for a, b in itertools.pairwise(steps)
            if b["n"] != a["n"]]


def test_rising_steady_draining_load_is_tracked_without_flapping():
    """Rising 1 -> 40 tasks/s: the recommendation rises with the need (one step behind at most)
    and never drops. Steady 40/s with +-10 % noise: it settles just above the need, barely
    moves, and the queue's wait stays within the 30 s target. Draining (a batch of 3,000 lands
    and arrivals fall to 5/s): it jumps at once to clear the backlog within the target, holds
    for the stabilization window after the backlog is gone, then falls to what 5/s needs and
    stays there — no rise again."""
    rng = random.Random(1)
    rising = [1 + 39 * i / 120 for i in range(120)]  # 10 minutes
    steady = [40 * rng.uniform(0.9, 1.1) for _ in range(240)]  # 20 minutes
    draining = [5.0] * 180  # 15 minutes
    steps = simulate(rising + steady + draining, batches={360: 3000})
    up, flat, down = steps[:120], steps[120:360], steps[360:]

    assert all(b["n"] >= a["n"] for a, b in itertools.pairwise(up))
    assert all(s["n"] >= math.ceil(s["need"]) - 1 for s in up)

    settled = flat[60:]  # after five minutes of steady load
    assert all(20 <= s["n"] <= 26 for s in settled), sorted({s["n"] for s in settled})
    assert len(changes(settled)) <= 2
    assert max(s["wait"] for s in settled) <= BOUNDS.target_latency

    assert down[0]["n"] == BOUNDS.maximum  # 3000 x 0.5 s / 30 s = 50, +2.5, clamped at 60
    drained = next(s["t"] for s in down if s["backlog"] == 0)
    assert drained - down[0]["t"] <= 2 * BOUNDS.target_latency
    assert [d for t, d in changes(down) if d > 0] == []
    first_drop = next(s["t"] for s in down if s["n"] < BOUNDS.maximum)
    assert first_drop - down[0]["t"] >= BOUNDS.stabilization - DT
    assert {s["n"] for s in down[-60:]} == {math.ceil(5.0 * S)}


def test_no_flap_means_every_decrease_waits_out_the_stabilization_window():
    """Whatever the load, a decrease only comes when no recommendation of the previous
    stabilization window was higher — a rise and a fall are never closer than the window."""
    rng = random.Random(3)
    rates = [max(0.0, 20 + 15 * math.sin(i / 20) + rng.uniform(-5, 5)) for i in range(600)]
    steps = simulate(rates)
    last_up = None
    for t, delta in changes(steps):
        if delta > 0:
            last_up = t
        elif last_up is not None:
            assert t - last_up >= BOUNDS.stabilization - DT


def test_bounds_and_unmeasured_queue():
    """Clamped to [min, max] with the reason; a backlog with no run time measured yet keeps
    the processes running now; nothing at all gives the minimum."""
    big = QueueLoad("q", 100_000, 0, 0, 10.0, 10.0, 1.0, 4)
    assert decide(big, BOUNDS, [], 0)["desired_processes"] == 60
    assert "clamped to [1, 60]" in decide(big, BOUNDS, [], 0)["reasoning"][-1]
    new = QueueLoad("q", 50, 0, 0, None, None, None, 3)
    assert decide(new, BOUNDS, [], 0)["desired_processes"] == 3
    idle = QueueLoad("q", 0, 0, 0, None, None, None, 0)
    assert decide(idle, BOUNDS, [], 0)["desired_processes"] == 1


def test_real_backlog_counts_every_priority_lane_and_the_queue_mix(settings_factory):
    """On a real Redis broker with no worker: 120 messages published at three priorities are
    all backlog; the queue's run time comes from its task names' metrics; the answer has the
    KEDA shape (desired_processes at the top for one queue) and the reasoning."""
    settings = settings_factory(WARDEN_AUTOSCALE_MIN=0)
    with warden_client(settings) as app:
        answer = backlog_and_mix(settings, app)
    queue = f"{settings.queue_prefix}default"
    assert answer["queue"] == queue and answer["queues"][queue] is not None
    inputs = answer["inputs"]
    assert inputs["queued"] == 120 and inputs["backlog"] == 120
    assert inputs["service_time"] == 0.5
    assert inputs["completion_rate"] == round(60 / settings.autoscale_window, 4)
    assert inputs["oldest_age"] is not None and inputs["oldest_age"] >= 0
    # 0.2/s x 0.5 s + 120 x 0.5 s / 30 s = 2.1 -> 3
    assert answer["raw"] == 2.1 and answer["desired_processes"] == 3
    assert any("backlog 120" in line for line in answer["reasoning"])


def backlog_and_mix(settings, app) -> dict:
    """120 messages at three priorities, 60 executions of 0.5 s recorded, then the answer."""
    queue = f"{settings.queue_prefix}default"
    for i in range(120):
        app.send_task("scale.work", args=[i], queue=queue, priority=(0, 5, 9)[i % 3])
    recorder = Recorder(settings)
    now = time.time()
    for _ in range(60):
        recorder.observe("scale.work", now, "success", duration=0.5, queue=queue)
    assert recorder.flush()
    recorder.stop()
    services_for(app).recorder.flush()  # the SENT records: which queue each name goes to
    monitor = CeleryMonitor(settings, app=app)
    try:
        return Autoscaler(settings, monitor).recommend("default")
    finally:
        monitor.redis.close()

"""Fleet rate limits on a real Redis: parsing, slot reservation, several limits at once."""

from __future__ import annotations

import itertools
import threading
import uuid

import pytest

from celery_warden.errors import RateLimited, SettingsError
from celery_warden.fleet import rate_limit
from celery_warden.fleet.rate_limit import FleetRateLimiter, Limit, parse_queue_rates, parse_rate
from tests.conftest import make_settings


@pytest.fixture(autouse=True)
def _no_outage():
    rate_limit._outage.reset()
    yield
    rate_limit._outage.reset()


@pytest.mark.parametrize(("text", "amount", "period"), [
    ("100/m", 100, 60.0), ("20/s", 20, 1.0), ("5/h", 5, 3600.0), ("2/d", 2, 86400.0),
    ("10/5m", 10, 300.0), (" 3 / second ", 3, 1.0), ("7/minutes", 7, 60.0),
])
def test_parse_rate_accepts_celerys_syntax(text, amount, period):
    """Celery's N/s|m|h forms (plus d, long unit names and a period multiplier) parse."""
    rate = parse_rate(text)
    assert (rate.amount, rate.period) == (amount, period)
    assert rate.interval == pytest.approx(period / amount)


@pytest.mark.parametrize("text", ["", "100", "0/s", "5/fortnight", "x/m", "10/0s", "-1/s"])
def test_parse_rate_refuses_other_forms(text):
    """Anything else is a ValueError that shows the accepted forms."""
    with pytest.raises(ValueError, match="is invalid"):
        parse_rate(text)


def test_queue_rates_setting_is_validated_at_startup(redis_url):
    """WARDEN_QUEUE_RATE_LIMITS is parsed when settings load; a bad entry names the variable."""
    assert parse_queue_rates("default=100/m, low_priority=5/s")["low_priority"].amount == 5
    with pytest.raises(SettingsError, match="WARDEN_QUEUE_RATE_LIMITS"):
        make_settings(redis_url, WARDEN_QUEUE_RATE_LIMITS="default:100/m")


def limit(settings, rate: str) -> Limit:
    keys = FleetRateLimiter(settings).keys
    return Limit(keys.ratelimit("task", f"t-{uuid.uuid4().hex[:6]}"), parse_rate(rate), rate)


def test_reservations_are_spaced_by_the_interval(settings):
    """10/s: back-to-back checks get slots 0, 0.1, 0.2 ... s ahead (evenly spaced, no burst)."""
    limiter = FleetRateLimiter(settings)
    lim = limit(settings, "10/s")
    waits = [limiter.reserve([lim], 60).wait for _ in range(5)]
    assert waits[0] == 0.0
    for i, wait in enumerate(waits[1:], start=1):
        assert i * 0.1 - 0.05 < wait <= i * 0.1


def test_concurrent_reservations_get_distinct_slots(settings, redis_client):
    """40 threads reserve 2/s at once: one starts now and the reserved slots are 0.5 s apart.

    Read on the Redis clock, not the client's (a thread descheduled between the answer and its
    own clock reading made this flaky under load): the calls are applied one after another at
    Redis times ``t_i`` within [before, after], the i-th gets the slot ``s_0 + 0.5 i`` and waits
    ``s_0 + 0.5 i - t_i``; so consecutive waits differ by 0.5 s minus how far apart two calls
    arrived (never more than ``after - before``), and the limit's next free slot is then exactly
    ``s_0 + 40 x 0.5 s`` with ``s_0`` the first call's time, in [before, after]."""
    limiter = FleetRateLimiter(settings)
    lim = limit(settings, "2/s")
    barrier = threading.Barrier(40)
    waits: list[float] = []
    lock = threading.Lock()

    def server_now() -> float:
        sec, usec = redis_client.time()
        return sec + usec / 1e6

    def reserve() -> None:
        barrier.wait()
        wait = limiter.reserve([lim], 60).wait
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=reserve) for _ in range(40)]
    before = server_now()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = server_now()
    spread = after - before
    waits.sort()
    assert waits[0] == 0.0 and len(waits) == 40
    gaps = [b - a for a, b in itertools.pairwise(waits)]
    assert all(0.5 - spread - 1e-6 <= gap <= 0.5 + 1e-6 for gap in gaps), (spread, gaps)
    next_free = int(redis_client.get(lim.key)) / 1e6
    assert before - 1e-6 <= next_free - 40 * 0.5 <= after + 1e-6


def test_all_limits_are_taken_together_or_not_at_all(settings):
    """A task limit of 100/s and a queue limit of 1/s: the slower decides, and a refused check
    (slot beyond max_wait) spends no slot of either."""
    limiter = FleetRateLimiter(settings)
    fast, slow = limit(settings, "100/s"), limit(settings, "1/s")
    assert limiter.reserve([fast, slow], 60).now
    second = limiter.reserve([fast, slow], 60)
    assert second.reserved and 0.9 < second.wait <= 1.0
    refused = limiter.reserve([fast, slow], 0.5)
    assert not refused.reserved and refused.wait > 1.5
    alone = limiter.reserve([fast], 60)
    assert alone.reserved and 1.0 < alone.wait <= 1.02, "the refused check reserved nothing"


def test_limits_for_task_and_queue(redis_url):
    """A task's fleet_rate_limit and the queue's limit (logical or full name) both apply."""
    settings = make_settings(redis_url, WARDEN_QUEUE_RATE_LIMITS="default=5/s")
    limiter = FleetRateLimiter(settings)
    queue = f"{settings.queue_prefix}default"
    labels = [x.label for x in limiter.limits_for("t.a", queue, "100/m")]
    assert labels == ["task t.a 100/m", f"queue {queue} 5/s"]
    assert limiter.limits_for("t.a", f"{settings.queue_prefix}other", None) == []


def test_hit_for_callers_outside_tasks(settings):
    """hit() starts now or raises RateLimited with the wait, reserving nothing when refused."""
    limiter = FleetRateLimiter(settings)
    name = f"api-{uuid.uuid4().hex[:6]}"
    limiter.hit(name, "1/m")
    with pytest.raises(RateLimited) as info:
        limiter.hit(name, "1/m")
    assert 59 < info.value.retry_after <= 60


def test_store_unreachable_fails_open(redis_url):
    """With nothing listening on REDIS_URL the check answers "start now"."""
    from celery_warden.embedded import free_port

    dead = make_settings(f"redis://127.0.0.1:{free_port()}/0")
    limiter = FleetRateLimiter(dead)
    lim = Limit(limiter.keys.ratelimit("task", "x"), parse_rate("1/h"), "x")
    assert all(limiter.reserve([lim], 60).now for _ in range(3))

"""Idempotency keys on a real Redis: claims, leases, first results, release, fail-closed."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from celery import Celery

from celery_warden.errors import DuplicateTaskError
from celery_warden.fleet import idempotency
from celery_warden.fleet.idempotency import (
    MAX_RESULT_BYTES,
    IdempotencySpec,
    IdempotencyStore,
    idempotent_task,
    spec_of,
)
from celery_warden.tasks.base import BaseTask
from tests.conftest import make_settings


@pytest.fixture(autouse=True)
def _no_outage():
    idempotency._outage.reset()
    yield
    idempotency._outage.reset()


@pytest.fixture
def store(settings) -> IdempotencyStore:
    return IdempotencyStore(settings)


def key() -> str:
    return f"k-{uuid.uuid4().hex[:8]}"


def test_first_claim_runs_duplicates_wait_then_get_the_first_result(store):
    """claimed → (another id) running with the lease left → done → (another id) the result."""
    k = key()
    assert store.claim(k, "t1", 30).status == "claimed"
    running = store.claim(k, "t2", 30)
    assert running.status == "running" and running.holder == "t1"
    assert 29 < running.remaining <= 30
    assert store.complete(k, "t1", {"total": 3}, 60)
    done = store.claim(k, "t3", 30)
    assert (done.status, done.holder, done.result, done.has_result) == \
        ("done", "t1", {"total": 3}, True)
    assert 59 < done.remaining <= 60


def test_the_holder_itself_takes_its_claim_back_on_redelivery(store):
    """A redelivered message (same task id, after its worker was lost) is not its own duplicate."""
    k = key()
    assert store.claim(k, "t1", 30).status == "claimed"
    assert store.claim(k, "t1", 30).status == "claimed"


def test_a_failure_releases_the_key_only_for_its_holder(store):
    """release() by the holder frees the key; by anyone else it changes nothing."""
    k = key()
    store.claim(k, "t1", 30)
    assert not store.release(k, "t2")
    assert store.claim(k, "t2", 30).status == "running"
    assert store.release(k, "t1")
    assert store.claim(k, "t2", 30).status == "claimed"


def test_a_crashed_holders_lease_expires(store):
    """Nobody releases a claim whose worker died; after the lease another task claims it, and
    the old holder can no longer complete over the new one."""
    k = key()
    store.claim(k, "dead", 0.2)
    assert store.claim(k, "t2", 30).status == "running"
    time.sleep(0.3)
    assert store.claim(k, "t2", 30).status == "claimed"
    assert not store.complete(k, "dead", "late", 60)
    assert store.complete(k, "t2", "fresh", 60)
    assert store.claim(k, "t3", 30).result == "fresh"


def test_a_done_key_lives_for_its_ttl(store):
    """After the TTL the same key runs again."""
    k = key()
    store.claim(k, "t1", 30)
    store.complete(k, "t1", 1, 0.2)
    time.sleep(0.3)
    assert store.claim(k, "t2", 30).status == "claimed"


def test_results_that_cannot_be_kept_are_returned_as_none(store):
    """A result that is not JSON, or larger than MAX_RESULT_BYTES, is not stored: duplicates
    still do not run, and get None."""
    for result in ({1, 2}, "x" * (MAX_RESULT_BYTES + 1)):
        k = key()
        store.claim(k, "t1", 30)
        assert store.complete(k, "t1", result, 60)
        done = store.claim(k, "t2", 30)
        assert (done.status, done.has_result, done.result) == ("done", False, None)


def test_concurrent_claims_have_exactly_one_winner(store):
    """32 threads claim one key at once: one 'claimed', 31 'running'."""
    k = key()
    barrier = threading.Barrier(32)
    answers: list[str] = []
    lock = threading.Lock()

    def claim(i: int) -> None:
        barrier.wait()
        status = store.claim(k, f"t{i}", 30).status
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers).count("claimed") == 1 and answers.count("running") == 31


def test_run_once_for_callers_outside_tasks(store):
    """run_once runs once, returns the first result later, raises DuplicateTaskError while held,
    and a failing run leaves the key free."""
    k = key()
    calls = []
    assert store.run_once(k, lambda: calls.append(1) or "first") == "first"
    assert store.run_once(k, lambda: calls.append(1) or "second") == "first"
    assert calls == [1]
    k2 = key()
    store.claim(k2, "someone", 30)
    with pytest.raises(DuplicateTaskError) as info:
        store.run_once(k2, lambda: "never")
    assert info.value.holder == "someone"
    k3 = key()
    with pytest.raises(ZeroDivisionError):
        store.run_once(k3, lambda: 1 / 0)
    assert store.run_once(k3, lambda: "retried") == "retried"


def test_store_unreachable_fails_closed(redis_url):
    """With nothing listening on REDIS_URL a claim answers 'unavailable' (the task is deferred,
    never run unguarded), and run_once refuses."""
    from celery_warden.embedded import free_port

    dead = IdempotencyStore(make_settings(f"redis://127.0.0.1:{free_port()}/0"))
    assert dead.claim("k", "t1", 30).status == "unavailable"
    with pytest.raises(DuplicateTaskError):
        dead.run_once("k", lambda: "must not run")


def test_keys_from_callables_and_templates():
    """A key is a callable over the task's arguments or a str.format template; empty is refused."""
    assert IdempotencySpec(lambda x, y=0: f"p:{x}:{y}").key_for((1,), {"y": 2}) == "p:1:2"
    assert IdempotencySpec("order:{0}:{kind}").key_for((7,), {"kind": "a"}) == "order:7:a"
    with pytest.raises(ValueError):
        IdempotencySpec(lambda: "").key_for((), {})
    with pytest.raises(ValueError):
        idempotent_task(lambda: "k", ttl=0)


def test_decorated_function_called_directly_runs_unguarded():
    """Outside a worker (direct call) the decorated function simply runs."""

    @idempotent_task(lambda x: f"direct:{x}")
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8
    assert isinstance(getattr(double, idempotency.SPEC_ATTR), IdempotencySpec)


def test_spec_resolves_per_call_then_task_option_then_decorator():
    """The warden={"idempotency_key": ...} call option wins over the task option, which wins
    over @idempotent_task."""
    app = Celery("idem-spec", set_as_current=False)

    @app.task(name="t.option", base=BaseTask, idempotency_key="opt:{0}", idempotency_ttl=9)
    def with_option(x: int) -> int:
        return x

    @app.task(name="t.decorated", base=BaseTask)
    @idempotent_task(lambda x: f"deco:{x}", ttl=5)
    def decorated(x: int) -> int:
        return x

    assert spec_of(with_option).key_for((3,), {}) == "opt:3"
    assert spec_of(with_option).ttl == 9
    assert spec_of(decorated).key_for((3,), {}) == "deco:3"
    decorated.push_request(headers={"warden_options": {"idempotency_key": "call:{x}",
                                                        "idempotency_ttl": 2}})
    try:
        spec = spec_of(decorated)
        assert spec.key_for((3,), {}) == "call:{x}" and spec.ttl == 2
    finally:
        decorated.pop_request()

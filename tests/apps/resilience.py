"""A Warden-wired app whose tasks call a real HTTP dependency through the fleet primitives.

Run in real ``celery worker`` processes by ``tests/integration/test_circuit_breaker.py``,
``test_idempotency.py``, ``test_rate_limit.py`` and ``test_fleet_store_down.py``; configured from
the environment like ``tests/apps/fleet.py`` (per-test prefixes). The dependency is
``tests.dependency.FlakyServer``; its URL is each task's first argument.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

from celery import Celery

from celery_warden import Warden, celery_config, load_settings
from celery_warden.fleet.breaker import CircuitBreaker
from celery_warden.fleet.idempotency import idempotent_task
from celery_warden.tasks.base import BaseTask, RetryableTask

settings = load_settings()
app = Celery("resilience")
app.conf.update(celery_config(settings, worker_send_task_events=False))
warden = Warden(app, settings)

#: The breaker under test: opens at 50% failures over >= 4 calls, 2 trial calls when half-open.
dependency = CircuitBreaker(
    "dependency",
    failure_rate_threshold=50.0,
    minimum_calls=4,
    window_size=10,
    recovery_timeout=float(os.environ.get("RES_RECOVERY", "3")),
    half_open_calls=2,
    max_half_open=30.0,
    half_open_retry=0.5,
)


class DependencyDown(Exception):
    """The dependency answered 5xx."""


def get(url: str) -> str:
    """GET ``url``; a 5xx becomes ``DependencyDown`` (a breaker failure)."""
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise DependencyDown(f"HTTP {exc.code}") from exc


@app.task(name="resilience.call", base=BaseTask, circuit_breaker="dependency", max_retries=0)
def call(url: str) -> str:
    """The task option form: the whole body is the protected call."""
    return get(f"{url}/call")


@app.task(name="resilience.call_inside", base=BaseTask, max_retries=0)
def call_inside(url: str) -> str:
    """The context-manager form inside a task body."""
    with dependency:
        return get(f"{url}/call")


@app.task(name="resilience.idem", base=BaseTask)
@idempotent_task(lambda url, key, sleep=0.0: f"work:{key}", ttl=600)
def idem(url: str, key: str, sleep: float = 0.0) -> str:
    """The spec's decorator form on a Warden base class."""
    return get(f"{url}/work?key={key}&sleep={sleep}")


@app.task(name="resilience.idem_plain")
@idempotent_task(lambda url, key: f"plain:{key}", ttl=600)
def idem_plain(url: str, key: str) -> str:
    """The spec's decorator form on a plain Celery task (no Warden base class)."""
    return get(f"{url}/work?key={key}")


@app.task(name="resilience.idem_retry", base=RetryableTask, retry_for=(DependencyDown,),
          max_retries=3, backoff_base=0.2, backoff_cap=1.0)
@idempotent_task(lambda url, key: f"flaky:{key}", ttl=600)
def idem_retry(url: str, key: str) -> str:
    """Fails on its first call (503), retries, succeeds."""
    return get(f"{url}/flaky?key={key}")


@app.task(name="resilience.idem_lease", base=BaseTask, max_retries=0)
@idempotent_task(lambda url, key, hang=False: f"lease:{key}", ttl=600, lease=3.0)
def idem_lease(url: str, key: str, hang: bool = False) -> str:
    """Holds its claim while the dependency hangs (the test SIGKILLs its worker)."""
    return get(f"{url}/{'hang' if hang else 'work'}?key={key}")


@app.task(name="resilience.idem_option", base=BaseTask, idempotency_key="opt:{1}",
          idempotency_ttl=600)
def idem_option(url: str, key: str) -> str:
    """The task option form (a ``str.format`` template over the arguments)."""
    return get(f"{url}/work?key=opt-{key}")


@app.task(name="resilience.limited", base=BaseTask, fleet_rate_limit="20/s", max_retries=0)
def limited(url: str, i: int) -> int:
    """Fleet-wide 20/s across every worker process."""
    get(f"{url}/call?key={i}")
    return i


@app.task(name="resilience.local_limited", base=BaseTask, rate_limit="5/s", max_retries=0)
def local_limited(url: str, i: int) -> int:
    """Celery's own per-worker rate limit on a Warden base class."""
    get(f"{url}/call?key=local{i}")
    return i


@app.task(name="resilience.echo", base=BaseTask)
def echo(value: Any) -> Any:
    return value


@app.task(name="resilience.fails", base=BaseTask, max_retries=0)
def fails(message: str) -> None:
    """Fails for good (dead-lettered: a Warden base class)."""
    raise ValueError(message)

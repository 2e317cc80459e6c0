"""A ``WARDEN_REDACT_KEYS`` that would mask Warden's own numbers is refused at start (it made
every performance answer a 500: FastAPI refused its own answer with ``"[redacted]"`` where its
schema says number); the default keys and a narrow key start, and still mask task data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from celery_warden.redaction import DEFAULT_KEYS, Redactor
from celery_warden.serve.app import create_app
from celery_warden.serve.binding import ServeRefused
from celery_warden.serve.own_fields import masked_numbers, number_fields
from tests.support import ROOT


def test_the_default_keys_mask_none_of_wardens_number_fields(settings_factory):
    """Why the start only checks extra keys: the defaults hide none of the ~120 number fields."""
    app = create_app(settings_factory())
    fields = number_fields(app.openapi())
    assert {"queue_wait", "count", "p99", "retries", "success_rate"} <= fields
    assert "task_id" not in fields and "name" not in fields  # strings are not numbers
    assert masked_numbers(Redactor(), app) == []
    assert all(not Redactor().is_secret(f) for f in fields), DEFAULT_KEYS


@pytest.mark.parametrize(("key", "hidden"), [("wait", "queue_wait"), ("count", "count"),
                                             ("Retry", "retry_rate"), ("p99", "p99"),
                                             ("worker", "worker_pid")])
def test_a_key_that_masks_wardens_numbers_is_refused_naming_them(settings_factory, key, hidden):
    with pytest.raises(ServeRefused) as exc:
        create_app(settings_factory(WARDEN_REDACT_KEYS=f"ssn, {key}"))
    assert hidden in str(exc.value) and "WARDEN_REDACT_KEYS" in str(exc.value)


def test_a_narrow_key_starts_and_still_masks_task_data(settings_factory):
    """``wait_token`` hides a task argument of that name and none of Warden's fields."""
    settings = settings_factory(WARDEN_REDACT_KEYS="wait_token,ssn")
    create_app(settings)
    masked = Redactor(settings.redact_keys).redact(
        {"queue_wait": 1.5, "kwargs": {"wait_token": 7, "ssn": "123", "wait": 2}})
    assert masked == {"queue_wait": 1.5,
                      "kwargs": {"wait_token": "[redacted]", "ssn": "[redacted]", "wait": 2}}


def test_warden_serve_exits_2_with_the_reason_before_binding(redis_url):
    """The command line: exit code 2, the reason on stderr, no traceback, no port taken."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(REDIS_URL=redis_url, WARDEN_REDACT_KEYS="wait")
    result = subprocess.run([str(Path(sys.executable).parent / "warden"), "serve", "--port", "0"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2, result.stderr
    assert "would mask Warden's own numbers" in result.stderr
    assert "Traceback" not in result.stderr

"""The task lookup's fast answer (``serve/fast_response.py``) is exactly what FastAPI's
``response_model`` pass would have written: the reader's dict, validated by ``TaskStatus`` and
dumped as JSON, equals the dict with the model's absent defaults filled in — for records written
through the real recorder in every shape the lookup answers (finished, failed with retries and
an error, running, with args and progress, unknown)."""

from __future__ import annotations

import json
import time
from typing import Any

from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.order import RANK_FINAL, RANK_STARTED
from celery_warden.record.recorder import Recorder
from celery_warden.redaction import Redactor
from celery_warden.serve.fast_response import model_body, model_defaults, model_json
from celery_warden.serve.schemas.monitoring import TaskStatus


def _record_shapes(recorder: Recorder) -> list[str]:
    now = time.time()
    recorder.task("ok", static={"name": "svc.add", "queue": "default", "sent": f"{now:.6f}",
                                "priority": "3", "args": json.dumps([1, 2]),
                                "kwargs": json.dumps({"password": "x", "n": 1})},
                  attempt={"state": "SUCCESS", "received": f"{now + 0.1:.6f}",
                           "started": f"{now + 0.2:.6f}", "finished": f"{now + 0.5:.6f}",
                           "runtime": "0.300000", "wait": "0.100000", "worker": "celery@h1",
                           "pid": "77"}, rank=RANK_FINAL)
    recorder.task("failed", static={"name": "svc.fail", "parent_id": "ok", "root_id": "ok"},
                  attempt={"state": "FAILURE", "started": f"{now:.6f}",
                           "finished": f"{now + 1:.6f}", "runtime": "1.000000",
                           "exc_type": "ValueError", "exc_msg": "token=abc bad input",
                           "reason": "failed"}, retries=2, rank=RANK_FINAL)
    recorder.task("running", static={"name": "svc.slow"},
                  attempt={"state": "STARTED", "started": f"{now - 3:.6f}"},
                  rank=RANK_STARTED)
    assert recorder.flush()
    return ["ok", "failed", "running", "never-seen"]


def test_fast_body_equals_the_response_model_dump(monitor: CeleryMonitor,
                                                  recorder: Recorder) -> None:
    redactor = Redactor(monitor.settings.redact_keys)
    for task_id in _record_shapes(recorder):
        body: dict[str, Any] = redactor.redact(monitor.get_task_status(task_id))
        via_model = TaskStatus.model_validate(body).model_dump(mode="json")
        fast = model_body(TaskStatus, body)
        assert fast == via_model, task_id
        rendered = json.loads(model_json(TaskStatus, body).body)
        assert rendered == via_model, task_id


def test_defaults_are_the_optional_fields_only() -> None:
    """Required fields (task_id, known, state) are never filled in: a body without them would
    be a reader bug, and the schemathesis run reports it against the schema."""
    defaults = model_defaults(TaskStatus)
    required = {n for n, f in TaskStatus.model_fields.items() if f.is_required()}
    assert required == {"task_id", "known", "state"}
    assert not required & set(defaults)
    assert defaults["retries"] == 0 and defaults["elapsed"] is None

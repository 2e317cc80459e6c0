"""``GET /api/v1/tasks`` answered by its fast path (records returned by the search script,
shaped without the full status, masked item by item, written by pydantic-core without the
model) is byte for byte the body the model path wrote before it: every record as
``task_status`` shapes it from its whole hash, the page masked whole, validated by ``TaskPage``
and dumped as FastAPI dumps a ``response_model``.

The records are hostile: markup and ``[i]``, a 10 KB traceback, secrets in error text, names,
ids and a configured secret key that is a field of the page, unicode, missing fields,
unreadable numbers, an index entry whose record expired. Written through the real flush script
into the real Redis; the app served in-process through its ASGI interface."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from celery_warden.keys import Keys
from celery_warden.read.tasks import task_status
from celery_warden.redaction import Redactor
from celery_warden.serve.app import create_app
from celery_warden.serve.schemas.tasks import TaskPage, TaskSummary
from celery_warden.serve.tokens import TokenStore
from tests.unit.test_task_search import T0, flush_records

TRACEBACK = ("Traceback (most recent call last):\n  File \"<script>\", line 1\n"
             "ValueError: password=hunter2 <b>bold</b> [i] [/red] redis://u:s3cr3t@h/0\n"
             + "  frame line \u00e9\u4e2d\U0001f680\n" * 400)[:10_240]
RECORDS: list[tuple[str, float, dict[str, str]]] = [
    ("h-tb", 1, {"state": "FAILURE", "exc_type": "ValueError", "exc_msg": TRACEBACK,
                 "retries": "3", "runtime": "0.25", "wait": "0.5", "queue": "default",
                 "worker": "celery@h1", "sent": f"{T0:.6f}", "started": f"{T0 + 1:.6f}"}),
    ("h-markup", 2, {"name": "<script>alert(1)</script> [i]", "queue": "q-\u00df",
                     "worker": "w@h", "args": '["<b>x</b>"]'}),
    ("h-unicode-\u00fc", 3, {"name": "t\u00e2che.\u00fcn\u00ef \U0001f680", "state": "RETRY",
                             "exc_type": "E\u00f1", "exc_msg": "\u00e9chec Authorization: "
                             "Bearer tok.en.x"}),
    ("h-secret-name", 4, {"name": "job api_key=sk-live-1", "parent_id": "token=abc",
                          "root_id": "redis://u:pw@h", "dlq_entry": "password: x"}),
    ("h-numbers", 5, {"runtime": "nan", "wait": "inf", "retries": "-1", "sent": "garbage",
                      "received": "", "started": "1e20", "dlq_at": "nan",
                      "finished": f"{T0 + 2.0000005:.7f}"}),
    ("h-bare", 6, {}),
    ("h-expired", 7, {}),
]


def _expected(redactor: Redactor, raw: dict[str, dict[str, str]], scores: dict[str, float],
              body: dict[str, Any]) -> bytes:
    """The model path: each listed record shaped by ``task_status`` from its whole hash, the
    page masked whole, validated and dumped by ``TaskPage``."""
    fields = [name for name in TaskSummary.model_fields if name != "updated"]
    items = []
    for item in body["items"]:
        full = task_status(item["task_id"], raw[item["task_id"]], redactor=redactor)
        items.append({**{k: full.get(k) for k in fields}, "updated": scores[item["task_id"]]})
    page = redactor.redact({**body, "items": items})
    adapter = TypeAdapter(TaskPage)
    return adapter.dump_json(adapter.validate_python(page))


# Keys that mask string fields of a page (a key matching one of Warden's number fields, like
# "worker" → worker_pid, is refused at start: tests/unit/test_own_fields.py).
@pytest.mark.parametrize("redact_keys", ["", "parent,exc_type,args"])
def test_the_fast_page_is_the_model_pages_bytes(settings_factory, redis_client,
                                                redact_keys: str) -> None:
    settings = settings_factory(WARDEN_REDACT_KEYS=redact_keys, WARDEN_SERVE_SAMPLER=False,
                                WARDEN_SERVE_ALERTS=False)
    keys = Keys(settings.key_prefix)
    flush_records(settings, [(i, T0 + ts, f) for i, ts, f in RECORDS])
    redis_client.hdel(keys.task("h-bare"), "state", "sent", "finished")  # only a name left
    redis_client.delete(keys.task("h-expired"))  # its index entries stay
    raw = {i: redis_client.hgetall(keys.task(i)) for i, _, _ in RECORDS}
    scores = {i: redis_client.zscore(keys.recent, i) for i, _, _ in RECORDS}
    token = TokenStore(redis_client, keys).create("fast-page", "read")[0]
    redactor = Redactor(settings.redact_keys)
    queries: list[dict[str, Any]] = [
        {}, {"limit": 2}, {"state": "FAILURE"}, {"state": "pending"}, {"name": "t.a"},
        {"id_prefix": "h-"}, {"q": "hunter2"}, {"q": "\u00e9chec"}, {"queue": "default"},
        {"worker": "w@h"}, {"name": RECORDS[1][2]["name"]}]
    app = create_app(settings)

    async def run() -> list[tuple[dict[str, Any], httpx.Response]]:
        out = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                         headers={"Authorization": f"Bearer {token}"}) as c:
                for params in queries:
                    out.append((params, await c.get("/api/v1/tasks", params=params)))
                cursor = out[1][1].json()["next_cursor"]  # the second page of {"limit": 2}
                out.append(({"limit": 2, "cursor": cursor},
                            await c.get("/api/v1/tasks", params={"limit": 2, "cursor": cursor})))
        return out

    seen = set()
    for params, response in asyncio.run(run()):
        assert response.status_code == 200, (params, response.text)
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        seen |= {i["task_id"] for i in body["items"]}
        assert response.content == _expected(redactor, raw, scores, body), params
    assert seen == {i for i, _, _ in RECORDS} - {"h-expired"}
    text = str(seen)
    assert "hunter2" not in text and "s3cr3t" not in text

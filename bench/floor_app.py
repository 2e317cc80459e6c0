"""The benchmark's plain arm: FastAPI on uvicorn answering one ``HGETALL`` per request.

``bench/serve_api.py`` runs it beside ``warden serve`` on the same store and machine, so the
task-lookup numbers read as a ratio: what Warden's lookup (token check, record shaping,
masking, response model, security headers) costs over the floor of the same framework and the
same Redis read. Configured from ``REDIS_URL`` and ``WARDEN_KEY_PREFIX``.
"""

from __future__ import annotations

import os

import redis
from fastapi import FastAPI

from celery_warden.keys import Keys

client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
keys = Keys(os.environ.get("WARDEN_KEY_PREFIX", "warden"))
app = FastAPI()


@app.get("/floor/{task_id}")
def floor(task_id: str) -> dict[str, str]:
    return dict(client.hgetall(keys.task(task_id)))

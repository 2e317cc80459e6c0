"""A hot route (serve/hot_routes.py) answers exactly what the FastAPI route it stands in front
of answers: the same app with and without the hot routes, the same requests — valid pages,
every kind of 422, no token, an unknown token, a weaker scope, open reads for loopback and for
another host name, HEAD, a session cookie — and equal status, body and headers."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from starlette.routing import Route

from celery_warden.keys import Keys
from celery_warden.serve.app import create_app
from celery_warden.serve.routes.tasks import list_tasks_hot
from celery_warden.serve.tokens import TokenStore
from tests.unit.test_query_model import QUERIES
from tests.unit.test_task_search import T0, flush_records


def _without_hot_routes(app: FastAPI) -> FastAPI:
    app.router.routes[:] = [r for r in app.router.routes
                            if not (isinstance(r, Route) and r.endpoint is list_tasks_hot)]
    return app


def _answers(app: FastAPI, requests: list[tuple[str, str, dict[str, str]]],
             ) -> list[tuple[int, bytes, list[tuple[str, str]]]]:
    async def run() -> list[tuple[int, bytes, list[tuple[str, str]]]]:
        out = []
        transport = httpx.ASGITransport(app=app)
        async with (app.router.lifespan_context(app),
                    httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c):
            for method, url, headers in requests:
                r = await c.request(method, url, headers=headers)
                kept = sorted((k, v) for k, v in r.headers.items() if k != "date")
                out.append((r.status_code, r.content, kept))
        return out

    return asyncio.run(run())


def test_the_hot_route_answers_as_the_fastapi_route(settings_factory, redis_client) -> None:
    for open_reads in ("false", "true"):
        settings = settings_factory(WARDEN_SERVE_SAMPLER=False, WARDEN_SERVE_ALERTS=False,
                                    WARDEN_API_OPEN_READS=open_reads)
        flush_records(settings, [(f"hr-{i}", T0 + i, {"exc_msg": "password=hunter2 <b>"})
                                 for i in range(12)])
        tokens = TokenStore(redis_client, Keys(settings.key_prefix))
        read = tokens.create("hr-read", "read")[0]
        scrape = tokens.create("hr-metrics", "metrics")[0]
        auths = [{}, {"Authorization": f"Bearer {read}"}, {"Authorization": f"Bearer {scrape}"},
                 {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"},
                 {"Authorization": f"Bearer {read}", "Host": "evil.example"},
                 {"Host": "evil.example"}, {"Cookie": "warden_session=stale"}]
        requests = [("GET", "/api/v1/tasks?" + q, {"Authorization": f"Bearer {read}"})
                    for q in QUERIES]
        requests += [("GET", "/api/v1/tasks?limit=3", h) for h in auths]
        requests += [("HEAD", "/api/v1/tasks", {"Authorization": f"Bearer {read}"}),
                     ("POST", "/api/v1/tasks?limit=3", {"Authorization": f"Bearer {read}"}),
                     ("GET", "/api/v1/tasks/", {"Authorization": f"Bearer {read}"})]
        hot = create_app(settings)
        assert any(isinstance(r, Route) and r.endpoint is list_tasks_hot
                   for r in hot.router.routes[:1])
        plain = _without_hot_routes(create_app(settings))
        for request, a, b in zip(requests, _answers(hot, requests), _answers(plain, requests),
                                 strict=True):
            assert a == b, (open_reads, request)
        assert sum(a[0] == 200 for a in _answers(hot, requests)) >= 10

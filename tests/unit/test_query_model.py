"""Query parameters validated as one model (serve/query_model.py) answer what FastAPI's solving
of one ``Query`` per parameter answered, and are documented the same.

The reference is ``GET /api/v1/tasks`` as it was declared before: the same ``Annotated`` types
as ten parameters of the endpoint, served by FastAPI on a throwaway app. Each query string —
valid, out of bounds, unparsable, repeated, unknown, many errors at once — is sent to that
route and to one validating ``TaskQuery`` with :func:`parse_query`: the values and the error
lists (type, location, message, input, context) must be equal, and so must the OpenAPI
parameters. Then the real route, on the real Redis: the same 422 bodies, the last of a
repeated parameter counts, credentials are checked before the parameters."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from celery_warden.keys import Keys
from celery_warden.serve.app import create_app
from celery_warden.serve.params import Cursor, Limit, Time
from celery_warden.serve.query_model import parse_query
from celery_warden.serve.routes.tasks import TaskQuery, Text
from celery_warden.serve.tokens import TokenStore
from tests.unit.test_task_search import T0, flush_records

QUERIES = [
    "", "limit=5", "limit=0", "limit=abc", "limit=201", "limit=200", "limit=1", "limit=",
    "limit=5&limit=7", "limit=7&limit=5", "limit=abc&limit=5", "limit=5&limit=abc",
    "limit=5.0", "limit=5.5", "limit=%205", "limit=-1", "limit=1e2", "limit=0x10", "limit=+5",
    "limit=%EF%BC%95", "limit=5_0", "limit=" + "9" * 5000, "limit=true",
    "name=" + "n" * 301, "name=" + "n" * 300, "state=" + "s" * 301, "queue=" + "q" * 301,
    "worker=" + "w" * 301, "id_prefix=" + "i" * 301, "q=" + "x" * 301, "since=" + "1" * 65,
    "since=" + "1" * 64, "until=" + "x" * 65, "cursor=" + "c" * 201, "cursor=" + "c" * 200,
    "cursor=", "state=", "state=nope", "since=abc", "name=a&name=" + "n" * 301,
    "name=" + "n" * 301 + "&name=a", "unknown=1&limit=3", "limit=3&LIMIT=abc", "Limit=abc",
    "limit[]=3", "name=%00", "q=%FF%FE", "name=" + "\u00e9" * 300, "name=" + "\u00e9" * 301,
    "name=" + "\U0001f680" * 301, "name=a+b%20c&q=%2B",
    # every parameter wrong at once: more than the five errors the API's message keeps
    "limit=0&name=" + "n" * 301 + "&since=" + "1" * 65 + "&cursor=" + "c" * 201 + "&q="
    + "x" * 301 + "&state=" + "s" * 301 + "&until=" + "1" * 65 + "&worker=" + "w" * 301,
]


def _get(app: FastAPI, *urls: str) -> list[httpx.Response]:
    """``GET`` each of ``urls`` from ``app`` through its ASGI interface."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1") as client:
            return [await client.get(url) for url in urls]

    return asyncio.run(run())


def _reference() -> FastAPI:
    """The per-parameter declaration (as ``list_tasks`` had it) and the one-model one, each
    answering its values or its validation errors as JSON."""
    app = FastAPI()

    @app.exception_handler(RequestValidationError)
    async def _errors(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"errors": list(exc.errors())}, status_code=422)

    @app.get("/per-parameter")
    async def per_parameter(state: Text = None, name: Text = None, queue: Text = None,
                            worker: Text = None, since: Time = None, until: Time = None,
                            id_prefix: Text = None, q: Text = None, cursor: Cursor = None,
                            limit: Limit = 50) -> dict[str, Any]:
        return {"state": state, "name": name, "queue": queue, "worker": worker,
                "since": since, "until": until, "id_prefix": id_prefix, "q": q,
                "cursor": cursor, "limit": limit}

    @app.get("/one-model")
    async def one_model(request: Request) -> dict[str, Any]:
        return parse_query(TaskQuery, request).model_dump()

    return app


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q[:40])
def test_one_model_answers_what_fastapi_answered_per_parameter(query: str) -> None:
    before, after = _get(_reference(), "/per-parameter?" + query, "/one-model?" + query)
    assert (after.status_code, after.json()) == (before.status_code, before.json())


def test_the_route_documents_the_same_parameters(settings_factory) -> None:
    settings = settings_factory(WARDEN_SERVE_SAMPLER=False, WARDEN_SERVE_ALERTS=False)
    operation = create_app(settings).openapi()["paths"]["/api/v1/tasks"]["get"]
    spec = _get(_reference(), "/openapi.json")[0].json()
    expected = spec["paths"]["/per-parameter"]["get"]["parameters"]
    assert operation["parameters"] == expected
    assert [p["name"] for p in expected] == list(TaskQuery.model_fields)
    assert expected[-1] == {  # frozen from main, as the fuzzing and the clients read it
        "name": "limit", "in": "query", "required": False,
        "description": "Items per page (at most 200).",
        "schema": {"type": "integer", "maximum": 200, "minimum": 1, "default": 50,
                   "description": "Items per page (at most 200).", "title": "Limit"}}
    assert expected[0] == {"name": "state", "in": "query", "required": False, "schema": {
        "anyOf": [{"type": "string", "maxLength": 300}, {"type": "null"}], "title": "State"}}
    assert operation["security"] == [{"HTTPBearer": []}]
    assert set(operation["responses"]) == {"200", "401", "403", "404", "422", "503"}


def _invalid(message: str) -> dict[str, Any]:
    return {"error": {"code": "invalid_request", "message": message}}


def test_the_route_answers_as_before(settings_factory, redis_client) -> None:
    """Bodies as main answered them (FastAPI's per-parameter checks through the API's error
    handler), and the pages they filter."""
    settings = settings_factory(WARDEN_SERVE_SAMPLER=False, WARDEN_SERVE_ALERTS=False)
    flush_records(settings, [(f"lq-{i}", T0 + i, {}) for i in range(9)])
    token = TokenStore(redis_client, Keys(settings.key_prefix)).create("lq", "read")[0]
    app = create_app(settings)
    integer = "Input should be a valid integer, unable to parse string as an integer"
    expected: list[tuple[str, int, dict[str, Any] | int]] = [
        ("limit=0", 422, _invalid("query.limit: Input should be greater than or equal to 1")),
        ("limit=abc", 422, _invalid(f"query.limit: {integer}")),
        ("limit=201", 422, _invalid("query.limit: Input should be less than or equal to 200")),
        ("limit=5&limit=abc", 422, _invalid(f"query.limit: {integer}")),
        ("name=" + "n" * 301, 422,
         _invalid("query.name: String should have at most 300 characters")),
        ("since=" + "1" * 65, 422,
         _invalid("query.since: String should have at most 64 characters")),
        ("cursor=" + "c" * 201, 422,
         _invalid("query.cursor: String should have at most 200 characters")),
        ("limit=0&q=" + "x" * 301, 422, _invalid(
            "query.q: String should have at most 300 characters; "
            "query.limit: Input should be greater than or equal to 1")),
        ("state=nope", 422, _invalid("state: one of PENDING, SENT, RECEIVED, STARTED, SUCCESS, "
                                     "FAILURE, RETRY, REVOKED, REJECTED, DEFERRED, IGNORED")),
        ("cursor=" + "c" * 200, 422, {"error": {"code": "invalid_cursor",
                                                "message": "cursor: not one this API handed out"}}),
        ("", 200, 9), ("limit=5&limit=7", 200, 7), ("limit=7&limit=5", 200, 5),
        ("limit=abc&limit=3", 200, 3), ("unknown=x&limit=2", 200, 2), ("id_prefix=lq-1", 200, 1),
        ("state=success&limit=4", 200, 4), ("name=" + "n" * 300, 200, 0),
    ]

    async def run() -> list[tuple[str, httpx.Response, httpx.Response]]:
        out = []
        transport = httpx.ASGITransport(app=app)
        async with (app.router.lifespan_context(app),
                    httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c):
            for query, _, _ in expected:
                url = "/api/v1/tasks?" + query
                out.append((query, await c.get(url, headers={
                    "Authorization": f"Bearer {token}"}), await c.get(url)))
        return out

    for (query, status, body), (_, answer, anonymous) in zip(expected, asyncio.run(run()),
                                                             strict=True):
        assert answer.status_code == status, (query, answer.text)
        if status == 200:
            assert len(answer.json()["items"]) == body, query
        else:
            assert answer.json() == body, query
        # no credentials: refused before any parameter is looked at
        assert anonymous.status_code == 401, query
        assert anonymous.json()["error"]["code"] == "unauthorized", query

"""``/api/v1/tasks``: list and search, one task in full, submit, revoke, retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from celery_warden.read.task_detail import TaskDetail as DetailReader
from celery_warden.read.task_search import CursorError, TaskFilter, TaskSearch
from celery_warden.serve import control
from celery_warden.serve.audited import audited
from celery_warden.serve.auth import Operator, Reader, may_read
from celery_warden.serve.context import Ctx, ServeContext
from celery_warden.serve.errors import ERROR_RESPONSES, ApiError, not_found
from celery_warden.serve.fast_response import model_bytes
from celery_warden.serve.page_mask import masked_page
from celery_warden.serve.params import Cursor, Limit, TaskId, Time, parse_time
from celery_warden.serve.query_model import parse_query, query_openapi
from celery_warden.serve.schemas.tasks import (
    Retried,
    Revoked,
    Submit,
    Submitted,
    TaskDetail,
    TaskPage,
)

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"], responses=ERROR_RESPONSES)
Text = Annotated[str | None, Query(max_length=300)]
STATES = ("PENDING", "SENT", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED",
          "REJECTED", "DEFERRED", "IGNORED")


class TaskQuery(BaseModel):
    """The filters of ``GET /api/v1/tasks``: validated in one call, not one by FastAPI per
    parameter (serve/query_model.py), documented as the same ten query parameters."""

    state: Text = None
    name: Text = None
    queue: Text = None
    worker: Text = None
    since: Time = None
    until: Time = None
    id_prefix: Text = None
    q: Text = None
    cursor: Cursor = None
    limit: Limit = 50


@router.get("", response_model=TaskPage, openapi_extra=query_openapi(TaskQuery))
async def list_tasks(request: Request, who: Reader, ctx: Ctx) -> Any:
    """Tasks newest first (by last update), filtered; ``next_cursor`` continues. A page
    examines at most 5,000 records: ``complete: false`` means follow the cursor for more."""
    # Served by list_tasks_hot (serve/hot_routes.py); this route documents it, and answers
    # alike should the hot route not be mounted.
    return await task_page(request, ctx)


async def task_page(request: Request, ctx: ServeContext) -> Response:
    """The answer of ``GET /api/v1/tasks`` to a caller already allowed to read."""
    p = parse_query(TaskQuery, request)  # after the credentials, as FastAPI's checks were
    # Like the task lookup: awaited on the loop (no thread pool hop), masked, written once
    # without a pass through the model (serve/fast_response.py, serve/page_mask.py).
    if p.state and p.state.upper() not in STATES:
        raise ApiError(422, "invalid_request", f"state: one of {', '.join(STATES)}")
    f = TaskFilter(state=p.state, name=p.name, queue=p.queue, worker=p.worker,
                   since=parse_time(p.since, "since"), until=parse_time(p.until, "until"),
                   id_prefix=p.id_prefix, q=p.q)
    try:
        page = await TaskSearch(ctx.redis, ctx.keys, ctx.redactor).apage(ctx.aredis, f,
                                                                         p.cursor, p.limit)
    except CursorError:
        raise ApiError(422, "invalid_cursor", "cursor: not one this API handed out") from None
    # The search masked the items (read/task_search.masked_items); the rest is masked here.
    return model_bytes(TaskPage, masked_page(ctx.redactor, page, items_masked=True))


async def list_tasks_hot(request: Request) -> Response:
    """:func:`list_tasks` without FastAPI's per-request wrapper (serve/hot_routes.py): the
    same credential check (the ``Reader`` dependency's function), then the same page."""
    await may_read(request)
    return await task_page(request, request.app.state.ctx)


@router.get("/{task_id}", response_model=TaskDetail)
def get_task(task_id: TaskId, who: Reader, ctx: Ctx) -> Any:
    """The record, its timeline and its workflow (parent, root, children); 404 if unknown."""
    found = DetailReader(ctx.redis, ctx.keys, ctx.redactor).get(task_id)
    if found is None:
        raise not_found("task", task_id)
    return ctx.masked(found)


@router.post("", response_model=Submitted, status_code=201)
def submit(body: Submit, who: Operator, ctx: Ctx) -> Any:
    """Send a task by name (registered on this app or seen by the fleet). Scope operate."""
    params = body.model_dump()
    with audited(ctx, who, "task.submit", body.name, params) as outcome:
        task_id = control.submit(ctx.monitor, body.name, body.args, body.kwargs, body.queue,
                                 body.priority, body.countdown)
        outcome.result, outcome.status = f"task_id={task_id}", 201
    return {"task_id": task_id}


@router.post("/{task_id}/revoke", response_model=Revoked)
def revoke(task_id: TaskId, who: Operator, ctx: Ctx, terminate: bool = False) -> Any:
    """Revoke a task (``terminate=true`` also kills it if running). Scope operate."""
    with audited(ctx, who, "task.revoke", task_id, {"terminate": terminate}) as outcome:
        state = control.revoke(ctx.monitor, task_id, terminate)
        outcome.result = f"revoked (was {state})"
    return {"task_id": task_id, "state": state, "terminate": terminate}


@router.post("/{task_id}/retry", response_model=Retried, status_code=201)
def retry(task_id: TaskId, who: Operator, ctx: Ctx) -> Any:
    """Run a finished task again with the same arguments (from its DLQ entry when it has one).
    Scope operate."""
    with audited(ctx, who, "task.retry", task_id) as outcome:
        answer = control.retry(ctx.monitor, task_id)
        outcome.result, outcome.status = f"task_id={answer['task_id']} via {answer['via']}", 201
    return answer


__all__ = ["router"]

"""``GET /api/v1/stream``: server-sent events (``kpis``, ``task``, ``worker``, ``dlq``,
``breaker``, ``alert``; a comment ping every 15 s). Scope ``read``.

Every listener is fed by the one broadcaster of this server process
(:mod:`celery_warden.serve.stream`), so listeners add no Redis reads; a listener too slow to
keep up is disconnected (its ``EventSource`` reconnects) rather than slowing the others.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from celery_warden.serve.auth import Reader
from celery_warden.serve.context import Ctx
from celery_warden.serve.errors import ApiError
from celery_warden.serve.stream import EXTRA, Broadcaster, frames

router = APIRouter(tags=["stream"])


@router.get(
    "/api/v1/stream",
    response_class=StreamingResponse,
    summary="Live events (server-sent events)",
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "SSE: events kpis, task, worker, dlq, breaker, alert"}},
)
async def stream(who: Reader, ctx: Ctx) -> StreamingResponse:
    broadcaster = ctx.extras.get(EXTRA)
    if not isinstance(broadcaster, Broadcaster):
        raise ApiError(503, "stream_unavailable", "the stream broadcaster is not running")
    listener = broadcaster.subscribe()
    return StreamingResponse(frames(broadcaster, listener), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


__all__ = ["router"]

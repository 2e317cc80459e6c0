"""Turn a failure, wherever it is seen, into a DLQ entry.

Three sources, three shapes of input:

* a pool child at the final failure of a task: the task's request context
  (:func:`entry_from_context`);
* the worker's main process for hard time limits, lost workers and poison pills: the worker's
  ``Request`` object (:func:`entry_from_request`);
* the consumer, for messages that never became a request (unknown task name, undecodable body,
  invalid message): the raw kombu message, body kept verbatim (:func:`entry_from_message`).

The failure text is taken whole: :meth:`~celery_warden.dlq.entry.DLQEntry.mask_failure` masks
secrets in it and only then bounds it (a cut first could split a secret from its key).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from celery_warden import headers as h
from celery_warden.dlq.entry import DLQEntry
from celery_warden.priority import MAX_PRIORITY


def _entry_id(task_id: str, headers: dict[str, Any]) -> str:
    """A requeued task that fails again updates the entry it came from."""
    return str(headers.get(h.DLQ_ENTRY) or task_id)


def _user_priority(headers: dict[str, Any], broker_priority: Any,
                   broker_is_redis: bool) -> int | None:
    if headers.get(h.PRIORITY) is not None:
        return h.as_int(headers[h.PRIORITY])
    if broker_priority is None:
        return None
    p = h.as_int(broker_priority)
    return MAX_PRIORITY - p if broker_is_redis else p


def _jsonable(value: Any) -> Any:
    """Args/kwargs as JSON-safe values (JSON-only serialization makes this a no-op normally)."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=repr))


def _message_fields(headers: dict[str, Any], info: dict[str, Any], broker_priority: Any,
                    broker_is_redis: bool) -> dict[str, Any]:
    """Where the message went and with which priority and headers: what a requeue replays."""
    return {
        "queue": info.get("routing_key"),
        "exchange": info.get("exchange"),
        "routing_key": info.get("routing_key"),
        "priority": _user_priority(headers, broker_priority, broker_is_redis),
        "headers": _jsonable(h.replayable(headers)),
    }


def entry_from_context(task: Any, exc: BaseException | None, traceback: str | None,
                       reason: str, broker_is_redis: bool,
                       history: list[dict[str, Any]] | None = None) -> DLQEntry:
    """From a task's request context, in the pool child running it."""
    req = task.request
    headers = dict(req.headers or {})
    info = req.delivery_info or {}
    now = time.time()
    return DLQEntry(
        id=_entry_id(req.id, headers),
        task_id=req.id,
        reason=reason,
        name=task.name,
        args=_jsonable(list(req.args or [])),
        kwargs=_jsonable(dict(req.kwargs or {})),
        **_message_fields(headers, info, info.get("priority"), broker_is_redis),
        exc_type=type(exc).__name__ if exc is not None else None,
        exc_message=str(exc) if exc is not None else None,
        traceback=traceback or None,
        history=history or [],
        worker=req.hostname,
        last_failed=now,
        requeues=h.as_int(headers.get(h.REQUEUES)),
    )


def entry_from_request(request: Any, reason: str, broker_is_redis: bool,
                       exc: BaseException | None = None, message: str | None = None,
                       traceback: str | None = None) -> DLQEntry:
    """From a worker ``Request`` in the main process (time limits, lost workers, poison)."""
    rd = request.request_dict
    headers = {k: v for k, v in rd.items() if k.startswith(h.PREFIX)}
    info = request.delivery_info or {}
    args: Any
    kwargs: Any
    try:
        args, kwargs = list(request.args or []), dict(request.kwargs or {})
    except Exception:
        args, kwargs = None, None
    history = headers.get(h.HISTORY)
    return DLQEntry(
        id=_entry_id(request.id, headers),
        task_id=request.id,
        reason=reason,
        name=request.name,
        args=_jsonable(args) if args is not None else None,
        kwargs=_jsonable(kwargs) if kwargs is not None else None,
        **_message_fields(headers, info, info.get("priority"), broker_is_redis),
        exc_type=type(exc).__name__ if exc is not None else "WorkerLostError",
        exc_message=message or (str(exc) if exc is not None else ""),
        traceback=traceback or None,
        history=history if isinstance(history, list) else [],
        worker=request.hostname,
        last_failed=time.time(),
        requeues=h.as_int(headers.get(h.REQUEUES)),
    )


def _raw(message: Any) -> dict[str, Any]:
    body = message.body
    if isinstance(body, bytes):
        try:
            body_text, encoding = body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body_text, encoding = base64.b64encode(body).decode(), "base64"
    else:
        body_text, encoding = str(body), "utf-8"
    return {
        "body": body_text,
        "body_encoding": encoding,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "headers": _jsonable(dict(message.headers or {})),
        "properties": _jsonable(dict(message.properties or {})),
        "delivery_info": _jsonable({k: v for k, v in (message.delivery_info or {}).items()
                                    if isinstance(v, str | int | float | bool | type(None))}),
    }


def entry_from_message(message: Any, reason: str, broker_is_redis: bool,
                       exc: BaseException | None = None,
                       extra: str | None = None) -> DLQEntry:
    """From a raw kombu message that never became a task request. The body is kept verbatim;
    args/kwargs are filled in when the body decodes as a Celery protocol-2 JSON body."""
    headers = dict(message.headers or {})
    info = message.delivery_info or {}
    task_id = str(headers.get("id") or "") or f"msg-{time.time_ns()}"
    args = kwargs = None
    try:
        decoded = message.decode()
        if isinstance(decoded, list | tuple) and len(decoded) == 3:
            args, kwargs = list(decoded[0]), dict(decoded[1])
    except Exception:
        pass
    props = message.properties or {}
    return DLQEntry(
        id=_entry_id(task_id, headers),
        task_id=task_id,
        reason=reason,
        name=str(headers.get("task")) if headers.get("task") else None,
        args=_jsonable(args) if args is not None else None,
        kwargs=_jsonable(kwargs) if kwargs is not None else None,
        **_message_fields(headers, info, props.get("priority"), broker_is_redis),
        exc_type=type(exc).__name__ if exc is not None else None,
        exc_message=extra or (str(exc) if exc is not None else ""),
        last_failed=time.time(),
        requeues=h.as_int(headers.get(h.REQUEUES)),
        raw=_raw(message),
    )


__all__ = ["entry_from_context", "entry_from_message", "entry_from_request"]

"""Write a mutating call to the audit log however it ends.

``with audited(ctx, who, "dlq.requeue", entry_id, params) as outcome: ...; outcome.result = ..``
writes one entry after the block: the result the route set, or the error it raised (an
:class:`~celery_warden.serve.errors.ApiError`'s status and message, 500 otherwise) — a refused
or failed mutation is in the log too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from celery_warden.serve.auth import Principal
from celery_warden.serve.context import ServeContext
from celery_warden.serve.errors import ApiError


@dataclass(slots=True)
class Outcome:
    result: str = "ok"
    status: int = 200


@contextmanager
def audited(ctx: ServeContext, who: Principal, action: str, target: str,
            params: dict[str, Any] | None = None) -> Iterator[Outcome]:
    outcome = Outcome()
    try:
        yield outcome
    except ApiError as exc:
        outcome.result, outcome.status = f"{exc.code}: {exc.message}", exc.status
        raise
    except Exception as exc:
        outcome.result, outcome.status = f"error: {type(exc).__name__}", 500
        raise
    finally:
        ctx.audit.write(who.name, who.via, action, target, params, outcome.result,
                        outcome.status)


__all__ = ["Outcome", "audited"]

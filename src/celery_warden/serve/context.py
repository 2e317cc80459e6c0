"""What every request handler needs, built once per server process: :class:`ServeContext`.

The lifespan of :func:`~celery_warden.serve.app.create_app` builds it and keeps it at
``app.state.ctx``; routes take it through the :func:`get_ctx` dependency (``Ctx``). The server
is stateless: everything it shows is read from the shared Redis (and the broker), so several
replicas behind a load balancer answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import redis
import redis.asyncio as aredis
from celery import Celery
from fastapi import Depends, Request

from celery_warden.keys import Keys
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.redaction import Redactor
from celery_warden.serve.aio_store import async_client
from celery_warden.serve.audit import AuditLog
from celery_warden.serve.auth_cache import AuthCache
from celery_warden.serve.tokens import TokenStore
from celery_warden.settings import WardenSettings


@dataclass(eq=False)
class ServeContext:
    """Settings, the Celery app, the monitor (readers), the store clients (blocking, and
    asyncio for the hot path: :mod:`.aio_store`), keys, redactor, tokens (and their cached
    check, :mod:`.auth_cache`) and the audit log of one server process."""

    settings: WardenSettings
    celery: Celery
    monitor: CeleryMonitor
    redis: redis.Redis = field(init=False)
    aredis: aredis.Redis = field(init=False)
    keys: Keys = field(init=False)
    redactor: Redactor = field(init=False)
    tokens: TokenStore = field(init=False)
    auth: AuthCache = field(init=False)
    audit: AuditLog = field(init=False)
    #: Shared state of background tasks (e.g. the alert evaluator), by name.
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.redis = self.monitor.redis
        self.keys = self.monitor.keys
        self.redactor = Redactor(self.settings.redact_keys)
        self.aredis = async_client(self.settings.redis_url)
        self.tokens = TokenStore(self.redis, self.keys)
        self.auth = AuthCache(self.aredis, self.keys)
        self.audit = AuditLog(self.redis, self.keys, self.redactor,
                              self.settings.audit_max_age)

    @classmethod
    def build(cls, settings: WardenSettings, celery_app: Celery | None = None) -> ServeContext:
        monitor = CeleryMonitor(settings, app=celery_app)
        return cls(settings=settings, celery=monitor.app, monitor=monitor)

    def masked(self, value: Any) -> Any:
        """``value`` with secrets masked (every response body goes through this)."""
        return self.redactor.redact(value)

    def close(self) -> None:
        self.monitor.redis.close()

    async def aclose(self) -> None:
        """Close the asyncio client's connections (on the loop that opened them)."""
        await self.aredis.aclose()


async def get_ctx(request: Request) -> ServeContext:
    """FastAPI dependency: this process's :class:`ServeContext` (``async``, so FastAPI calls
    it on the loop instead of sending it to the thread pool)."""
    ctx: ServeContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServeContext, Depends(get_ctx)]

__all__ = ["Ctx", "ServeContext", "get_ctx"]

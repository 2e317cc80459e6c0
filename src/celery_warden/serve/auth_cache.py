"""Token and session checks for every request, awaited on the event loop and cached briefly.

Every API request presents a token (or a session cookie), so its check is on the hot path: a
Redis read through the thread pool per request cost more than the task lookup itself. Here the
check awaits the asyncio client (:mod:`.aio_store`) and keeps what it found for
:data:`CACHE_SECONDS`:

* only *valid* credentials are cached, by the SHA-256 of the presented secret (never the
  secret); an unknown, revoked or malformed one is looked up in Redis every time, so a
  credential created a moment ago works at once and guessing costs what it did;
* a revocation (``warden token revoke``, ``DELETE /api/v1/tokens/{name}``, another replica) or
  a logout takes effect within :data:`CACHE_SECONDS` on every server process, and at once on
  the process that handled it (:meth:`AuthCache.forget_all`);
* the cache is bounded (:data:`MAX_ENTRIES`, emptied when full) and per process.

The stored entries and their hashing are :class:`~celery_warden.serve.tokens.TokenStore`'s;
this module only reads them.
"""

from __future__ import annotations

import hmac
import time
from typing import TypeVar, cast

import redis.asyncio as aredis

from celery_warden.keys import Keys
from celery_warden.serve.tokens import MAX_SECRET, MAX_SID, TokenInfo, digest, parse_entry

#: How long a valid token or session is trusted without reading Redis again: the most a
#: revocation elsewhere can lag on this process.
CACHE_SECONDS = 2.0
#: Entries kept per kind (tokens, sessions); the cache is emptied when one is full.
MAX_ENTRIES = 4096
_V = TypeVar("_V")


class AuthCache:
    """Resolves bearer tokens and session ids to :class:`TokenInfo`, through a short cache."""

    def __init__(self, client: aredis.Redis, keys: Keys, ttl: float = CACHE_SECONDS) -> None:
        self.redis = client
        self.keys = keys
        self.ttl = ttl
        self._tokens: dict[str, tuple[float, TokenInfo]] = {}
        self._sessions: dict[str, tuple[float, str]] = {}

    async def check(self, secret: str) -> TokenInfo | None:
        """The token ``secret`` is, or ``None`` (digests compared in constant time)."""
        if not secret or len(secret) > MAX_SECRET:
            return None
        return await self._by_digest(digest(secret))

    async def session(self, sid: str) -> TokenInfo | None:
        """The token a session cookie was made from, or ``None`` (expired, logged out, or its
        token revoked)."""
        if not sid or len(sid) > MAX_SID:
            return None
        sid_digest = digest(sid)
        hit = self._sessions.get(sid_digest)
        if hit is not None and hit[0] > time.monotonic():
            return await self._by_digest(hit[1])
        token_digest = cast(str | None, await self.redis.get(self.keys.api_session(sid_digest)))
        if not token_digest:
            return None
        info = await self._by_digest(token_digest)
        if info is not None:
            _put(self._sessions, sid_digest, token_digest, self.ttl)
        return info

    def forget_all(self) -> None:
        """Drop every cached credential (after a revocation or logout on this process)."""
        self._tokens.clear()
        self._sessions.clear()

    async def _by_digest(self, wanted: str) -> TokenInfo | None:
        hit = self._tokens.get(wanted)
        if hit is not None and hit[0] > time.monotonic():
            info: TokenInfo | None = hit[1]
        else:
            raw = cast(str | None, await self.redis.hget(self.keys.api_tokens, wanted))
            info = parse_entry(wanted, raw) if raw is not None else None
            if info is not None:
                _put(self._tokens, wanted, info, self.ttl)
        if info is None or not hmac.compare_digest(info.digest, wanted):
            return None
        return info


def _put(cache: dict[str, tuple[float, _V]], key: str, value: _V, ttl: float) -> None:
    if len(cache) >= MAX_ENTRIES:
        cache.clear()
    cache[key] = (time.monotonic() + ttl, value)


__all__ = ["CACHE_SECONDS", "MAX_ENTRIES", "AuthCache"]

"""API tokens and dashboard sessions, stored hashed in Redis.

A token is 32 random bytes (``wdn_`` + URL-safe base64), shown once by ``warden token create``;
the store keeps only its SHA-256 (``P:api:tokens``: digest -> name, scope, creation time), so a
copy of Redis gives no usable credential. A lookup hashes the presented token, fetches the
entry by digest and compares the digests with :func:`hmac.compare_digest` (constant time).

A dashboard session is another random value, set as the ``warden_session`` cookie; Redis keeps
its SHA-256 -> the digest of the token it was made from, with a TTL. Revoking the token ends its
sessions at their next request (the token digest no longer resolves).

Scopes: ``read`` < ``operate`` < ``admin`` and ``metrics`` < ``admin`` (scrape only).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import cast

import redis

from celery_warden.keys import Keys
from celery_warden.timefmt import iso

TOKEN_PREFIX = "wdn_"
#: Token names: what the audit log shows as "who".
NAME_RE = re.compile(r"^[A-Za-z0-9_.@\-]{1,64}$")
#: Longest token and session id looked up (anything longer is refused without a read).
MAX_SECRET, MAX_SID = 512, 128


class Scope(enum.StrEnum):
    """What a token may do. ``admin`` ⊇ ``operate`` ⊇ ``read``; ``admin`` ⊇ ``metrics``."""

    READ = "read"
    METRICS = "metrics"
    OPERATE = "operate"
    ADMIN = "admin"

    def covers(self, needed: Scope) -> bool:
        """Whether a token of this scope may call an endpoint that needs ``needed``."""
        return needed in _COVERS[self]


_COVERS: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.METRICS: frozenset({Scope.METRICS}),
    Scope.OPERATE: frozenset({Scope.READ, Scope.OPERATE}),
    Scope.ADMIN: frozenset(Scope),
}


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token, without its secret."""

    name: str
    scope: Scope
    created: float
    digest: str

    def public(self) -> dict[str, object]:
        return {"name": self.name, "scope": self.scope.value, "created": iso(self.created),
                "id": self.digest[:12]}


class TokenStore:
    """Create, list, revoke and check tokens; open and resolve sessions."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    # -- tokens ----------------------------------------------------------------------------
    def create(self, name: str, scope: Scope | str) -> tuple[str, TokenInfo]:
        """A new token (the secret, returned once) and what is stored about it."""
        if not NAME_RE.match(name):
            raise ValueError("token name: 1-64 letters, digits and _.@- only")
        if any(t.name == name for t in self.list()):
            raise ValueError(f"a token named {name!r} exists: revoke it first")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(name, Scope(scope), round(time.time(), 3), digest(secret))
        self.redis.hset(self.keys.api_tokens, info.digest, json.dumps(
            {"name": info.name, "scope": info.scope.value, "created": info.created}))
        return secret, info

    def list(self) -> list[TokenInfo]:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.api_tokens))
        found = [t for d, v in raw.items() if (t := parse_entry(d, v)) is not None]
        return sorted(found, key=lambda t: t.created)

    def any(self) -> bool:
        """Whether at least one token exists (``warden serve`` needs one off loopback)."""
        return bool(self.redis.hlen(self.keys.api_tokens))

    def revoke(self, name: str) -> bool:
        """Remove the token named ``name`` (its sessions end with it)."""
        for t in self.list():
            if t.name == name:
                return bool(self.redis.hdel(self.keys.api_tokens, t.digest))
        return False

    def check(self, secret: str) -> TokenInfo | None:
        """The token ``secret`` is, or ``None``; digests compared in constant time."""
        if not secret or len(secret) > MAX_SECRET:
            return None
        return self._by_digest(digest(secret))

    def _by_digest(self, wanted: str) -> TokenInfo | None:
        raw = cast(str | None, self.redis.hget(self.keys.api_tokens, wanted))
        info = parse_entry(wanted, raw) if raw is not None else None
        if info is None or not hmac.compare_digest(info.digest, wanted):
            return None
        return info

    # -- sessions --------------------------------------------------------------------------
    def open_session(self, token: TokenInfo, ttl: int) -> str:
        """A new session cookie value for ``token`` (valid ``ttl`` seconds)."""
        sid = secrets.token_urlsafe(32)
        self.redis.set(self.keys.api_session(digest(sid)), token.digest, ex=ttl)
        return sid

    def session(self, sid: str) -> TokenInfo | None:
        if not sid or len(sid) > MAX_SID:
            return None
        token_digest = cast(str | None, self.redis.get(self.keys.api_session(digest(sid))))
        return self._by_digest(token_digest) if token_digest else None

    def close_session(self, sid: str) -> None:
        if sid and len(sid) <= MAX_SID:
            self.redis.delete(self.keys.api_session(digest(sid)))


def parse_entry(token_digest: str, value: str) -> TokenInfo | None:
    """A stored ``P:api:tokens`` entry as a :class:`TokenInfo` (``None`` when malformed)."""
    try:
        data = json.loads(value)
        return TokenInfo(str(data["name"]), Scope(data["scope"]), float(data["created"]),
                         token_digest)
    except (ValueError, KeyError, TypeError):
        return None


__all__ = ["MAX_SECRET", "MAX_SID", "NAME_RE", "TOKEN_PREFIX", "Scope", "TokenInfo", "TokenStore",
           "digest", "parse_entry"]

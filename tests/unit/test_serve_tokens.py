"""Tokens, sessions, scopes and the audit log of ``warden serve``, on the real Redis."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from celery_warden.keys import Keys
from celery_warden.redaction import Redactor
from celery_warden.serve.audit import AuditLog
from celery_warden.serve.tokens import Scope, TokenStore


def test_scopes_nest_as_documented():
    """admin ⊇ operate ⊇ read; admin ⊇ metrics; metrics and read are disjoint."""
    covers = {(a.value, b.value) for a in Scope for b in Scope if a.covers(b)}
    assert covers == {("read", "read"), ("metrics", "metrics"), ("operate", "read"),
                      ("operate", "operate"), ("admin", "read"), ("admin", "metrics"),
                      ("admin", "operate"), ("admin", "admin")}


def test_only_the_hash_is_stored_and_checks_find_the_token(settings, redis_client):
    keys = Keys(settings.key_prefix)
    store = TokenStore(redis_client, keys)
    secret, info = store.create("ci", "operate")
    stored = redis_client.hgetall(keys.api_tokens)
    assert list(stored) == [hashlib.sha256(secret.encode()).hexdigest()]
    assert secret not in json.dumps(stored)
    assert store.check(secret) == info and info.scope is Scope.OPERATE
    assert store.check(secret + "x") is None and store.check("") is None
    assert store.check("x" * 10_000) is None
    with pytest.raises(ValueError, match="exists"):
        store.create("ci", "read")
    with pytest.raises(ValueError, match="letters"):
        store.create("[i] <b>", "read")
    with pytest.raises(ValueError):
        store.create("bad-scope", "root")
    assert store.revoke("ci") and store.check(secret) is None and not store.any()


def test_a_session_lives_as_long_as_its_token_and_its_ttl(settings, redis_client):
    keys = Keys(settings.key_prefix)
    store = TokenStore(redis_client, keys)
    secret, info = store.create("browser", "read")
    sid = store.open_session(info, ttl=60)
    assert sid != secret and store.session(sid) == info
    assert 0 < redis_client.ttl(keys.api_session(hashlib.sha256(sid.encode()).hexdigest())) <= 60
    assert store.session("forged") is None
    store.close_session(sid)
    assert store.session(sid) is None
    sid = store.open_session(info, ttl=60)
    store.revoke("browser")
    assert store.session(sid) is None


def test_audit_log_is_masked_newest_first_and_bounded_by_age(settings, redis_client):
    keys = Keys(settings.key_prefix)
    log = AuditLog(redis_client, keys, Redactor(), max_age=1)
    log.write("ops", "token", "dlq.discard", "e1", {"password": "hunter2", "n": 1}, "ok", 200)
    time.sleep(1.2)
    log.write("ops", "cookie", "queue.purge", "default", {"confirm": "default"}, "purged 3",
              200)
    log.write("bot", "token", "task.submit", "api.add", {"kwargs": {"token": "t0k"}}, "x", 201)
    entries = log.read()
    assert [e["action"] for e in entries] == ["task.submit", "queue.purge"]  # the old one aged
    assert redis_client.zcard(keys.api_audit) == 2
    assert "t0k" not in json.dumps(entries) and "[redacted]" in entries[0]["params"]
    assert [e["who"] for e in log.read(who="ops")] == ["ops"]
    assert log.read(action="task.submit", limit=1)[0]["target"] == "api.add"
    older = log.read(before=entries[0]["ts"])
    assert [e["action"] for e in older] == ["queue.purge"]

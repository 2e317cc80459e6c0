"""Who may call what on a real ``warden serve``: tokens and scopes, open reads, the session
cookie and its same-origin rule, the audit log, security headers, JSON errors, the token CLI
and the refusal to listen off loopback without tokens."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import httpx
import pytest

from celery_warden.keys import Keys
from celery_warden.serve.auth_cache import CACHE_SECONDS
from celery_warden.serve.binding import ServeRefused, check_bind
from celery_warden.serve.tokens import TokenStore
from tests.api_server import BIN, ApiServer
from tests.support import ROOT, settings_env

READ = ("GET", "/api/v1/tasks")
OPERATE = ("POST", "/api/v1/breakers/auth-test/reset")
ADMIN = ("GET", "/api/v1/audit")
ADMIN_MUTATION = ("POST", "/api/v1/dlq/no-such-entry/discard")  # past auth: 404


@pytest.fixture
def server(settings, redis_client) -> Iterator[SimpleNamespace]:
    store = TokenStore(redis_client, Keys(settings.key_prefix))
    tokens = {scope: store.create(f"t-{scope}", scope)[0]
              for scope in ("read", "metrics", "operate", "admin")}
    with ApiServer(settings) as srv:
        yield SimpleNamespace(srv=srv, tokens=tokens, store=store)


def status(srv: ApiServer, token: str | None, call: tuple[str, str]) -> int:
    with srv.client(token) as c:
        return c.request(*call).status_code


def test_each_scope_is_allowed_and_refused(server):
    """401 without a token or with an unknown one; 403 with a weaker scope; admin ⊇ operate ⊇
    read; metrics reads nothing else."""
    srv, t = server.srv, server.tokens
    expected = {
        None: (401, 401, 401, 401),
        "wdn_not-a-token": (401, 401, 401, 401),
        t["metrics"]: (403, 403, 403, 403),
        t["read"]: (200, 403, 403, 403),
        t["operate"]: (200, 200, 403, 403),
        t["admin"]: (200, 200, 200, 404),
    }
    for token, codes in expected.items():
        got = tuple(status(srv, token, call) for call in (READ, OPERATE, ADMIN, ADMIN_MUTATION))
        assert got == codes, (token and token[:8], got)
    with srv.client() as c:
        assert c.get("/api/v1/monitoring/health").status_code == 503  # open, and no worker
        body = c.get("/api/v1/tasks").json()
        assert body["error"]["code"] == "unauthorized"
        bad = c.get("/api/v1/tasks", headers={"Authorization": "Basic abc"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    with srv.client(t["read"]) as c:
        refused = c.post("/api/v1/breakers/auth-test/reset").json()["error"]
        assert refused["code"] == "forbidden" and "'operate'" in refused["message"]


def refused_within_cache(check: Callable[[], int], expected: int = 401) -> float:
    """Seconds until ``check()`` answers ``expected``: a server trusts a valid credential for
    ``CACHE_SECONDS`` without reading the store, so a revocation made elsewhere (the CLI,
    another replica) must land within that — and not before the request after it reads Redis
    again. Fails if it takes longer than the window (plus scheduling slack)."""
    started = time.monotonic()
    while (code := check()) != expected:
        waited = time.monotonic() - started
        assert waited < CACHE_SECONDS + 3, f"still {code} after {waited:.1f}s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_token_revoked_elsewhere_is_refused_within_the_cache_window(server):
    """Revoked by another process (as `warden token revoke` does): refused within
    CACHE_SECONDS; a token unknown to the store is never cached, so it is refused every time."""
    srv, t = server.srv, server.tokens
    assert status(srv, t["read"], READ) == 200
    assert server.store.revoke("t-read")
    refused_within_cache(lambda: status(srv, t["read"], READ))
    assert status(srv, t["read"], READ) == 401


def test_open_reads_let_reads_through_and_never_mutations(settings, redis_client):
    """WARDEN_API_OPEN_READS=true: GETs answer without a token (as `anonymous` via `open`),
    mutations and admin reads still need their token."""
    with ApiServer(settings, extra_env={"WARDEN_API_OPEN_READS": "true"}) as srv:
        assert status(srv, None, READ) == 200
        assert status(srv, None, OPERATE) == 401
        assert status(srv, None, ADMIN) == 401
        with srv.client() as c:
            assert c.get("/api/v1/session").json() == {"name": "anonymous", "scope": "read",
                                                       "via": "open"}
            port = srv.port
            for host in (f"localhost:{port}", f"LOCALHOST:{port}", "127.0.0.1"):
                assert c.get(READ[1], headers={"Host": host}).status_code == 200, host
            # DNS rebinding: a page whose name now points at 127.0.0.1 reads nothing open.
            rebound = c.get(READ[1], headers={"Host": f"evil.example:{port}"})
            assert rebound.status_code == 403
            assert rebound.json()["error"]["code"] == "host_not_allowed"
            assert c.get("/api/v1/session", headers={"Host": "evil.example"}).status_code == 401
            c.cookies.set("warden_session", "expired-or-forged")  # stale: reads stay open
            assert c.get("/api/v1/session").json()["via"] == "open"
            assert c.get(READ[1]).status_code == 200
            assert c.post(OPERATE[1], headers={"Sec-Fetch-Site": "same-origin"}
                          ).status_code == 401


def test_session_cookie_and_same_origin_rule(server):
    """POST /session sets an HttpOnly SameSite=Strict cookie (not the token); GETs work with it;
    a state-changing request with it must be same-origin; logout and revocation end it."""
    srv, t = server.srv, server.tokens
    with srv.client() as c:
        assert c.post("/api/v1/session", json={"token": "wdn_wrong"}).status_code == 401
        assert c.post("/api/v1/session", json={"token": t["operate"]},
                      headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        login = c.post("/api/v1/session", json={"token": t["operate"]})
        assert login.status_code == 200, login.text
        assert login.json() == {"name": "t-operate", "scope": "operate", "via": "cookie"}
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("warden_session=")
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=strict" in lowered and "path=/" in lowered
        assert t["operate"] not in cookie
        assert c.get("/api/v1/session").json()["via"] == "cookie"
        assert c.get("/api/v1/tasks").status_code == 200
        path = OPERATE[1]
        own = srv.url
        refused = [
            c.post(path),  # no Origin, no Sec-Fetch-Site
            c.post(path, headers={"Origin": "https://evil.example"}),
            c.post(path, headers={"Sec-Fetch-Site": "cross-site"}),
            c.post(path, headers={"Sec-Fetch-Site": "same-site"}),
            c.post(path, headers={"Sec-Fetch-Site": "cross-site", "Origin": own}),
        ]
        assert [r.status_code for r in refused] == [403] * 5
        assert {r.json()["error"]["code"] for r in refused} == {"cross_site"}
        assert c.post(path, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
        assert c.post(path, headers={"Origin": own}).status_code == 200
        assert c.get("/api/v1/audit").status_code == 403  # the cookie carries operate only
        assert c.delete("/api/v1/session").json()["name"] == "t-operate"
        c.cookies.clear()
        c.cookies.set("warden_session", login.cookies["warden_session"])
        assert c.get("/api/v1/tasks").status_code == 401  # logged out: the session is gone
        again = c.post("/api/v1/session", json={"token": t["read"]})
        assert again.status_code == 200
        assert c.get("/api/v1/tasks").status_code == 200
        server.store.revoke("t-read")  # by another process: within the cache window
        refused_within_cache(lambda: c.get("/api/v1/tasks").status_code)
        gone = c.get("/api/v1/tasks")
        assert gone.status_code == 401 and gone.json()["error"]["code"] == "session_expired"


def test_every_mutation_is_audited_with_masked_parameters(server):
    """Who (token name), how, what, parameters (secrets masked), result and status — refused
    mutations too; the log is readable by admin only."""
    srv, t = server.srv, server.tokens
    with srv.client(t["operate"]) as c:
        ok = c.post("/api/v1/alerts/silences", json={
            "rule": "CeleryWorkerDown", "duration": "10m", "comment": "password=hunter2 [i]"})
        assert ok.status_code == 201, ok.text
        assert c.post("/api/v1/breakers/payments/open").status_code == 200
        assert c.delete("/api/v1/alerts/silences/nope").status_code == 404
    with srv.client(t["admin"]) as c:
        entries = c.get("/api/v1/audit").json()["items"]
        mine = c.get("/api/v1/audit", params={"who": "t-operate"}).json()["items"]
    by_action = {e["action"]: e for e in entries}
    silence = by_action["alerts.silence"]
    assert silence["who"] == "t-operate" and silence["via"] == "token"
    assert silence["status"] == 201 and silence["target"] == "CeleryWorkerDown"
    assert "hunter2" not in json.dumps(entries) and "[redacted]" in silence["params"]
    assert "[i]" in silence["params"]
    assert by_action["breaker.open"]["result"] == "forced_open"
    refused = by_action["alerts.unsilence"]
    assert refused["status"] == 404 and refused["result"].startswith("not_found")
    assert [e["action"] for e in mine] == ["alerts.unsilence", "breaker.open", "alerts.silence"]
    assert all(e["at"].endswith("Z") for e in entries)


def test_security_headers_and_json_errors(server):
    """Strict CSP, nosniff, no-store on every API answer; unknown routes, wrong methods and bad
    parameters answer JSON errors; the docs page runs no inline script."""
    srv, t = server.srv, server.tokens
    with srv.client(t["read"]) as c:
        for path in ("/api/v1/tasks", "/api/v1/nope", "/api/openapi.json"):
            r = c.get(path)
            assert "script-src 'self'" in r.headers["content-security-policy"]
            assert "unsafe-inline" not in r.headers["content-security-policy"]
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["cache-control"] == "no-store"
        cases = [c.get("/api/v1/nope"), c.put("/api/v1/tasks"),
                 c.get("/api/v1/tasks", params={"limit": "9999"}),
                 c.get("/api/v1/series", params={"window": "99y"}),
                 c.get("/api/v1/tasks", params={"since": "yesterday"}),
                 c.get("/api/v1/tasks", params={"cursor": "not-a-cursor"})]
        assert [r.status_code for r in cases] == [404, 405, 422, 422, 422, 422]
        for r in cases:
            body = r.json()
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
            assert "Traceback" not in r.text
        huge = c.post("/api/v1/tasks", content=b"[" + b"1," * 600_000 + b"1]",
                      headers={"Content-Type": "application/json"})
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"

        def chunks():
            for _ in range(40):
                yield b" " * 65_536

        streamed = c.post("/api/v1/tasks", content=chunks(),
                          headers={"Content-Type": "application/json"})
        assert streamed.status_code in (400, 413), streamed.text
        assert "error" in streamed.json()
        page = c.get("/api/docs")
        assert page.status_code == 200 and "<script src=" in page.text
        assert page.text.count("<script") == page.text.count("<script src=")
        assert c.get("/api/docs/docs.js").headers["content-type"].startswith("text/javascript")


def test_token_commands(settings):
    """`warden token create` prints the token once; `list` never shows it; `revoke` ends it."""
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}

    def warden(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "warden"), "token", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=False)

    created = warden("create", "--scope", "operate", "--name", "ci-bot")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("wdn_") and len(secret) > 40
    assert "shown only now" in created.stderr
    listed = warden("list", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["scope"]) for r in rows] == [("ci-bot", "operate")]
    assert secret not in listed.stdout
    assert warden("create", "--scope", "read", "--name", "ci-bot").returncode == 2  # taken
    assert warden("create", "--scope", "root", "--name", "x").returncode == 2
    assert warden("create", "--scope", "read", "--name", "<script>").returncode == 2
    assert warden("revoke", "ci-bot").returncode == 0
    missing = warden("revoke", "ci-bot")
    assert missing.returncode == 1 and "no token named" in missing.stderr
    assert json.loads(warden("list", "--json").stdout) == []


def test_listening_off_loopback_needs_a_token(settings, redis_client):
    """`warden serve --host 0.0.0.0` exits 2 with the reason while no token exists; with one
    the check passes (not bound here: tests listen on loopback only)."""
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    refused = subprocess.run([str(BIN / "warden"), "serve", "--host", "0.0.0.0", "--port", "1"],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
                             check=False)
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0" in refused.stderr and "Traceback" not in refused.stderr
    with pytest.raises(ServeRefused):
        check_bind(settings, "192.0.2.10")
    check_bind(settings, "::1")  # loopback: never refused
    TokenStore(redis_client, Keys(settings.key_prefix)).create("ops", "admin")
    check_bind(settings, "192.0.2.10")


def test_a_store_that_does_not_answer_is_503_json(settings):
    """Redis down: health says why (503), every other call is 503 store_unavailable — never a
    500 or a traceback."""
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "WARDEN_API_OPEN_READS": "true"}
    with ApiServer(settings, app=None, extra_env=env) as srv, srv.client("wdn_x") as c:
        anonymous = srv.client()
        try:
            health = anonymous.get("/api/v1/monitoring/health")
            assert health.status_code == 503
            assert health.json()["store"] is False
            assert any("store does not answer" in r for r in health.json()["reasons"])
            tasks = anonymous.get("/api/v1/tasks")
            assert tasks.status_code == 503
            assert tasks.json()["error"]["code"] == "store_unavailable"
        finally:
            anonymous.close()
        assert c.get("/api/v1/tasks").status_code == 503  # the token cannot be checked
        assert "Traceback" not in srv.log()


def test_several_server_processes_answer_alike(settings, redis_client):
    """`celery -A tests.apps.api warden serve --workers 2`: two uvicorn processes, each built
    from the environment and the -A app (WARDEN_CELERY_APP), answer with the same data."""
    token, _ = TokenStore(redis_client, Keys(settings.key_prefix)).create("r", "operate")
    with ApiServer(settings, extra_args=("--workers", "2")) as srv:
        no_keepalive = httpx.Limits(max_keepalive_connections=0)  # a connection per request
        with srv.client(token, limits=no_keepalive) as c:
            answers = {c.get("/api/v1/session").json()["name"] for _ in range(20)}
            # api.add is known only through the -A app (no worker ran it): both processes
            # loaded it.
            submitted = [c.post("/api/v1/tasks", json={"name": "api.add", "args": [1, 2]}
                                ).status_code for _ in range(20)]
        log = srv.log()
    assert answers == {"r"} and set(submitted) == {201}
    assert log.count("Started server process") == 2, log
    assert "Traceback" not in log


def test_admin_manages_tokens_through_the_api(server):
    """POST /tokens answers the secret once; it works at once; list never shows secrets;
    DELETE revokes; operate may not; every step is audited."""
    srv, t = server.srv, server.tokens
    with srv.client(t["operate"]) as c:
        assert c.get("/api/v1/tokens").status_code == 403
        assert c.post("/api/v1/tokens", json={"name": "x", "scope": "admin"}).status_code == 403
    with srv.client(t["admin"]) as c:
        made = c.post("/api/v1/tokens", json={"name": "grafana", "scope": "read"})
        assert made.status_code == 201, made.text
        secret = made.json()["token"]
        assert status(srv, secret, READ) == 200 and status(srv, secret, OPERATE) == 403
        listed = c.get("/api/v1/tokens")
        assert "grafana" in [i["name"] for i in listed.json()["items"]]
        assert secret not in listed.text and "token" not in listed.json()["items"][0]
        assert c.post("/api/v1/tokens", json={"name": "grafana", "scope": "read"}
                      ).status_code == 409
        assert c.post("/api/v1/tokens", json={"name": "<script>", "scope": "read"}
                      ).status_code == 422
        assert c.delete("/api/v1/tokens/grafana").json()["name"] == "grafana"
        assert status(srv, secret, READ) == 401  # revoked here: at once, though just cached
        assert c.delete("/api/v1/tokens/grafana").status_code == 404
        actions = [e["action"] for e in c.get("/api/v1/audit").json()["items"]]
        audit_text = c.get("/api/v1/audit").text
    assert status(srv, secret, READ) == 401
    assert actions.count("token.create") == 2 and actions.count("token.revoke") == 2
    assert secret not in audit_text

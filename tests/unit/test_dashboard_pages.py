"""The dashboard's page shells: every page answers with a strict CSP and no inline script or
style, echoes query values escaped, and names only static files that exist; the modules a page
preloads are exactly the modules its scripts import (so a new import cannot bring the import
waterfall back unnoticed)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from celery_warden.dashboard.pages import NAV, PAGE_IMPORTS, SHARED_MODULES, STATIC_DIR
from celery_warden.serve.app import create_app
from celery_warden.settings import load_settings

PAGES = [path for path, _, _ in NAV] + ["/login", "/tasks/abc", "/task-types/shop.charge",
                                         "/dlq/e1", "/errors/ff00"]
JS = STATIC_DIR / "js"
IMPORT = re.compile(r"""(?:^|\n)import[^'"]*['"](\.{1,2}/[^'"]+)['"]""")


class Client:
    """Requests straight into the ASGI app, without its lifespan (no Redis, no broker: a
    shell needs neither)."""

    def __init__(self) -> None:
        self.app = create_app(load_settings())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://dash") as c:
                return await c.get(path, **kwargs)

        return asyncio.run(call())


@pytest.fixture(scope="module")
def client() -> Client:
    return Client()


@pytest.mark.parametrize("path", PAGES)
def test_page_shell_is_html_with_a_strict_csp_and_no_inline_code(client: Client,
                                                                  path: str) -> None:
    """A shell is HTML under the CSP, with scripts and styles only from files."""
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp
    html = r.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
    for ref in re.findall(r'(?:src|href)="(/static/[^"?]+)', html):
        assert (STATIC_DIR / ref.removeprefix("/static/")).is_file(), ref


def test_query_values_are_escaped_in_the_filter_form(client: Client) -> None:
    """A filter value is echoed into its field as text: markup in it stays inert."""
    r = client.get("/tasks", params={"name": '"><script>alert(1)</script>', "q": "[i]"})
    assert "<script>alert(1)" not in r.text
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert 'value="[i]"' in r.text


def _imports(module: Path) -> set[str]:
    found = set()
    for rel in IMPORT.findall(module.read_text()):
        found.add((module.parent / rel).resolve().relative_to(JS.resolve()).as_posix())
    return found


def _graph(*roots: str) -> set[str]:
    seen: set[str] = set()
    todo = set().union(*(_imports(JS / r) for r in roots))
    while todo:
        seen |= todo
        todo = set().union(*(_imports(JS / m) for m in todo)) - seen
    return seen


def test_preloaded_modules_are_what_the_scripts_import() -> None:
    """Everything main.js and a page module import (transitively) is preloaded by that page's
    shell, and nothing preloaded goes unused by every page."""
    shared = set(SHARED_MODULES)
    assert _graph("main.js") <= shared
    used = _graph("main.js")
    for page in sorted((JS / "pages").glob("*.js")):
        needed = _graph(f"pages/{page.name}") - {f"pages/{page.name}"}
        assert needed <= shared | set(PAGE_IMPORTS.get(page.stem, ())), page.name
        used |= needed
    assert shared <= used


def test_static_files_are_served_and_revalidated(client: Client) -> None:
    """Static files answer with their type and `no-cache` (revalidated: an upgrade is never
    half-cached); the vendored library's licence ships with it."""
    r = client.get("/static/js/main.js")
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]
    assert r.headers["cache-control"] == "no-cache"
    assert client.get("/static/vendor/uplot/LICENSE").status_code == 200
    assert client.get("/static/../pages.py").status_code == 404

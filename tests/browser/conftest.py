"""Browser tests: Playwright driving Debian's Chromium against a real ``warden serve``.

Playwright's own browser download is not available on these machines, so the session installs
Debian's ``chromium`` package when it is missing (``apt-get install -y chromium``, as root) and
points pytest-playwright at the package's real binary through ``browser_type_launch_args``
(the ``/usr/bin/chromium`` shell wrapper would only add a warning). Without it the tests skip
with the reason, and fail when ``CI`` is set.

A module's stack (:class:`Stack`) is one server, one worker and the tokens, on its own prefixes;
each page a test visits is watched for console errors and CSP violations (:class:`Watch`), and
every test saves screenshots under ``.artifacts/browser/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Browser, sync_playwright

from celery_warden.settings import WardenSettings
from tests.conftest import make_settings
from tests.support import ROOT, WorkerProcess, client_app, delete_prefix, settings_env, wait_for

CHROMIUM = Path(os.environ.get("WARDEN_CHROMIUM", "/usr/lib/chromium/chromium"))
ARTIFACTS = Path(os.environ.get("WARDEN_BROWSER_ARTIFACTS", ROOT / ".artifacts" / "browser"))
APP = "tests.apps.dashboard"


def _install_chromium() -> str | None:
    """Install Debian's chromium; the reason it could not be, or None when it is there."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None:
        return "Debian's chromium is missing and this machine has no apt-get"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "Debian's chromium is missing and installing it needs root (apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # The lock timeout: another test process may be installing a package at the same time.
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "chromium"]
    for cmd in (install, ["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"], install):
        if CHROMIUM.exists():
            break
        subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=False)
    return None if CHROMIUM.exists() else f"apt-get could not install chromium ({CHROMIUM} missing)"


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    reason = _install_chromium()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any],
                             chromium_executable: str) -> dict[str, Any]:
    """pytest-playwright's launch arguments (``--headed``, ``--slowmo``, ...), with Debian's
    Chromium as the browser."""
    return {**browser_type_launch_args, "executable_path": chromium_executable}


@pytest.fixture(scope="module")
def browser(browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    """One Chromium per test module, and Playwright stopped after it.

    pytest-playwright's own ``browser`` lives for the whole session, and with it the event loop
    of Playwright's sync API, which stays running in the main thread: every later test calling
    ``asyncio.run`` (the API tests, the page-shell tests) would fail. This one ends with the
    module."""
    with sync_playwright() as pw:
        launched = pw.chromium.launch(**browser_type_launch_args)
        try:
            yield launched
        finally:
            launched.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``celery -A tests.apps.dashboard warden serve`` as a subprocess on a free port."""

    def __init__(self, settings: WardenSettings, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"warden-serve-{self.port}.log"
        env = {**os.environ, **settings_env(settings), **(extra_env or {}),
               "PYTHONPATH": str(ROOT)}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", APP, "warden", "serve",
             "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for(self._answers, 60, 0.2, f"warden serve on {self.url}")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"warden serve exited:\n{self.log()[-4000:]}")
        try:
            return httpx.get(f"{self.url}/login", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


@dataclass
class Stack:
    """What a browser test runs against: settings, a server, a worker, a publisher, tokens."""

    settings: WardenSettings
    server: Server
    worker: WorkerProcess
    publisher: Any
    tokens: dict[str, str] = field(default_factory=dict)
    failing_id: str = ""

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, path: str, scope: str = "admin", **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"}
        r = httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=10)
        r.raise_for_status()
        return r.json()

    def task(self, task_id: str) -> dict[str, Any]:
        """A task's record, or {} while it is not stored yet (its first flush is pending)."""
        r = httpx.get(f"{self.url}/api/v1/tasks/{task_id}", timeout=10,
                      headers={"Authorization": f"Bearer {self.tokens['admin']}"})
        if r.status_code == 404:
            return {}
        r.raise_for_status()
        return dict(r.json())

    def send(self, name: str, *args: Any, **kwargs: Any) -> str:
        return str(self.publisher.send_task(name, args=args, kwargs=kwargs).id)


def make_tokens(settings: WardenSettings) -> dict[str, str]:
    from celery_warden.keys import Keys
    from celery_warden.serve.tokens import Scope, TokenStore

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        store = TokenStore(client, Keys(settings.key_prefix))
        return {scope.value: store.create(f"browser-{scope.value}", scope)[0]
                for scope in (Scope.READ, Scope.OPERATE, Scope.ADMIN)}
    finally:
        client.close()


@pytest.fixture(scope="module")
def stack_factory(redis_url: str) -> Iterator[Callable[..., Stack]]:
    """Starts stacks (each on its own prefixes) and stops them and deletes their keys after
    the module."""
    stacks: list[Stack] = []

    def make(extra_env: dict[str, str] | None = None, worker: bool = True) -> Stack:
        settings = make_settings(redis_url, WARDEN_METRICS_INTERVAL=60)
        tokens = make_tokens(settings)
        proc = WorkerProcess(settings, app=APP, concurrency=2)
        if worker:
            proc.start()
        server = Server(settings, extra_env)
        stack = Stack(settings, server, proc, client_app(settings, "browser-publisher"), tokens)
        stacks.append(stack)
        return stack

    yield make
    client = redis.Redis.from_url(redis_url)
    try:
        for stack in stacks:
            stack.server.stop()
            if stack.worker.process is not None:
                stack.worker.stop()
            stack.publisher.close()
            delete_prefix(client, f"{stack.settings.key_prefix}:",
                          stack.settings.broker_key_prefix)
    finally:
        client.close()


class Watch:
    """Console errors, uncaught exceptions and CSP violations of one page."""

    INIT = ("window.__csp = [];"
            "document.addEventListener('securitypolicyviolation', e => "
            "window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.add_init_script(self.INIT)
        page.on("console", lambda m: self.errors.append(f"console {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror {e}"))

    def csp(self) -> list[str]:
        return list(self.page.evaluate("window.__csp || []"))

    def assert_clean(self, where: str) -> None:
        problems = self.errors + [f"csp {v}" for v in self.csp()]
        assert not problems, f"{where}: {problems}"


def login(page: Any, base: str, token: str) -> None:
    """Sign in through the login form, as a person would."""
    page.goto(f"{base}/login")
    page.fill("#token", token)
    page.click("#login-form button")
    page.wait_for_url(f"{base}/")


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def loaded(page: Any, timeout: float = 10_000) -> None:
    """The page module finished its first render (``#content`` no longer busy)."""
    page.wait_for_selector("#content:not([aria-busy])", timeout=timeout)


def now() -> float:
    return time.time()

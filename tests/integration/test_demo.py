"""`warden demo` end to end: real Redis, a real worker and beat, a real workload, clean exit.

While the demo runs, the test records every process below it (worker, beat, the worker's pool,
the embedded redis-server) with psutil; after the demo exits none of them may still run.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import redis

import celery_warden.embedded as embedded
from celery_warden import CeleryMonitor
from celery_warden.embedded import EmbeddedRedis, answers, free_port, resolve_redis
from celery_warden.settings import WardenSettings
from tests.support import ROOT, settings_env

WARDEN = str(Path(sys.executable).parent / "warden")
SUMMARY = re.compile(
    r"throughput (?P<tput>\d+\.\d) tasks/s .*workers (?P<online>\d+) online, \d+ offline"
)


def demo_env(settings: WardenSettings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **settings_env(settings), **extra}


class Watched:
    """A demo subprocess whose output is read as it comes and whose descendants are recorded
    while it runs."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.seen: dict[int, psutil.Process] = {}
        self.cmdlines: dict[int, str] = {}
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((self.proc.stdout, self.out),
                                              (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def record(self) -> None:
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                if child.pid not in self.seen:
                    self.seen[child.pid] = child
                    with contextlib.suppress(psutil.Error):
                        self.cmdlines[child.pid] = " ".join(child.cmdline())
        except psutil.Error:
            pass

    def watch_until_exit(self, timeout: float, on_tick=None) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "the demo did not exit in time"
            self.record()
            if on_tick is not None:
                on_tick("".join(self.out))
            time.sleep(0.2)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return "".join(self.out), "".join(self.err)

    def leftovers(self) -> list[str]:
        alive = []
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            except psutil.Error:
                continue
        return alive

    def kill_leftovers(self) -> None:
        for proc in self.seen.values():
            try:
                proc.kill()
            except psutil.Error:
                continue


def test_demo_runs_a_fleet_and_stops_everything(settings, tmp_path):
    """20 s of demo on the session's Redis with this test's prefixes: exit 0, live summaries
    with throughput and an online worker, tasks recorded, no process left behind."""
    data_dir = tmp_path / "warden-data"
    demo = Watched([WARDEN, "demo", "--duration", "20", "--interval", "2",
                    "--data-dir", str(data_dir)], demo_env(settings))
    health: list[int] = []

    def ask_the_api(out: str) -> None:
        """Once the demo printed its API URL and a worker is online: GET health, no token."""
        found = re.search(r"API: (http://127\.0\.0\.1:\d+)/", out)
        online = any(int(m["online"]) >= 1 for m in SUMMARY.finditer(out))
        if found and online and 200 not in health:
            with contextlib.suppress(httpx.HTTPError):
                health.append(httpx.get(f"{found.group(1)}/api/v1/monitoring/health",
                                        timeout=2).status_code)

    try:
        out, err = demo.watch_until_exit(60, ask_the_api)
        leftovers = demo.leftovers()
    finally:
        demo.kill_leftovers()
    assert demo.proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in out + err
    assert f"Redis: {settings.redis_url} (from REDIS_URL)" in out
    summaries = list(SUMMARY.finditer(out))
    assert len(summaries) >= 5, out
    assert any(float(m["tput"]) > 0 for m in summaries), out
    assert any(int(m["online"]) >= 1 for m in summaries), out
    assert "read error" not in out, out
    api = re.search(r"API: (http://127\.0\.0\.1:\d+)/api/docs .*reads open", out)
    assert api is not None, out  # the server's URL, and that reads are open on loopback
    assert 200 in health, health  # the demo's server answered, without a token
    assert "server (pid" in out and (data_dir / "logs" / "server.log").stat().st_size > 0
    assert "final summary:" in out and "worker (pid" in out and "stopped (exit code 0)" in out
    finished = int(re.search(r"finished (\d+) \(success", out).group(1))  # type: ignore[union-attr]
    assert finished > 50, out

    stats = CeleryMonitor(settings).get_performance_stats(None, "5m")
    assert stats["count"] > 0 and stats["count"] >= finished
    names = set(CeleryMonitor(settings).task_names())
    assert {"example.add", "example.flaky", "example.process_order"} <= names

    assert len(demo.seen) >= 4, "worker, beat and at least two pool processes were seen"
    assert leftovers == [], "processes started by the demo are still running"
    assert (data_dir / "logs" / "worker.log").stat().st_size > 0
    assert (data_dir / "logs" / "beat.log").stat().st_size > 0
    assert list(data_dir.glob("celerybeat-schedule*"))


def test_demo_on_embedded_redis_stops_in_order_on_ctrl_c(settings, tmp_path):
    """The fresh-machine path: nothing at REDIS_URL nor at the default address (the default is
    pointed at a closed port, the only thing patched), so the demo starts its embedded
    redis-server under the data dir. A Ctrl-C (SIGINT to the demo's process group, as a
    terminal sends it) stops workload, worker and beat, then Redis, and exits 0."""
    data_dir = tmp_path / "warden-data"
    dead = f"redis://127.0.0.1:{free_port()}/0"
    script = (
        "import sys, celery_warden.embedded as e; "
        f"e.DEFAULT_REDIS_URL = {dead!r}; "
        "from celery_warden.cli.main import main; "
        f"sys.argv = ['warden', 'demo', '--interval', '1', '--data-dir', {str(data_dir)!r}]; "
        "main()"
    )
    env = demo_env(settings)
    env.pop("REDIS_URL")
    demo = Watched([sys.executable, "-c", script], env)
    state = {"sent": False, "t0": time.monotonic()}

    def interrupt_once_running(out: str) -> None:
        """Ctrl-C after two summaries showed an online worker (or after 30 s regardless)."""
        online = [m for m in SUMMARY.finditer(out) if int(m["online"]) >= 1]
        if state["sent"] or (len(online) < 2 and time.monotonic() - state["t0"] < 30):
            return
        os.killpg(demo.proc.pid, signal.SIGINT)
        state["sent"] = True

    try:
        out, err = demo.watch_until_exit(60, interrupt_once_running)
        leftovers = demo.leftovers()
    finally:
        demo.kill_leftovers()
    assert state["sent"]
    assert demo.proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    assert "Redis: embedded redis-server" in out, out
    assert any(int(m["online"]) >= 1 for m in SUMMARY.finditer(out)), out
    final = out.split("final summary:", 1)[1]
    assert "read error" not in final, "Redis outlived the worker and answered the final read"
    assert "embedded Redis stopped" in out
    assert leftovers == [], "processes started by the demo are still running"
    assert any("redis-server" in cmd for cmd in demo.cmdlines.values()), demo.cmdlines
    assert (data_dir / "warden.aof").exists() or list(data_dir.glob("appendonlydir*"))


def test_resolve_redis_prefers_redis_url(redis_url):
    """REDIS_URL wins and nothing is started."""
    assert resolve_redis(env={"REDIS_URL": redis_url}) == (redis_url, None)


def test_resolve_redis_starts_embedded_server_when_nothing_answers(tmp_path, monkeypatch):
    """No REDIS_URL and nothing on the default address (patched to a closed port): a real
    redis-server starts under the data dir, in its own session (a terminal's Ctrl-C reaches
    only its owner, which stops it in order)."""
    monkeypatch.setattr(embedded, "DEFAULT_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    url, server = resolve_redis(env={}, data_dir=tmp_path)
    try:
        assert isinstance(server, EmbeddedRedis) and server.pid is not None
        assert url == server.url and answers(url)
        assert os.getsid(server.pid) != os.getsid(0)
        client = redis.Redis.from_url(url)
        client.set("probe", "1")
        client.close()
    finally:
        assert server is not None
        server.stop()
    assert not answers(url)
    assert (tmp_path / "warden.aof").exists() or list(tmp_path.glob("appendonlydir*"))

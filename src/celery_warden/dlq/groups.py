"""Error aggregation: failures grouped by fingerprint, so one incident is one row.

Fingerprint = exception type + message with variable parts normalised (UUIDs, hex, numbers)
+ the innermost frame in the task's own code (file and function, no line number, so a group
survives unrelated edits). 10,000 identical failures are one group with ``count = 10000``.

Groups are aggregated in each process's recorder buffer and written by the flusher (one hash
update per group per flush, not per failure): count, first/last seen, task names affected (with
counts), a sample traceback and message, recent task ids, and per-minute counts for windows.
They are read by :mod:`celery_warden.read.errors`.
"""

from __future__ import annotations

import hashlib
import os
import re
import sysconfig
import traceback as tb_module
from types import TracebackType

from celery_warden.redaction import Redactor

#: Longest sample traceback kept per group.
MAX_TRACEBACK = 8_000
#: Longest sample message kept per group.
MAX_SAMPLE = 500
_DEFAULT_REDACTOR = Redactor()

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
_OWN_PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


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
    # backslashreplace: a lone surrogate in a message (undecodable bytes) must not fail it
    raw = f"{exc_type}|{normalise_message(message)}|{frame}".encode("utf-8", "backslashreplace")
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:16]


def describe(exc: BaseException, tb: TracebackType | None = None,
             traceback_text: str | None = None,
             redactor: Redactor | None = None) -> dict[str, str]:
    """Fingerprint and sample data of one exception (called only when a task fails).

    Every text is masked (``redactor``, default keys without one) before it is cut, and the
    fingerprint is computed from the masked message: a secret that differs per call
    (``token=...``) must not split one cause into a group per secret, nor be hashed into an id
    that anyone with ``read`` can see (a short hash of a low-entropy secret can be searched).
    """
    r = redactor or _DEFAULT_REDACTOR
    tb = tb if tb is not None else exc.__traceback__
    exc_type = type(exc).__name__
    message = str(exc)
    frame = innermost_own_frame(tb)
    if traceback_text is None:
        traceback_text = "".join(tb_module.format_exception(type(exc), exc, tb))
    sample = r.failure_text(message, MAX_SAMPLE) or ""
    return {
        "fingerprint": fingerprint(exc_type, sample, frame),
        "exc_type": exc_type,
        "message": normalise_message(sample),
        "sample_message": sample,
        "frame": frame,
        "traceback": r.failure_text(traceback_text, MAX_TRACEBACK, keep="tail") or "",
    }


__all__ = ["MAX_TRACEBACK", "describe", "fingerprint", "innermost_own_frame", "normalise_message"]

"""Checks and their report: one line per check, a summary, an exit code.

A check is a function that returns a one-line detail or raises :class:`CheckFailed` (or any
exception: an unexpected error is a failure too, reported with its type, never a traceback
unless asked). Untrusted text (task errors, hostnames) is printed as it is — plain text, no
markup.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import IO

from celery_warden.redaction import Redactor


class CheckFailed(Exception):
    """A check's expectation did not hold; the message says what was seen."""


class CheckSkipped(Exception):
    """A check does not apply here (e.g. needs --submit); the message says why."""


@dataclass(slots=True)
class Outcome:
    name: str
    status: str  # pass | fail | skip
    detail: str
    seconds: float


Check = tuple[str, Callable[[], str]]


def run_checks(checks: list[Check], out: IO[str] | None = None, as_json: bool = False,
               redactor: Redactor | None = None) -> list[Outcome]:
    """Run every check in order, print a line for each as it finishes, then a summary."""
    out = out or sys.stdout
    redactor = redactor or Redactor()
    outcomes = []
    for name, fn in checks:
        started = time.monotonic()
        try:
            status, detail = "pass", fn()
        except CheckSkipped as exc:
            status, detail = "skip", str(exc)
        except CheckFailed as exc:
            status, detail = "fail", str(exc)
        except Exception as exc:  # a check must never crash the report
            status, detail = "fail", f"{type(exc).__name__}: {exc}"
        detail = redactor.redact_text(" ".join(detail.split()))[:500]
        outcome = Outcome(name, status, detail, round(time.monotonic() - started, 3))
        outcomes.append(outcome)
        if not as_json:
            out.write(f"{status.upper():4}  {name:<28} {outcome.seconds:6.2f}s  {detail}\n")
            out.flush()
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("pass", "fail", "skip")}
    if as_json:
        out.write(json.dumps({"checks": [asdict(o) for o in outcomes], "summary": counts},
                             indent=2) + "\n")
    else:
        verdict = "FAILED" if counts["fail"] else "OK"
        out.write(f"{verdict}: {counts['pass']} passed, {counts['fail']} failed, "
                  f"{counts['skip']} skipped\n")
    return outcomes


def exit_code(outcomes: list[Outcome]) -> int:
    return 1 if any(o.status == "fail" for o in outcomes) else 0


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


__all__ = ["Check", "CheckFailed", "CheckSkipped", "Outcome", "exit_code", "expect",
           "run_checks"]

"""Warden's success counters against the truth, per task name, every difference explained by id.

The per-id reconciliation (:mod:`tests.chaos.reconcile`) checks each task's record; this checks
the numbers a dashboard and Prometheus show: the cumulative ``succeeded`` total per task name
(``read_totals``) against the successes the truth saw. A difference is a miscount unless an id
explains it: at-least-once delivery runs a body to its end twice when the process that ran it
first was killed after the body (its outcome spooled, so counted) and before the broker got the
acknowledgement — the truth's ``done`` list then holds that id twice. Fewer successes counted
than the truth saw is never explained.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import redis

from celery_warden.keys import Keys
from celery_warden.read.totals import read_totals


@dataclass
class CountCheck:
    #: (task name, truth successes, Warden's succeeded total, successes explained by a re-run)
    rows: list[tuple[str, int, int, int]] = field(default_factory=list)
    explained: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)


def check(store: redis.Redis, keys: Keys, done: list[str], successes: dict[str, str],
          killed_after: dict[str, str], finished: list[str] | None = None) -> CountCheck:
    """``done``: the truth's done list (with repeats); ``successes``: every id the truth says
    succeeded → its task name; ``killed_after``: id → the fault that killed an earlier run;
    ``finished``: successful deliveries of idempotent tasks, duplicates included."""
    got, _ = read_totals(store, keys)
    warden: Counter[str] = Counter()
    for c in got:
        if c.event == "succeeded":
            warden[c.name] += c.value
    times = Counter(done)
    for tid, n in Counter(finished or []).items():  # a duplicate's deliveries count too
        times[tid] = max(times[tid], n)
    truth: Counter[str] = Counter(successes.values())
    out = CountCheck()
    for name in sorted(set(truth) | set(warden)):
        reruns = {tid: times[tid] - 1 for tid, n in successes.items()
                  if n == name and times[tid] > 1}
        extra = warden[name] - truth[name]
        allowed = sum(reruns.values())
        out.rows.append((name, truth[name], warden[name], min(max(extra, 0), allowed)))
        if extra < 0 or extra > allowed:
            out.unexplained.append(f"{name}: truth {truth[name]}, Warden {warden[name]} "
                                   f"(re-runs that may count twice: {allowed})")
        elif extra > 0:
            again = "delivered again after its first delivery finished"
            out.explained += [f"{tid} ({name}) ran to its end {k + 1} times: "
                              f"{killed_after.get(tid, again)}"
                              for tid, k in sorted(reruns.items())]
    return out


__all__ = ["CountCheck", "check"]

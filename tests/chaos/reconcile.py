"""Reconcile what the driver submitted, what really ran (the truth) and what Warden says.

Every submitted id must end in exactly one bucket — succeeded, dead-lettered (with a reason),
revoked — judged from the ground truth and the DLQ, never from Warden's task record alone; then
Warden's record is compared with that outcome id by id (``miscounted``), and every second start
of one attempt is explained by a fault the run injected (``re-executions``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

from celery_warden.keys import Keys
from celery_warden.settings import WardenSettings
from tests.chaos import counts, truth
from tests.chaos.fleet import FaultLog
from tests.chaos.workload import Submission

FINAL = {"SUCCESS", "FAILURE", "REVOKED", "REJECTED"}
#: A task id the DLQ processor published (``<entry id>-r<n>``, dlq/processor.py); a retrying
#: task's own id (``c-retrying-...``) also contains "-r".
REQUEUED = re.compile(r"-r\d+$")


@dataclass
class Report:
    broker: str
    faults: dict[str, int]
    submitted: int = 0
    succeeded: int = 0
    requeued_then_succeeded: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    revoked: int = 0
    lost: list[str] = field(default_factory=list)
    lost_causes: Counter[str] = field(default_factory=Counter)
    miscounted: list[str] = field(default_factory=list)
    miscount_causes: Counter[str] = field(default_factory=Counter)
    reexecutions: Counter[str] = field(default_factory=Counter)
    transit_causes: Counter[str] = field(default_factory=Counter)
    expired_requeued: int = 0
    in_transit: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    publish_retries: int = 0
    counts: counts.CountCheck = field(default_factory=counts.CountCheck)

    @property
    def ok(self) -> bool:
        return (not self.lost and not self.miscounted and not self.counts.unexplained
                and not self.reexecutions.get("unexplained")
                and not self.transit_causes.get("unexplained"))

    def rows(self) -> list[tuple[str, str]]:
        rows = [(f"fault: {k}", str(v)) for k, v in sorted(self.faults.items())]
        rows += [("submitted", str(self.submitted)), ("succeeded", str(self.succeeded)),
                 ("  of which after a DLQ requeue", str(self.requeued_then_succeeded))]
        rows += [(f"dead-lettered: {r}", str(n)) for r, n in sorted(self.dead_lettered.items())]
        rows += [(f"  lost in transit: {k}", str(v)) for k, v in sorted(
            self.transit_causes.items())]
        if self.expired_requeued:
            rows += [("expired: dead-lettered by RabbitMQ, requeued by the DLQ phase, "
                      "succeeded", str(self.expired_requeued))]
        rows += [("revoked", str(self.revoked)), ("lost (must be 0)", str(len(self.lost)))]
        rows += [(f"  cause: {k}", str(v)) for k, v in sorted(self.lost_causes.items())]
        rows += [("miscounted (must be 0)", str(len(self.miscounted)))]
        rows += [(f"  cause: {k}", str(v)) for k, v in sorted(self.miscount_causes.items())]
        truth_n = sum(r[1] for r in self.counts.rows)
        warden_n = sum(r[2] for r in self.counts.rows)
        rows += [("success counters: truth", str(truth_n)), ("success counters: Warden",
                                                              str(warden_n)),
                 ("  counted twice, explained by id (re-runs)", str(len(self.counts.explained))),
                 ("  names off, unexplained (must be 0)", str(len(self.counts.unexplained)))]
        rows += [
                 ("re-executions", str(sum(self.reexecutions.values())))]
        rows += [(f"  explained: {k}", str(v)) for k, v in sorted(self.reexecutions.items())]
        rows += [("publish retries (client)", str(self.publish_retries))]
        return rows

    def table(self, limit: int | None = 30) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        lines = [f"chaos run, broker={self.broker}", "-" * (width + 12)]
        lines += [f"{k:<{width}}  {v:>8}" for k, v in rows]
        for label, ids in (("LOST", self.lost), ("MISCOUNTED", self.miscounted),
                           ("COUNTER OFF", self.counts.unexplained),
                           ("COUNTED TWICE", self.counts.explained),
                           ("LOST IN TRANSIT (filed by Warden)", self.in_transit),
                           ("UNEXPECTED OUTCOME", self.unexpected)):
            for line in ids[:limit]:
                lines.append(f"{label}: {line}")
        return "\n".join(lines)


def records(client: redis.Redis, keys: Keys, ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        pipe = client.pipeline(transaction=False)
        for tid in chunk:
            pipe.hgetall(keys.task(tid))
        for tid, raw in zip(chunk, pipe.execute(), strict=True):
            out[tid] = raw
    return out


def entries(client: redis.Redis, keys: Keys, ids: list[str]) -> dict[str, dict[str, str]]:
    pipe = client.pipeline(transaction=False)
    for eid in ids:
        pipe.hgetall(keys.dlq_entry(eid))
    return {eid: raw for eid, raw in zip(ids, pipe.execute(), strict=True) if raw}


def settled(client: redis.Redis, keys: Keys, sent: list[Submission]) -> int:
    """How many submitted ids have no final state in Warden yet (the driver waits for 0)."""
    recs = records(client, keys, [s.task_id for s in sent])
    return sum(1 for s in sent if recs[s.task_id].get("state") not in FINAL
               and not recs[s.task_id].get("dlq_entry"))


def reconcile(broker: str, settings: WardenSettings, sent: list[Submission], log: FaultLog,
              truth_client: redis.Redis, processor_killed_at: float | None) -> Report:
    store = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    keys = Keys(settings.key_prefix)
    report = Report(broker, dict(log.counts), submitted=len(sent))
    done_list = [str(t) for t in truth_client.lrange(truth.DONE, 0, -1)]
    done = set(done_list)
    successes: dict[str, str] = {}  # every id the truth saw succeed -> its task name
    starts: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for line in truth_client.lrange(truth.STARTED, 0, -1):
        tid, pid, retries, at = line.split()
        starts[(tid, retries)].append((int(pid), float(at)))
    for (tid, _r), runs in starts.items():  # a poison pill kills the child that runs it
        if tid.startswith("p-kills"):
            for pid, _at in runs:
                log.killed.setdefault(pid, "the poison pill")
    recs = records(store, keys, [s.task_id for s in sent])
    dlq_ids = sorted({r["dlq_entry"] for r in recs.values() if r.get("dlq_entry")}
                     | {s.task_id for s in sent})
    dlq = entries(store, keys, dlq_ids)
    requeued_ids = [t for e in dlq.values() for t in _json_list(e.get("requeued_task_ids"))]
    recs.update(records(store, keys, requeued_ids))
    idem_ran: dict[str, set[str]] = defaultdict(set)
    for s in sent:
        if s.kind == "idempotent" and s.task_id in done:
            idem_ran[str(s.args[1])].add(s.task_id)
    for s in sent:
        rec = recs.get(s.task_id, {})
        entry = dlq.get(rec.get("dlq_entry") or s.task_id) or dlq.get(s.task_id)
        ran = s.task_id in done or (s.kind == "idempotent" and bool(idem_ran[str(s.args[1])]))
        if entry is not None and entry.get("status") == "requeued":
            last = _json_list(entry.get("requeued_task_ids"))[-1]
            if last in done:
                outcome = "SUCCESS"
                successes.update({t: s.name for t in _json_list(entry.get("requeued_task_ids"))
                                  if t in done})
                report.requeued_then_succeeded += 1
                warden_ok = recs.get(last, {}).get("state") == "SUCCESS"
            else:
                outcome, warden_ok = "LOST", False
        elif ran:
            outcome = "SUCCESS"
            successes[s.task_id] = s.name  # an idempotent duplicate succeeds without its body
            warden_ok = rec.get("state") == "SUCCESS"
        elif entry is not None:
            outcome = f"DLQ:{entry.get('reason')}"
            warden_ok = (s.kind == "poison" or rec.get("state") in ("FAILURE", "REVOKED",
                                                                     "REJECTED"))
        elif rec.get("state") == "REVOKED" and not any(k[0] == s.task_id for k in starts):
            outcome, warden_ok = "REVOKED", True
        else:
            outcome, warden_ok = "LOST", False
        if outcome == "SUCCESS":
            report.succeeded += 1
        elif outcome == "REVOKED":
            report.revoked += 1
        elif outcome.startswith("DLQ:"):
            report.dead_lettered[outcome[4:]] += 1
        if outcome == "LOST":
            cause = _near(float(rec.get("sent") or 0), log, "in transit at")
            report.lost_causes[cause] += 1
            report.lost.append(f"{s.task_id} ({s.name}) warden={rec.get('state')} "
                               f"dlq={entry.get('status') if entry else None}: {cause}")
        elif not warden_ok:
            pids = [pid for (tid, _r), runs in starts.items() if tid == s.task_id
                    for pid, _at in runs]
            suffix = ""
            if not pids and s.kind == "idempotent":  # a duplicate never runs the body: the
                # process that ran its key is where it was handled, if it was the same one
                pids = [pid for (tid, _r), runs in starts.items()
                        if tid in idem_ran[str(s.args[1])] for pid, _at in runs]
                suffix = " (where its idempotency key ran)"
            cause = next((f"record buffered in a process killed by {log.killed[p]}{suffix}"
                          for p in pids if p in log.killed), "unexplained")
            report.miscount_causes[cause] += 1
            report.miscounted.append(f"{s.task_id} ({s.name}) truth={outcome} "
                                     f"warden={rec.get('state')}: {cause}")
        if outcome == "DLQ:lost_in_transit":  # filed by Warden's detector (dlq.transit)
            cause = _near(float(rec.get("sent") or 0), log, "taken off the queue at")
            report.transit_causes[cause] += 1
            report.in_transit.append(f"{s.task_id} ({s.name}) sent at {rec.get('sent')}, "
                                     f"filed {entry.get('first_failed')}: {cause}")
            if cause == "unexplained":
                report.unexpected.append(f"{s.task_id} lost in transit with no worker "
                                         "SIGKILL to explain it")
        elif (s.expect == "REVOKED" and outcome == "SUCCESS" and entry is not None
              and entry.get("reason") == "broker_dead_letter"):
            report.expired_requeued += 1  # RabbitMQ dead-lettered it; the DLQ phase requeued it
        elif outcome != "LOST" and s.expect != outcome and not _acceptable(s, outcome):
            report.unexpected.append(f"{s.task_id} expected {s.expect}, got {outcome}")
    killed_after: dict[str, str] = {}
    repeated: dict[str, int] = {}  # task id -> lowest attempt (retries) that started twice
    for (tid, retries), pids in sorted(starts.items(), key=lambda kv: (kv[0][0], int(kv[0][1]))):
        for pid, at in pids[:-1]:
            why = _explain(tid, pid, at, log, processor_killed_at)
            if why == "unexplained" and tid in repeated:
                # Each run of an attempt that raised publishes its own retry: a second run of
                # attempt n (explained above) re-publishes attempt n+1 twice.
                why = "retry published twice by a repeated earlier attempt"
            report.reexecutions[why] += 1
            killed_after[tid] = f"{why} (pid {pid}) ended an earlier run"
            repeated.setdefault(tid, int(retries))
    finished = [str(t) for t in truth_client.lrange(truth.FINISHED, 0, -1)]
    report.counts = counts.check(store, keys, done_list, successes, killed_after, finished)
    off = {line.split(":", 1)[0] for line in report.counts.unexplained}
    if off:  # where to look: successes a worker main recorded for a lost pool child
        report.counts.unexplained += [
            f"  {tid} ({rec.get('name')}) retries={rec.get('retries')} "
            f"truth done x{done_list.count(tid)}: Warden says {rec.get('reason')!r}"
            for tid, rec in sorted(recs.items())
            if rec.get("name") in off and "pool process was lost" in (rec.get("reason") or "")]
    store.close()
    return report


def _near(at: float, log: FaultLog, what: str) -> str:
    """The first fault that could have caught a message sent at ``at`` between the broker and
    a worker: one that began after it was sent (a backlog delays the pickup by seconds)."""
    for start, _end, fault in sorted(log.windows):
        if start >= at - 2.0 and fault in ("worker SIGKILL", "Redis restart"):
            return f"{what} {fault}"
    return "unexplained"


def _acceptable(s: Submission, outcome: str) -> bool:
    """Outcomes a fault may legitimately cause instead of the planned one."""
    if outcome == "DLQ:poison_pill":  # killed more than WARDEN_MAX_DELIVERIES times
        return True
    if s.task_id.startswith("p-pickle") and outcome == "DLQ:broker_dead_letter":
        return True  # RabbitMQ: Celery's rejection dead-letters it through the broker too
    if s.expect == "REVOKED" and outcome == "DLQ:broker_dead_letter":
        return True  # RabbitMQ: an expired message is dead-lettered by the broker
    if s.expect == "DLQ:exception" and s.name == "chaos.failing":
        return outcome == "SUCCESS"  # fixed and requeued
    return False


def _explain(task_id: str, pid: int, at: float, log: FaultLog,
             processor_killed_at: float | None) -> str:
    """Why an attempt started again: the fault that ended the earlier start."""
    if task_id.startswith("p-kills"):
        return "poison pill killed its own child"
    if pid in log.killed:
        return f"{log.killed[pid]} while it ran"
    if REQUEUED.search(task_id) and processor_killed_at is not None:
        return "DLQ processor killed between publish and finish"
    for start, end, fault in log.windows:
        if start - 1.0 <= at <= end:
            return f"{fault} while it ran"
    return "unexplained"


def _json_list(text: Any) -> list[str]:
    import json

    if not text:
        return []
    value = json.loads(text)
    return [str(v) for v in value] if isinstance(value, list) else []

"""What the chaos driver submits, and the record of it (the driver's half of the truth).

``plan(n)`` builds a deterministic mix of ``Submission``s; ``Submitter`` publishes them through
a Warden-wired client app, retrying a publish that fails during a broker fault, and keeps every
id it published (with the number of publish attempts: a retried publish may have reached the
broker twice, which is one honest source of a second execution).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from kombu import Exchange, Producer

#: Share of each kind in the mix (the rest is ``fast``).
MIX = {"slow": 0.04, "retrying": 0.10, "failing": 0.04, "idempotent": 0.10, "guarded": 0.08,
       "limited": 0.06, "expired": 0.01}


@dataclass
class Submission:
    task_id: str
    kind: str
    name: str
    args: list[Any]
    options: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    expect: str = "SUCCESS"  # SUCCESS | DLQ:<reason> | REVOKED | SUCCESS|DLQ


def plan(n: int, seed: int = 13) -> list[Submission]:
    rng = random.Random(seed)
    out: list[Submission] = []
    i = 0
    while len(out) < n:
        i += 1
        r, acc, kind = rng.random(), 0.0, "fast"
        for k, share in MIX.items():
            acc += share
            if r < acc:
                kind = k
                break
        tid = f"c-{kind}-{i}-{uuid.uuid4().hex[:8]}"
        if kind == "slow":
            out.append(Submission(tid, kind, "chaos.slow", [i, rng.choice([0.1, 0.2, 0.4])]))
        elif kind == "retrying":
            failures = 5 if i % 10 == 0 else rng.choice([1, 2])
            out.append(Submission(tid, kind, "chaos.retrying", [i, failures],
                                  expect="DLQ:max_retries" if failures > 3 else "SUCCESS"))
        elif kind == "failing":
            out.append(Submission(tid, kind, "chaos.failing", [i], expect="DLQ:exception"))
        elif kind == "idempotent":
            key = f"k{i}"
            out.append(Submission(tid, kind, "chaos.idempotent", [i, key]))
            out.append(Submission(f"c-idem2-{i}-{uuid.uuid4().hex[:8]}", kind,
                                  "chaos.idempotent", [i, key]))
        elif kind == "guarded":
            out.append(Submission(tid, kind, "chaos.guarded", [i],
                                  expect="DLQ:exception" if i % 8 == 0 else "SUCCESS"))
        elif kind == "limited":
            out.append(Submission(tid, kind, "chaos.limited", [i]))
        elif kind == "expired":
            out.append(Submission(tid, kind, "chaos.fast", [i], {"expires": -60.0},
                                  expect="REVOKED"))
        else:
            out.append(Submission(tid, kind, "chaos.fast", [i]))
    return out[:n]


class Submitter:
    def __init__(self, app: Celery, patience: float = 90.0) -> None:
        self.app = app
        self.patience = patience
        self.sent: list[Submission] = []
        self.publish_retries = 0

    def submit(self, s: Submission) -> None:
        """Publish, retrying through a broker outage; recorded only once it went out."""
        deadline = time.monotonic() + self.patience
        options = dict(s.options)
        if "expires" in options:  # a moment already past: the worker revokes it on receipt
            options["expires"] = datetime.now(UTC) + timedelta(seconds=options["expires"])
        while True:
            s.attempts += 1
            try:
                self.app.send_task(s.name, args=s.args, task_id=s.task_id, **options)
                break
            except Exception:
                self.publish_retries += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.sent.append(s)

    # -- poison messages ------------------------------------------------------------------
    def poison(self, queue: str) -> list[Submission]:
        """An unknown task name, a pickle body, an undecodable body, a child-killing task."""
        made = [
            Submission(f"p-unknown-{uuid.uuid4().hex[:8]}", "poison", "chaos.no_such_task", [1],
                       expect="DLQ:unknown_task"),
            Submission(f"p-pickle-{uuid.uuid4().hex[:8]}", "poison", "chaos.fast", [1],
                       {"serializer": "pickle"}, expect="DLQ:invalid_message"),
            Submission(f"p-kills-{uuid.uuid4().hex[:8]}", "poison", "chaos.poison", [1],
                       expect="DLQ:poison_pill"),
        ]
        for s in made:
            self.submit(s)
        bad = Submission(f"p-undecodable-{uuid.uuid4().hex[:8]}", "poison", "chaos.fast", [],
                         expect="DLQ:undecodable")
        with self.app.producer_or_acquire() as producer:
            assert isinstance(producer, Producer)
            producer.publish(
                b"\xff{not json", exchange=Exchange(queue), routing_key=queue,
                content_type="application/json", content_encoding="utf-8",
                headers={"id": bad.task_id, "task": "chaos.fast", "lang": "py"},
                declare=[], retry=True)
        bad.attempts = 1
        self.sent.append(bad)
        return [*made, bad]

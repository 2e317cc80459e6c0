"""Adopting a fleet's existing RabbitMQ queues: what each queue has on the broker, what Warden
declares, and what to do about a difference.

:func:`diagnose` probes every queue the app declares (plus Warden's dead-letter queue) with
:func:`~celery_warden.rabbitmq.probe.probe_queue`; :class:`Adoption` turns the facts into the
settings that would fit (:meth:`Adoption.fitting_modes`), the steps to take (:func:`steps`),
the one message a refusing worker or client shows (:func:`mismatch_message`) and the plan
``warden rabbitmq plan`` prints (:func:`as_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery

from celery_warden.config import (
    QUEUES,
    dead_letter_names,
    dead_letter_queue,
    queue_name,
    rabbitmq_queue_arguments,
)
from celery_warden.rabbitmq.policy import Policy, policy_for
from celery_warden.rabbitmq.probe import FLAGS, Difference, QueueFacts, probe_queue
from celery_warden.settings import QueueArguments, WardenSettings

SETTING = "WARDEN_RABBITMQ_QUEUE_ARGUMENTS"
#: Preference order when several settings fit: keep priorities, then no policy, then neither.
MODES: tuple[QueueArguments, ...] = ("priority", "all", "none")
MIGRATION = (
    "start workers with a new WARDEN_QUEUE_PREFIX (Warden declares the new queues with "
    "x-max-priority), switch clients and beat to it, keep workers on the old queues until "
    "`rabbitmqctl list_queues name messages` shows them empty, then delete them (README, "
    "section \"RabbitMQ\")"
)


@dataclass
class Adoption:
    """The fleet's queues on one broker, compared with what Warden declares."""

    settings: WardenSettings
    vhost: str
    queues: list[QueueFacts]

    @property
    def mode(self) -> QueueArguments:
        return self.settings.rabbitmq_queue_arguments

    @property
    def policy(self) -> Policy:
        return policy_for(self.settings, self.vhost)

    @property
    def warden_queues(self) -> frozenset[str]:
        """Queues whose arguments follow ``WARDEN_RABBITMQ_QUEUE_ARGUMENTS``."""
        return frozenset(queue_name(self.settings, logical) for logical in QUEUES)

    def kind(self, facts: QueueFacts) -> str:
        if facts.name in self.warden_queues:
            return "warden"
        return "dead_letter" if facts.name == dead_letter_names(self.settings)[1] else "app"

    def needs_action(self) -> list[QueueFacts]:
        return [q for q in self.queues if q.status in {"mismatch", "unknown"}]

    @property
    def action_needed(self) -> bool:
        return bool(self.needs_action())

    def fitting_modes(self) -> list[QueueArguments]:
        """Settings of ``WARDEN_RABBITMQ_QUEUE_ARGUMENTS`` under which every existing Warden
        queue would be accepted as it is."""
        existing = [q for q in self.queues if q.exists and q.name in self.warden_queues]
        return [mode for mode in MODES
                if all(_fits(q, rabbitmq_queue_arguments(self.settings, mode))
                       for q in existing)]

    def target_mode(self) -> QueueArguments:
        """The setting the steps lead to: the current one unless it does not fit and another
        does."""
        fits = self.fitting_modes()
        return self.mode if self.mode in fits or not fits else fits[0]


def _fits(facts: QueueFacts, wanted: dict[str, Any]) -> bool:
    if facts.broker is None or any(d.argument in FLAGS for d in facts.differences):
        return False
    return facts.broker == wanted


def diagnose(app: Celery, settings: WardenSettings) -> Adoption:
    """Probe every queue ``app`` declares, and Warden's dead-letter queue, on its broker."""
    queues = {q.name: q for q in app.amqp.queues.values() if not getattr(q, "no_declare", False)}
    dead = dead_letter_queue(settings)
    queues.setdefault(dead.name, dead)
    with app.connection_for_write() as conn:
        facts = [probe_queue(conn, q.name, q.queue_arguments, durable=bool(q.durable),
                             auto_delete=bool(q.auto_delete), exclusive=bool(q.exclusive))
                 for q in queues.values()]
        vhost = conn.virtual_host
    return Adoption(settings, vhost or "/", facts)


def describe(diff: Difference) -> str:
    """One difference in words: what the broker has, what Warden declares."""
    arg = diff.argument
    if diff.broker is None:
        return f"{arg} is not set on the broker; Warden declares {arg}={diff.warden}"
    if diff.warden is None:
        return f"{arg}={diff.broker} on the broker; Warden declares the queue without {arg}"
    return f"{arg}={diff.broker} on the broker; Warden declares {arg}={diff.warden}"


def steps(adoption: Adoption) -> list[str]:
    """What to do, in order, for this fleet (also when nothing is wrong: the policy)."""
    out: list[str] = []
    target = adoption.target_mode()
    bad = adoption.needs_action()
    unknown = [q for q in bad if q.status == "unknown"]
    if any(adoption.kind(q) == "warden" and q.status == "mismatch" for q in bad):
        if target != adoption.mode:
            out.append(f"Set {SETTING}={target} for every worker, beat and client of this "
                       "fleet: Warden then declares these queues exactly as they exist.")
            if target == "none":
                out.append("With none, RabbitMQ ignores task priorities on these queues "
                           "(x-max-priority cannot be added to an existing queue). To get "
                           f"priorities, move to new queues later: {MIGRATION}.")
        else:
            names = ", ".join(f"'{q.name}'" for q in bad
                              if adoption.kind(q) == "warden" and q.status == "mismatch")
            out.append(f"No value of {SETTING} matches queue(s) {names}, and the arguments of "
                       f"an existing queue cannot be changed: {MIGRATION}.")
    if unknown:
        names = ", ".join(f"'{q.name}'" for q in unknown)
        out.append(f"{names} could not be probed (RabbitMQ's answer is quoted above): look at "
                   "them with `rabbitmqctl list_queues name arguments durable auto_delete`.")
    for q in bad:
        if q.status == "unknown":
            continue
        if adoption.kind(q) == "dead_letter":
            out.append(f"'{q.name}' is Warden's dead-letter queue (durable, no arguments): "
                       "drain and delete it (`rabbitmqctl delete_queue`) or use another "
                       "WARDEN_QUEUE_PREFIX.")
        elif adoption.kind(q) == "app":
            out.append(f"'{q.name}' is declared by the app's own task_queues, not by Warden: "
                       "declare it with the arguments it has on the broker, or move to a new "
                       "queue.")
    if target == "all":
        out.append("No policy needed: Warden declares x-message-ttl and x-dead-letter-* on its "
                   "queues (changing WARDEN_QUEUE_MESSAGE_TTL later means new queues).")
    else:
        out.append(_policy_step(adoption))
    return out


def _policy_step(adoption: Adoption) -> str:
    policy = adoption.policy
    dlx, dlq = dead_letter_names(adoption.settings)
    dead = next((q for q in adoption.queues if q.name == dlq), None)
    when = ("" if dead is not None and dead.exists else
            f" Apply it once a Warden worker has started: the worker declares '{dlx}' and "
            f"'{dlq}', and RabbitMQ drops what it dead-letters to a missing exchange.")
    return (f"Give the queues message TTL and dead-lettering with a policy (Warden cannot see "
            f"policies over AMQP; it applies to existing queues at once):\n      "
            f"{policy.command()}\n    A queue follows one policy only, the matching one with "
            f"the highest priority: if `rabbitmqctl list_policies --vhost {policy.vhost}` shows "
            f"another policy for these queues, add these keys to it instead. Check with "
            f"`{policy.verify_command()}`.{when}")


def mismatch_message(adoption: Adoption, broker_reply: str | None = None) -> str:
    """The one message a refusing worker logs and a refusing publish raises."""
    lines = [
        f"These RabbitMQ queues exist with other arguments than Warden declares "
        f"({SETTING}={adoption.mode}), and RabbitMQ refuses a declaration that differs from "
        "an existing queue (PRECONDITION_FAILED):"
    ]
    bad = adoption.needs_action()
    for q in bad:
        lines.extend(f"  - queue '{q.name}': {describe(d)}" for d in q.differences)
        if q.error is not None:
            lines.append(f"  - queue '{q.name}': {q.error}")
    if not bad and broker_reply:
        lines.append(f"  - RabbitMQ said: {broker_reply}")
    lines.append("What to do:")
    lines.extend(f"  {i}. {step}" for i, step in enumerate(steps(adoption), 1))
    lines.append("`warden rabbitmq plan` (or `celery -A <app> warden rabbitmq plan`) prints "
                 "this plan for the fleet, with what exists on the broker.")
    return "\n".join(lines)


def as_dict(adoption: Adoption) -> dict[str, Any]:
    """The plan as JSON-ready data (``warden rabbitmq plan --json``)."""
    target = adoption.target_mode()
    return {
        "vhost": adoption.vhost,
        "queue_arguments": adoption.mode,
        "action_needed": adoption.action_needed,
        "fitting_modes": adoption.fitting_modes(),
        "recommended_queue_arguments": target,
        "queues": [{
            "name": q.name, "kind": adoption.kind(q), "status": q.status, "exists": q.exists,
            "messages": q.messages, "consumers": q.consumers, "declared": q.declared,
            "broker": q.broker, "differences": [d.as_dict() for d in q.differences],
            "error": q.error,
        } for q in adoption.queues],
        "policy": adoption.policy.as_dict(),
        "policy_needed": target != "all",
        "steps": steps(adoption),
    }


__all__ = ["MODES", "SETTING", "Adoption", "as_dict", "describe", "diagnose",
           "mismatch_message", "steps"]

"""The RabbitMQ policy that gives Warden's queues their message TTL and dead-lettering.

Why a policy rather than queue arguments: a policy applies at once to queues that already
exist, without redeclaring them, and can be changed later (``rabbitmqctl set_policy`` again);
a queue argument is fixed for the queue's life and a declaration that differs is refused. Two
limits of RabbitMQ shape it: a queue follows **one** policy, the matching one with the highest
priority (so Warden's policy would hide another policy that matches the same queues — merge the
keys into that one instead), and ``x-max-priority`` cannot be set by a policy at all.

Warden cannot read policies over AMQP; ``warden rabbitmq plan`` prints the command, and
``rabbitmqctl list_queues name policy`` shows which policy each queue follows.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from celery_warden.config import QUEUES, dead_letter_arguments, queue_name
from celery_warden.settings import WardenSettings

#: Above the default 0, so Warden's policy wins over a catch-all policy on the same queues
#: (see the module docstring for what that hides).
POLICY_PRIORITY = 10


def _escape(name: str) -> str:
    """A literal for RabbitMQ's (PCRE-style) pattern: every non-word character escaped."""
    return "".join(c if c.isalnum() or c == "_" else f"\\{c}" for c in name)


@dataclass(frozen=True)
class Policy:
    """One ``rabbitmqctl set_policy`` for a fleet's queues."""

    name: str
    pattern: str
    definition: dict[str, Any]
    vhost: str
    priority: int = POLICY_PRIORITY

    def argv(self) -> list[str]:
        """The command as arguments (no shell needed)."""
        return ["rabbitmqctl", "set_policy", "--vhost", self.vhost, "--apply-to", "queues",
                "--priority", str(self.priority), self.name, self.pattern,
                json.dumps(self.definition, separators=(",", ":"))]

    def command(self) -> str:
        """The command as one shell line, quoted."""
        return shlex.join(self.argv())

    def verify_command(self) -> str:
        return shlex.join(["rabbitmqctl", "list_queues", "--vhost", self.vhost, "name",
                           "policy"])

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pattern": self.pattern, "definition": self.definition,
                "vhost": self.vhost, "priority": self.priority, "apply_to": "queues",
                "argv": self.argv(), "command": self.command(),
                "verify": self.verify_command()}


def policy_for(settings: WardenSettings, vhost: str) -> Policy:
    """Message TTL and dead-lettering for the fleet's three queues (exactly those names: the
    dead-letter queue itself must not expire or dead-letter)."""
    names = [queue_name(settings, logical) for logical in QUEUES]
    definition = {key.removeprefix("x-"): value
                  for key, value in dead_letter_arguments(settings).items()}
    return Policy(name=f"{settings.queue_prefix}warden",
                  pattern="^(" + "|".join(_escape(n) for n in names) + ")$",
                  definition=definition, vhost=vhost or "/")


__all__ = ["POLICY_PRIORITY", "Policy", "policy_for"]

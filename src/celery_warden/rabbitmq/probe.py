"""What an existing RabbitMQ queue was declared with, learned over plain AMQP.

RabbitMQ does not return a queue's arguments on a passive declare (only its message and
consumer counts), and without the management plugin nothing else reads them. What it does
return is a precise refusal: an active declare that differs from the existing queue is refused
with ``PRECONDITION_FAILED - inequivalent arg 'K' for queue 'Q' in vhost 'V': received X but
current is Y`` — one argument and the queue's current value. So :func:`probe_queue` declares
what Celery would declare, on a throwaway channel (a refusal closes its channel), reads the
argument and its current value from the refusal, adopts that value and declares again, until
RabbitMQ accepts. Every refusal named one difference; the accepted declaration is equivalent to
the existing queue, so it changes nothing. A queue that does not exist is never created: a
passive declare comes first.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from amqp.exceptions import ChannelError, NotFound, PreconditionFailed

#: Declaration flags RabbitMQ compares like arguments ("inequivalent arg 'durable'").
FLAGS = ("durable", "auto_delete", "exclusive")
#: More refusals than this for one queue means the probe is not converging: stop and report.
MAX_ROUNDS = 16

_INT_TYPES = frozenset({"byte", "short", "signedint", "long", "longlong", "signedbyte",
                        "signedshort", "signedlong", "unsignedbyte", "unsignedshort",
                        "unsignedint", "unsignedlong"})
_REFUSAL = re.compile(
    r"inequivalent arg '(?P<arg>[^']*)' for (?P<kind>queue|exchange) '(?P<name>.*?)' "
    r"in vhost '(?P<vhost>.*?)': received (?P<received>.*?) but current is (?P<current>.*)\Z",
    re.S,
)
_TYPED = re.compile(r"the value '(?P<value>.*)' of type '(?P<type>\w+)'\Z", re.S)
_QUOTED = re.compile(r"'(?P<value>.*)'\Z", re.S)


@dataclass(frozen=True)
class Refusal:
    """One ``inequivalent arg`` refusal: ``current`` is the existing value's text (``None``:
    the existing queue does not have the argument), ``current_type`` its AMQP type if given."""

    kind: str
    name: str
    arg: str
    current: str | None
    current_type: str | None


def parse_refusal(reply_text: str) -> Refusal | None:
    """Read RabbitMQ's refusal text (``None`` when it is not an ``inequivalent arg`` one)."""
    found = _REFUSAL.search(reply_text or "")
    if found is None:
        return None
    current = found["current"].strip()
    if current == "none":
        return Refusal(found["kind"], found["name"], found["arg"], None, None)
    typed = _TYPED.match(current)
    if typed:
        return Refusal(found["kind"], found["name"], found["arg"], typed["value"], typed["type"])
    quoted = _QUOTED.match(current)
    value = quoted["value"] if quoted else current
    return Refusal(found["kind"], found["name"], found["arg"], value, None)


class Unreadable(ValueError):
    """A current value this probe cannot declare back (a table, an array, a timestamp)."""


def current_value(refusal: Refusal, sent: Any) -> Any:
    """The existing value as Python, typed so that declaring it back is equivalent. Without a
    type in the refusal (same type class on both sides) the value we sent decides."""
    text, kind = refusal.current, refusal.current_type
    if text is None:
        return None
    if kind in _INT_TYPES or (kind is None and isinstance(sent, int)
                              and not isinstance(sent, bool) and _is_int(text)):
        return int(text)
    if kind == "bool" or refusal.arg in FLAGS or (kind is None and isinstance(sent, bool)):
        return text == "true"
    if kind in {"double", "float"} or (kind is None and isinstance(sent, float)):
        return float(text)
    if kind is None or kind in {"longstr", "shortstr", "binary"}:
        return text
    raise Unreadable(f"{refusal.arg} has a value of type {kind}")


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


@dataclass(frozen=True)
class Difference:
    """One argument (or flag) on which the existing queue and the declaration differ;
    ``None`` means "not set"."""

    argument: str
    broker: Any
    warden: Any

    def as_dict(self) -> dict[str, Any]:
        return {"argument": self.argument, "broker": self.broker, "warden": self.warden}


@dataclass
class QueueFacts:
    """One queue: what Celery declares for it and what the broker has."""

    name: str
    declared: dict[str, Any]
    flags: dict[str, bool]
    exists: bool = False
    messages: int | None = None
    consumers: int | None = None
    #: The existing queue's arguments (those RabbitMQ compares) once fully learned.
    broker: dict[str, Any] | None = None
    differences: list[Difference] = field(default_factory=list)
    #: A refusal or error the probe could not read further (RabbitMQ's own text).
    error: str | None = None

    @property
    def status(self) -> str:
        """``missing`` (Warden creates it), ``ok``, ``mismatch`` or ``unknown``."""
        if not self.exists:
            return "missing" if self.error is None else "unknown"
        if self.differences:
            return "mismatch"
        return "unknown" if self.error is not None or self.broker is None else "ok"


def _on_channel(connection: Any, op: Callable[[Any], Any]) -> Any:
    """Run ``op`` on a channel of its own: a refusal closes the channel, not the connection."""
    channel = connection.channel()
    try:
        return op(channel)
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def probe_queue(connection: Any, name: str, arguments: dict[str, Any] | None,
                durable: bool = True, auto_delete: bool = False,
                exclusive: bool = False) -> QueueFacts:
    """Learn how the existing queue ``name`` differs from this declaration (see the module)."""
    facts = QueueFacts(name, dict(arguments or {}), {"durable": durable,
                                                     "auto_delete": auto_delete,
                                                     "exclusive": exclusive})
    try:
        ok = _on_channel(connection, lambda ch: ch.queue_declare(queue=name, passive=True))
    except NotFound:
        return facts
    except ChannelError as exc:
        facts.error = str(exc.reply_text or exc)
        return facts
    facts.exists, facts.messages, facts.consumers = True, ok.message_count, ok.consumer_count
    args, flags = dict(facts.declared), dict(facts.flags)
    learned: dict[str, Any] = {}
    for _ in range(MAX_ROUNDS):
        try:
            _on_channel(connection, lambda ch: ch.queue_declare(
                queue=name, passive=False, arguments=args or None, **flags))
        except PreconditionFailed as exc:
            refusal = parse_refusal(str(exc.reply_text or ""))
            if refusal is None or refusal.kind != "queue" or refusal.arg in learned:
                facts.error = str(exc.reply_text or exc)
                break
            try:
                value = current_value(refusal, {**flags, **args}.get(refusal.arg))
            except Unreadable as unreadable:
                learned[refusal.arg] = refusal.current
                facts.error = f"{unreadable}; the other arguments are not known"
                break
            learned[refusal.arg] = value
            if refusal.arg in FLAGS:
                flags[refusal.arg] = bool(value)
            elif value is None:
                args.pop(refusal.arg, None)
            else:
                args[refusal.arg] = value
        except ChannelError as exc:
            facts.error = str(exc.reply_text or exc)
            break
        else:
            facts.broker = args
            break
    else:
        facts.error = f"still refused after {MAX_ROUNDS} declarations"
    wanted = {**facts.flags, **facts.declared}
    facts.differences = [Difference(arg, value, wanted.get(arg)) for arg, value in learned.items()]
    return facts


__all__ = ["Difference", "QueueFacts", "Refusal", "Unreadable", "current_value",
           "parse_refusal", "probe_queue"]

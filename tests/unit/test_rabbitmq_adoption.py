"""Adopting existing RabbitMQ queues, the parts that need no broker: reading RabbitMQ's
refusals, the policy command, and which setting fits which existing queues.

The refusal texts are verbatim replies of RabbitMQ 3.10 (recorded against this project's
broker); the broker-facing paths are pinned by tests/integration/test_rabbitmq_adoption.py.
"""

from __future__ import annotations

import json
import re

import pytest

from celery_warden.rabbitmq.adoption import Adoption, mismatch_message, steps
from celery_warden.rabbitmq.policy import policy_for
from celery_warden.rabbitmq.probe import Difference, QueueFacts, current_value, parse_refusal
from celery_warden.settings import load_settings

AMQP = "amqp://guest:guest@127.0.0.1:5672//"
MISSING_TTL = ("PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'a.default' in "
               "vhost '/': received the value '604800000' of type 'signedint' but current is none")
EXTRA_TTL = ("PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'rpB.q1' in "
             "vhost '/': received none but current is the value '1000' of type 'signedint'")
OTHER_PRIORITY = ("PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'rpB.q1' "
                  "in vhost '/': received '10' but current is '5'")
OTHER_DLX = ("PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'rpB.q1'"
             " in vhost '/': received 'ab'c d' but current is 'abc'")
DURABLE = ("PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'rpB.q1' in vhost '/': "
           "received 'false' but current is 'true'")
QUORUM = ("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'rpB.q2' in vhost "
          "'/': received none but current is the value 'quorum' of type 'longstr'")


def settings(**env: object):
    return load_settings(REDIS_URL="redis://127.0.0.1:6379/0", CELERY_BROKER_URL=AMQP,
                         WARDEN_QUEUE_PREFIX="p.", **env)


@pytest.mark.parametrize(("text", "arg", "sent", "current"), [
    (MISSING_TTL, "x-message-ttl", 604800000, None),
    (EXTRA_TTL, "x-message-ttl", None, 1000),
    (OTHER_PRIORITY, "x-max-priority", 10, 5),
    (OTHER_DLX, "x-dead-letter-exchange", "ab'c d", "abc"),
    (DURABLE, "durable", False, True),
    (QUORUM, "x-queue-type", None, "quorum"),
])
def test_refusal_names_the_argument_and_the_current_value(text, arg, sent, current):
    """Each refusal format RabbitMQ uses (absent on either side, typed, untyped, a flag) gives
    the argument and the existing queue's value, typed so that declaring it back is
    equivalent."""
    refusal = parse_refusal(text)
    assert refusal is not None and refusal.kind == "queue" and refusal.arg == arg
    value = current_value(refusal, sent)
    assert value == current and type(value) is type(current)


def test_other_refusals_are_not_read_as_differences():
    """A 404, a locked queue or an unrelated 406 is not an argument difference."""
    assert parse_refusal("NOT_FOUND - no queue 'x' in vhost '/'") is None
    assert parse_refusal("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue "
                         "'x' in vhost '/'") is None
    assert parse_refusal("") is None


def test_policy_command_matches_exactly_the_fleets_three_queues():
    """The policy carries the TTL in ms and the dead-letter target, applies to queues only,
    and its pattern matches the three (prefixed) queues and not the dead-letter queue or a
    name that merely contains them."""
    s = settings(WARDEN_QUEUE_MESSAGE_TTL=60)
    policy = policy_for(s, "/")
    assert policy.definition == {"message-ttl": 60_000, "dead-letter-exchange": "p.warden.dlx",
                                 "dead-letter-routing-key": "p.warden.dlq"}
    argv = policy.argv()
    assert argv[:2] == ["rabbitmqctl", "set_policy"] and "--apply-to" in argv
    assert argv[argv.index("--apply-to") + 1] == "queues"
    assert json.loads(argv[-1]) == policy.definition and argv[-3] == "p.warden"
    pattern = re.compile(argv[-2])
    for name in ("p.default", "p.high_priority", "p.low_priority"):
        assert pattern.search(name)
    for name in ("p.warden.dlq", "pXdefault", "p.default2", "xp.default", "default"):
        assert not pattern.search(name), name
    assert "'^(p\\.default|p\\.high_priority|p\\.low_priority)$'" in policy.command()


def facts(name: str, broker: dict | None, declared: dict | None = None,
          differences: list[Difference] | None = None) -> QueueFacts:
    return QueueFacts(name, declared or {"x-max-priority": 10},
                      {"durable": True, "auto_delete": False, "exclusive": False},
                      exists=broker is not None, messages=0, consumers=0, broker=broker,
                      differences=differences or [])


def test_queues_without_arguments_fit_none_and_the_steps_say_so():
    """Existing queues without arguments fit only WARDEN_RABBITMQ_QUEUE_ARGUMENTS=none; the
    message names each queue and argument, then the setting, the priority trade-off and the
    policy command."""
    s = settings()
    a = Adoption(s, "/", [
        facts("p.default", {}, differences=[Difference("x-max-priority", None, 10)]),
        facts("p.high_priority", None),
    ])
    assert a.action_needed and a.fitting_modes() == ["none"] and a.target_mode() == "none"
    message = mismatch_message(a)
    assert ("queue 'p.default': x-max-priority is not set on the broker; Warden declares "
            "x-max-priority=10") in message
    assert "p.high_priority" not in message.split("What to do:")[0]
    assert "WARDEN_RABBITMQ_QUEUE_ARGUMENTS=none" in message
    assert "ignores task priorities" in message
    assert policy_for(s, "/").command() in message


def test_queues_with_all_four_arguments_fit_all_and_need_no_policy():
    """Queues declared by an older Warden (all four arguments) fit `all`, and then no policy is
    needed."""
    s = settings()
    every = {"x-max-priority": 10, "x-message-ttl": s.queue_message_ttl * 1000,
             "x-dead-letter-exchange": "p.warden.dlx",
             "x-dead-letter-routing-key": "p.warden.dlq"}
    a = Adoption(s, "/", [facts("p.default", every, differences=[
        Difference(k, v, None) for k, v in every.items() if k != "x-max-priority"])])
    assert a.fitting_modes() == ["all"]
    text = "\n".join(steps(a))
    assert "WARDEN_RABBITMQ_QUEUE_ARGUMENTS=all" in text and "No policy needed" in text
    assert "rabbitmqctl set_policy" not in text


def test_an_argument_no_setting_declares_means_migration():
    """A queue with another x-max-priority, or another durability, fits no setting: the step is
    the migration to new queues."""
    s = settings()
    a = Adoption(s, "/", [
        facts("p.default", {"x-max-priority": 5},
              differences=[Difference("x-max-priority", 5, 10)]),
        facts("p.low_priority", {"x-max-priority": 10},
              differences=[Difference("durable", False, True)]),
    ])
    assert a.fitting_modes() == [] and a.target_mode() == "priority"
    first = steps(a)[0]
    assert "No value of WARDEN_RABBITMQ_QUEUE_ARGUMENTS matches" in first
    assert "'p.default'" in first and "'p.low_priority'" in first
    assert "new WARDEN_QUEUE_PREFIX" in first
    message = mismatch_message(a)
    assert "x-max-priority=5 on the broker; Warden declares x-max-priority=10" in message
    assert "durable=False on the broker; Warden declares durable=True" in message


def test_a_matching_fleet_needs_no_action_but_still_gets_the_policy():
    """Existing queues that match need no action (exit 0); the policy is still the one step,
    since Warden cannot see policies over AMQP."""
    s = settings()
    a = Adoption(s, "/", [facts("p.default", {"x-max-priority": 10})])
    assert not a.action_needed and a.fitting_modes() == ["priority"]
    (only,) = steps(a)
    assert "rabbitmqctl set_policy" in only


def test_a_queue_that_could_not_be_probed_is_reported_not_migrated():
    """A queue the probe could not read (e.g. exclusively locked) needs action: the message
    quotes RabbitMQ's answer literally and says how to look, without prescribing a migration."""
    s = settings()
    locked = QueueFacts("p.default", {"x-max-priority": 10}, {"durable": True},
                        exists=True, error="RESOURCE_LOCKED - [i]<script> 'p.default'")
    a = Adoption(s, "/", [locked])
    assert locked.status == "unknown" and a.action_needed and a.fitting_modes() == []
    message = mismatch_message(a)
    assert "queue 'p.default': RESOURCE_LOCKED - [i]<script> 'p.default'" in message
    assert "could not be probed" in message and "No value of" not in message

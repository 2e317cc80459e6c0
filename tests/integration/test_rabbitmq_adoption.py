"""Adopting Warden on a RabbitMQ fleet whose queues already exist without Warden's arguments.

Each test declares its "pre-existing" queues under its own queue prefix, as a fleet that ran
before Warden would have them (durable, no arguments), and deletes them — and any policy it set,
under a unique name — afterwards. The worker and the CLI run as real subprocesses; the policy is
applied with the real ``rabbitmqctl`` (tests that need it skip when it is not usable here).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kombu import Connection

from celery_warden.dlq.broker import drain_broker_dead_letters
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.errors import WardenError
from celery_warden.settings import WardenSettings
from tests.integration.test_cli_commands import cli
from tests.integration.test_rabbitmq import delete_rabbit_objects
from tests.support import WorkerProcess, client_app, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


def declare_plain(settings: WardenSettings, *logical: str) -> None:
    """Declare queues the way a fleet without Warden did: durable, no arguments at all."""
    with Connection(settings.effective_broker_url, connect_timeout=5) as conn:
        channel = conn.channel()
        try:
            for name in logical:
                channel.queue_declare(queue=f"{settings.queue_prefix}{name}", durable=True,
                                      auto_delete=False, arguments=None)
        finally:
            channel.close()


@pytest.fixture
def adopt(settings_factory: Callable[..., WardenSettings], rabbitmq_url: str
          ) -> Iterator[Callable[..., WardenSettings]]:
    """Settings for a RabbitMQ fleet under a unique queue prefix; deletes every queue and
    exchange of every prefix it handed out afterwards (the Redis keys go with settings_factory).
    """
    made: list[WardenSettings] = []

    def make(prefix: str | None = None, **overrides: object) -> WardenSettings:
        prefix = prefix or f"adopt{uuid.uuid4().hex[:8]}."
        s = settings_factory(CELERY_BROKER_URL=rabbitmq_url, WARDEN_QUEUE_PREFIX=prefix,
                             **overrides)
        made.append(s)
        return s

    yield make
    for s in made:
        delete_rabbit_objects(s)


@pytest.fixture
def rabbitmqctl() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Runs the real ``rabbitmqctl`` (skips when it is missing or cannot reach the node, and
    fails instead when CI is set, like every test that needs the broker)."""
    binary = shutil.which("rabbitmqctl")
    reason = None if binary else "rabbitmqctl is not installed here"
    if binary is not None:
        probe = subprocess.run([binary, "-q", "list_policies"], capture_output=True, text=True,
                               timeout=60, check=False)
        if probe.returncode != 0:
            reason = f"rabbitmqctl cannot reach the node: {probe.stderr.strip()[:200]}"
    if reason is not None or binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required when CI is set)")
        pytest.skip(reason or "rabbitmqctl missing")
    assert binary is not None

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60,
                              check=False)

    yield run


# -- the refusal: one clear message, no traceback ------------------------------------------------
def test_reference_worker_refuses_a_queue_that_exists_without_warden_arguments(adopt):
    """The reference app's worker, started against a `default` queue that exists without
    arguments, exits non-zero with one message that names the queue and the argument and says
    what to do — not a PreconditionFailed traceback."""
    s = adopt()
    declare_plain(s, "default")
    worker = WorkerProcess(s, app="app.worker.celery_app", concurrency=1)
    worker.start(wait=False)
    assert worker.process is not None
    try:
        code = worker.process.wait(60)
    finally:
        worker.kill()
    log = worker.log()
    assert code == 78, log[-3000:]  # EX_CONFIG: restarting will not fix it
    assert "Traceback" not in log and "PreconditionFailed" not in log, log[-3000:]
    assert f"queue '{s.queue_prefix}default'" in log
    assert "x-max-priority" in log
    assert "WARDEN_RABBITMQ_QUEUE_ARGUMENTS=none" in log
    assert "warden rabbitmq plan" in log
    assert " ready." not in log


def test_client_publish_gets_the_same_clear_error(adopt):
    """Publishing to a pre-existing queue without Warden's arguments raises a WardenError whose
    message names the queue and argument and the fix, instead of amqp's PreconditionFailed."""
    s = adopt()
    declare_plain(s, "default", "high_priority")
    app = client_app(s)
    with pytest.raises(WardenError) as info:
        app.send_task("fleet.add", (1, 2))
    message = str(info.value)
    for logical in ("default", "high_priority"):
        assert f"queue '{s.queue_prefix}{logical}'" in message
    assert f"queue '{s.queue_prefix}low_priority'" not in message  # does not exist: fine
    assert "x-max-priority" in message
    assert "WARDEN_RABBITMQ_QUEUE_ARGUMENTS=none" in message
    assert "warden rabbitmq plan" in message


# -- the plan ---------------------------------------------------------------------------------
def test_plan_lists_the_fix_and_exits_non_zero(adopt):
    """`warden rabbitmq plan` shows, per queue, what exists and what Warden declares, the
    rabbitmqctl policy command and the adoption setting, and exits 1 while action is needed;
    `--json` carries the same facts."""
    s = adopt()
    declare_plain(s, "default")
    wide = {"COLUMNS": "200"}
    text = cli(s, "rabbitmq", "plan", extra_env=wide)
    assert text.returncode == 1, text.stderr
    assert "Traceback" not in text.stderr
    out = text.stdout
    assert f"{s.queue_prefix}default" in out and "x-max-priority" in out
    assert "rabbitmqctl set_policy" in out
    assert "WARDEN_RABBITMQ_QUEUE_ARGUMENTS=none" in out

    data = json.loads(cli(s, "rabbitmq", "plan", "--json").stdout)
    assert data["action_needed"] is True and data["queue_arguments"] == "priority"
    queues = {q["name"]: q for q in data["queues"]}
    default = queues[f"{s.queue_prefix}default"]
    assert default["status"] == "mismatch" and default["exists"] is True
    assert default["differences"] == [
        {"argument": "x-max-priority", "broker": None, "warden": 10}]
    assert queues[f"{s.queue_prefix}high_priority"]["status"] == "missing"
    assert data["fitting_modes"] == ["none"]
    policy = data["policy"]
    assert policy["definition"] == {
        "message-ttl": s.queue_message_ttl * 1000,
        "dead-letter-exchange": f"{s.queue_prefix}warden.dlx",
        "dead-letter-routing-key": f"{s.queue_prefix}warden.dlq",
    }
    assert policy["argv"][:2] == ["rabbitmqctl", "set_policy"]

    check = cli(s, "rabbitmq", "check")
    assert check.returncode == 1 and "x-max-priority" in check.stderr
    assert "Traceback" not in check.stderr


def test_policy_adopts_existing_queues_and_dead_letters_by_ttl(adopt, rabbitmqctl, workers):
    """After the printed `rabbitmqctl set_policy` and WARDEN_RABBITMQ_QUEUE_ARGUMENTS=none, the
    plan is clean, a real worker starts on the pre-existing queue and runs tasks, and a task
    left in another pre-existing queue is dead-lettered by the policy's TTL into Warden's DLQ."""
    s = adopt(WARDEN_QUEUE_MESSAGE_TTL=1)
    declare_plain(s, "default", "low_priority")
    before = cli(s, "rabbitmq", "plan", "--json")
    assert before.returncode == 1, before.stderr
    policy = json.loads(before.stdout)["policy"]
    assert s.queue_prefix in policy["name"]
    applied = rabbitmqctl(*policy["argv"][1:])
    try:
        assert applied.returncode == 0, applied.stderr
        listed = rabbitmqctl("-q", "list_queues", "--vhost", "/", "name", "policy")
        assert f"{s.queue_prefix}default\t{policy['name']}" in listed.stdout, listed.stdout

        adopted = s.model_copy(update={"rabbitmq_queue_arguments": "none"})
        after = cli(adopted, "rabbitmq", "plan", "--json")
        assert after.returncode == 0, after.stdout + after.stderr
        assert all(q["status"] == "ok" for q in json.loads(after.stdout)["queues"]
                   if q["exists"])

        worker = WorkerProcess(adopted, queues=[f"{s.queue_prefix}default"], concurrency=1)
        workers.append(worker.start())
        app = client_app(adopted)
        assert app.send_task("fleet.add", (2, 3)).get(timeout=30) == 5
        expired = app.send_task("fleet.add", (7, 7), queue=f"{s.queue_prefix}low_priority")
        time.sleep(2.5)  # nobody consumes low_priority: the policy's 1 s TTL expires it
        dlq = DeadLetterQueue(adopted, app=app)
        wait_for(lambda: drain_broker_dead_letters(app, adopted, dlq) or None, 15, 0.5,
                 "the expired task dead-lettered through the policy")
        entry = dlq.get(expired.id)
        assert entry is not None and entry.reason == "broker_dead_letter"
        assert "expired" in entry.exc_message
        assert entry.queue == f"{s.queue_prefix}low_priority" and entry.args == [7, 7]
    finally:
        rabbitmqctl("clear_policy", "--vhost", "/", policy["name"])
        with contextlib.suppress(Exception):
            for w in workers:
                w.stop()

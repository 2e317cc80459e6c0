"""``warden rabbitmq plan|check``: adopting a RabbitMQ fleet whose queues already exist.

``plan`` probes every queue (see :mod:`celery_warden.rabbitmq.probe`: no management plugin
needed) and prints, per queue, what exists on the broker and what Warden declares, then the
steps — the setting that fits, the exact ``rabbitmqctl set_policy`` command, the migration when
an argument cannot be changed in place. ``check`` prints only the verdict (the message a worker
would refuse to start with). Both exit 1 while a queue would be refused, 0 otherwise; the
policy cannot be seen over AMQP, so it is always printed and never counted.
"""

from __future__ import annotations

from typing import Any

import typer
from amqp.exceptions import AMQPError
from celery import Celery
from kombu.exceptions import OperationalError

from celery_warden.cli.common import JsonOpt, celery_app_of, emit_json, fail, settings_for
from celery_warden.config import celery_config
from celery_warden.rabbitmq.adoption import (
    SETTING,
    Adoption,
    as_dict,
    describe,
    diagnose,
    mismatch_message,
    steps,
)
from celery_warden.rabbitmq.probe import QueueFacts
from celery_warden.redaction import mask_url

rabbitmq_app = typer.Typer(
    name="rabbitmq", no_args_is_help=True,
    help="RabbitMQ queues: plan the adoption of existing queues (policy, settings, migration).",
)

STATUS = {"ok": "ok", "missing": "does not exist: Warden creates it",
          "mismatch": "MISMATCH: RabbitMQ would refuse Warden's declaration",
          "unknown": "UNKNOWN: could not be probed"}


def _adoption(ctx: typer.Context) -> Adoption:
    settings = settings_for(ctx)
    url = mask_url(settings.effective_broker_url)
    if settings.broker_is_redis:
        fail(f"warden rabbitmq: the broker {url} is not RabbitMQ (CELERY_BROKER_URL)", 2)
    app = celery_app_of(ctx)
    if app is None:  # the queues the recommended configuration declares
        app = Celery("warden-rabbitmq", set_as_current=False)
        app.conf.update(celery_config(settings))
    try:
        return diagnose(app, settings)
    except (OperationalError, AMQPError, OSError) as exc:
        fail(f"warden rabbitmq: cannot probe the queues on {url}: {type(exc).__name__}: {exc}",
             1)


def _arguments(arguments: dict[str, Any] | None) -> str:
    if arguments is None:
        return "(not known)"
    return ", ".join(f"{k}={v}" for k, v in arguments.items()) or "(none)"


def _queue_lines(adoption: Adoption, q: QueueFacts) -> list[str]:
    kind = {"warden": "Warden queue", "dead_letter": "Warden's dead-letter queue",
            "app": "the app's own queue"}[adoption.kind(q)]
    lines = [f"queue {q.name} ({kind})", f"  status:          {STATUS[q.status]}"]
    if q.exists:
        lines.append(f"  on the broker:   {q.messages} messages, {q.consumers} consumers; "
                     f"arguments: {_arguments(q.broker)}")
    lines.append(f"  Warden declares: {_arguments(q.declared)}")
    lines.extend(f"  difference:      {describe(d)}" for d in q.differences)
    if q.error is not None:
        lines.append(f"  probe stopped:   {q.error}")
    return lines


@rabbitmq_app.command("plan")
def plan(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Per queue: what exists, what Warden declares; then the steps (exit 1: action needed)."""
    adoption = _adoption(ctx)
    code = 1 if adoption.action_needed else 0
    if as_json:
        emit_json(as_dict(adoption))
        raise typer.Exit(code)
    settings = adoption.settings
    out = [f"RabbitMQ at {mask_url(settings.effective_broker_url)}, vhost "
           f"'{adoption.vhost}', {SETTING}={adoption.mode}", ""]
    for q in adoption.queues:
        out.extend([*_queue_lines(adoption, q), ""])
    out.append("Steps:")
    out.extend(f"  {i}. {step}" for i, step in enumerate(steps(adoption), 1))
    out.append("")
    out.append("Action needed: a queue would be refused (exit code 1)." if code else
               "Every existing queue matches what Warden declares (exit code 0).")
    typer.echo("\n".join(out))
    raise typer.Exit(code)


@rabbitmq_app.command("check")
def check(ctx: typer.Context) -> None:
    """Exit 1 with the message a worker would refuse to start with, else 0."""
    adoption = _adoption(ctx)
    if adoption.action_needed:
        fail(mismatch_message(adoption), 1)
    n = sum(q.exists for q in adoption.queues)
    typer.echo(f"ok: {n} existing queue(s) match what Warden declares "
               f"({SETTING}={adoption.mode}); the rest will be created.")


__all__ = ["rabbitmq_app"]

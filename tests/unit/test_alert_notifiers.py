"""Notifiers against real HTTP servers on loopback: Alertmanager's webhook body, Slack's text and
blocks with 429 Retry-After honoured, retries with backoff, failures that say why without the
URL, and the log line."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
import structlog

from celery_warden.alerts.notifiers import (
    LogNotifier,
    SlackNotifier,
    WebhookNotifier,
    alertmanager_message,
    deliver,
    notifiers_from,
)
from celery_warden.alerts.state import ZERO_TIME
from celery_warden.logs.setup import configure_logging
from celery_warden.settings import load_settings
from tests.receiver import receiver

NOTIFICATION = {
    "status": "firing",
    "labels": {"fleet": "warden", "alertname": "CeleryTaskHighFailRate",
               "severity": "critical", "name": "shop.pay"},
    "annotations": {"summary": "Celery high task fail rate.",
                    "description": "50% of tasks of shop.pay failed <!channel> & [i]x[/i]"},
    "startsAt": "2026-01-01T00:00:00Z",
    "endsAt": ZERO_TIME,
    "generatorURL": "",
    "fingerprint": "0123456789abcdef",
    "value": 50.0,
    "reason": "first notification",
}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    logging.captureWarnings(False)


def test_webhook_sends_the_alertmanager_v4_body():
    """Exactly the fields Alertmanager's webhook sends (notify/webhook/webhook.go + template
    Data), with one alert whose fields are Alertmanager's."""
    with receiver() as hook:
        WebhookNotifier(hook.url, timeout=5, external_url="https://warden.example").send(
            NOTIFICATION)
        (body,) = hook.wait(1)
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver",
                         "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
                         "notification_reason", "alerts"}
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["groupKey"] == '{}:{alertname="CeleryTaskHighFailRate"}'
    assert body["groupLabels"] == {"alertname": "CeleryTaskHighFailRate"}
    assert body["externalURL"] == "https://warden.example" and body["truncatedAlerts"] == 0
    (alert,) = body["alerts"]
    assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt",
                          "generatorURL", "fingerprint"}
    assert alert["labels"]["name"] == "shop.pay" and alert["endsAt"] == ZERO_TIME
    assert alertmanager_message(NOTIFICATION)["alerts"][0] == alert


def test_slack_text_is_escaped_and_blocks_are_plain_text():
    """Alert text cannot mention @channel or inject links: `text` escapes &<>, blocks are
    plain_text (never markup)."""
    with receiver() as slack:
        SlackNotifier(slack.url, timeout=5).send(NOTIFICATION)
        (body,) = slack.wait(1)
    assert body["text"].startswith("[FIRING] CeleryTaskHighFailRate (critical)")
    assert "<" not in body["text"]
    texts = [b["text"] for b in body["blocks"] if "text" in b]
    assert all(t["type"] == "plain_text" for t in texts)
    assert "<!channel> & [i]x[/i]" in texts[1]["text"]  # shown literally, not interpreted
    fields = [f["text"] for b in body["blocks"] for f in b.get("fields", [])]
    assert "name: shop.pay" in fields


def test_slack_429_waits_for_retry_after():
    """Slack's rate limit: the 429's Retry-After is honoured before the next attempt."""
    with receiver() as slack:
        slack.answer((429, {"Retry-After": "1"}))
        ok, attempts, _ = deliver(SlackNotifier(slack.url, 5), NOTIFICATION, attempts=3,
                                  backoff=0.01)
        slack.wait(2)
    assert (ok, attempts) == (True, 2)
    assert slack.times[1] - slack.times[0] >= 0.95


def test_retries_back_off_and_a_final_failure_says_why_without_the_url():
    """5xx and connection errors are retried with doubling pauses; a 4xx is final at once; the
    error text never contains the webhook's secret path."""
    with receiver("/hook/s3cr3t-token") as hook:
        hook.answer(500, 502)
        start = time.monotonic()
        ok, attempts, _ = deliver(WebhookNotifier(hook.url, 5), NOTIFICATION, attempts=4,
                                  backoff=0.2)
        assert (ok, attempts) == (True, 3)
        assert time.monotonic() - start >= 0.55  # 0.2 + 0.4
        hook.answer(400)
        ok, attempts, error = deliver(WebhookNotifier(hook.url, 5), NOTIFICATION, attempts=4,
                                      backoff=0.01)
        assert (ok, attempts, error) == (False, 1, "HTTP 400 Bad Request")
        url = hook.url
    ok, attempts, error = deliver(WebhookNotifier(url, 1), NOTIFICATION, attempts=2,
                                  backoff=0.01)
    assert ok is False and attempts == 2
    assert "s3cr3t" not in error and "URLError" in error
    assert WebhookNotifier(url, 1).target.endswith("/hook/***")


def test_log_notifier_writes_one_json_line_at_error_for_critical(restore_logging):
    """With JSON logs a notification is one JSON object; critical firing is ERROR, anything
    else WARNING."""
    stream = io.StringIO()
    configure_logging(load_settings(CELERY_JSON_LOGS="true"), stream=stream)
    LogNotifier().send(NOTIFICATION)
    LogNotifier().send({**NOTIFICATION, "status": "resolved", "endsAt": "2026-01-01T00:05:00Z"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["level"], first["message"], first["alertname"]) == (
        "error", "alert firing", "CeleryTaskHighFailRate")
    assert first["alert_labels"]["name"] == "shop.pay"
    assert (second["level"], second["alert_status"]) == ("warning", "resolved")


def test_notifiers_come_from_settings():
    """Webhook and Slack only when configured; the log unless switched off."""
    names = [n.name for n in notifiers_from(load_settings(
        WARDEN_ALERT_WEBHOOK_URL="http://127.0.0.1:9/x", WARDEN_ALERT_SLACK_URL=
        "https://hooks.slack.com/services/T/B/secret"))]
    assert names == ["webhook", "slack", "log"]
    assert notifiers_from(load_settings(WARDEN_ALERT_LOG="false")) == []

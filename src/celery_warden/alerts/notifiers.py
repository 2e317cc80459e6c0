"""Where notifications go: an Alertmanager-format webhook, Slack, and the log.

* **Webhook** (``WARDEN_ALERT_WEBHOOK_URL``): the body Alertmanager's webhook receiver sends
  (``notify/webhook/webhook.go``: ``version "4"``, ``groupKey``, ``truncatedAlerts``, ``status``,
  ``receiver``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL``,
  ``alerts[]`` with ``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``,
  ``generatorURL``, ``fingerprint``), so receivers written for Alertmanager accept it as is. One
  notification carries one alert, grouped by ``alertname``.
* **Slack** (``WARDEN_ALERT_SLACK_URL``): an incoming webhook with ``text`` (the fallback shown in
  notifications, ``&<>`` escaped so alert text cannot mention ``@channel``) and ``blocks`` whose
  texts are ``plain_text`` (never interpreted as markup). A ``429`` is retried after its
  ``Retry-After``.
* **Log** (``WARDEN_ALERT_LOG``): logger ``celery_warden.alerts``, WARNING (ERROR for a
  critical alert firing), message ``alert firing`` / ``alert resolved`` with the alert's fields
  — one JSON object per line with ``CELERY_JSON_LOGS=true``.

A send raises :class:`NotifyError` saying whether to retry; :func:`deliver` retries with
exponential backoff. Error text never contains the URL (the URL is the credential).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

from celery_warden.alert_settings import mask_webhook_url
from celery_warden.settings import WardenSettings
from celery_warden.version import __version__

logger = logging.getLogger("celery_warden.alerts")
#: Longest ``Retry-After`` honoured (a larger one waits this long, then tries again).
MAX_RETRY_AFTER = 60.0
#: Longest pause between two attempts of exponential backoff.
MAX_BACKOFF = 60.0
#: Receiver name in the Alertmanager payload.
RECEIVER = "celery-warden"


class NotifyError(Exception):
    """A notification was not accepted; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Notifier(Protocol):
    name: str
    #: Where it sends, safe to print (a masked URL).
    target: str

    def send(self, notification: dict[str, Any]) -> None: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is refused, not followed: the payload goes where configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, body: dict[str, Any], timeout: float) -> None:
    """POST JSON; raises :class:`NotifyError` (no URL in its text) unless the answer is 2xx."""
    data = json.dumps(body, separators=(",", ":")).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"celery-warden/{__version__}"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        code = exc.code
        retry_after = None
        if code == 429:
            try:
                retry_after = max(0.0, float(exc.headers.get("Retry-After", "")))
            except ValueError:
                retry_after = None
        retryable = code == 429 or code >= 500
        raise NotifyError(f"HTTP {code} {exc.reason}", retryable, retry_after) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NotifyError(f"{type(exc).__name__}: {reason}") from None


def group_key(labels: dict[str, str]) -> str:
    """Alertmanager's group key for the root route grouped by alertname."""
    return "{}:{alertname=" + json.dumps(labels.get("alertname", "")) + "}"


def alertmanager_message(notification: dict[str, Any], external_url: str = "",
                         receiver: str = RECEIVER) -> dict[str, Any]:
    """The webhook body Alertmanager (version 4) would send for this one alert."""
    labels = dict(notification["labels"])
    alert = {k: notification[k] for k in ("status", "labels", "annotations", "startsAt",
                                          "endsAt", "generatorURL", "fingerprint")}
    return {
        "version": "4",
        "groupKey": group_key(labels),
        "truncatedAlerts": 0,
        "status": notification["status"],
        "receiver": receiver,
        "groupLabels": {"alertname": labels.get("alertname", "")},
        "commonLabels": labels,
        "commonAnnotations": dict(notification["annotations"]),
        "externalURL": external_url,
        "notification_reason": notification.get("reason", ""),
        "alerts": [alert],
    }


class WebhookNotifier:
    name = "webhook"

    def __init__(self, url: str, timeout: float, external_url: str = "") -> None:
        self.url, self.timeout, self.external_url = url, timeout, external_url
        self.target = mask_webhook_url(url)

    def send(self, notification: dict[str, Any]) -> None:
        post_json(self.url, alertmanager_message(notification, self.external_url),
                  self.timeout)


def slack_escape(text: str) -> str:
    """Slack's three control characters in ``text`` (mentions and links need ``<``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(notification: dict[str, Any]) -> dict[str, Any]:
    labels = notification["labels"]
    annotations = notification["annotations"]
    status = notification["status"].upper()
    name = labels.get("alertname", "alert")
    severity = labels.get("severity", "")
    summary = annotations.get("summary", "")
    text = f"[{status}] {name} ({severity}): {summary}"
    fields = [{"type": "plain_text", "text": f"{k}: {v}"[:1900]}
              for k, v in sorted(labels.items()) if k not in ("alertname",)][:10]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{status}: {name}"[:150]}},
        {"type": "section", "text": {"type": "plain_text",
                                     "text": (annotations.get("description") or summary
                                              or name)[:2900]}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append({"type": "context", "elements": [{"type": "plain_text", "text": (
        f"started {notification['startsAt']}"
        + (f", resolved {notification['endsAt']}" if notification["status"] == "resolved"
           else "") + f" · fingerprint {notification['fingerprint']}")[:2900]}]})
    return {"text": slack_escape(text)[:3000], "blocks": blocks}


class SlackNotifier:
    name = "slack"

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self.target = mask_webhook_url(url)

    def send(self, notification: dict[str, Any]) -> None:
        post_json(self.url, slack_message(notification), self.timeout)


class LogNotifier:
    name = "log"
    target = "logger celery_warden.alerts"

    def send(self, notification: dict[str, Any]) -> None:
        labels = notification["labels"]
        status = notification["status"]
        critical = labels.get("severity") == "critical" and status == "firing"
        logger.log(logging.ERROR if critical else logging.WARNING, f"alert {status}", extra={
            "alertname": labels.get("alertname"), "alert_status": status,
            "severity": labels.get("severity"), "alert_labels": labels,
            "alert_annotations": notification["annotations"],
            "value": notification.get("value"), "fingerprint": notification["fingerprint"],
            "starts_at": notification["startsAt"], "ends_at": notification["endsAt"],
            "notification_reason": notification.get("reason"),
        })


def notifiers_from(settings: WardenSettings) -> list[Notifier]:
    found: list[Notifier] = []
    if settings.alert_webhook_url:
        found.append(WebhookNotifier(settings.alert_webhook_url, settings.alert_notify_timeout,
                                     settings.alert_external_url))
    if settings.alert_slack_url:
        found.append(SlackNotifier(settings.alert_slack_url, settings.alert_notify_timeout))
    if settings.alert_log:
        found.append(LogNotifier())
    return found


def deliver(notifier: Notifier, notification: dict[str, Any], attempts: int, backoff: float,
            stop: threading.Event | None = None,
            sleep: Callable[[float], Any] | None = None) -> tuple[bool | None, int, str]:
    """Send with retries: ``(True, attempts, "")`` once accepted, ``(False, attempts, error)``
    when every attempt failed or the error is final, ``(None, ...)`` when ``stop`` was set
    while waiting (the notification stays queued for whoever delivers next)."""
    stop = stop or threading.Event()
    delay = backoff
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            notifier.send(notification)
            return True, attempt, ""
        except NotifyError as exc:
            error = str(exc)
            if not exc.retryable or attempt == attempts:
                return False, attempt, error
            wait = min(exc.retry_after, MAX_RETRY_AFTER) if exc.retry_after is not None \
                else delay
        except Exception as exc:  # a notifier's bug is a failed delivery
            error = f"{type(exc).__name__}: {exc}"
            if attempt == attempts:
                return False, attempt, error
            wait = delay
        delay = min(delay * 2, MAX_BACKOFF)
        if sleep is not None:
            sleep(wait)
        elif stop.wait(wait):
            return None, attempt, error
    return False, attempts, error


__all__ = ["MAX_RETRY_AFTER", "LogNotifier", "Notifier", "NotifyError", "SlackNotifier",
           "WebhookNotifier", "alertmanager_message", "deliver", "group_key",
           "notifiers_from", "post_json", "slack_escape", "slack_message"]

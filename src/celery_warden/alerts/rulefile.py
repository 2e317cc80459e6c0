"""Custom alert rules from a file (``WARDEN_ALERT_RULES=path``, YAML or TOML), checked at start.

The file holds a list ``rules`` (YAML: a top-level list works too). Each item::

    - name: PaymentsSlow            # required; a default rule's name overrides that rule
      metric: task_avg_duration     # see celery_warden.alerts.rules.METRICS
      scope: "payments.*"           # glob over the subject (task name, queue, worker, breaker)
      comparison: ">"               # > >= < <= == !=
      threshold: 5
      window: 10m                   # seconds or 30s / 5m / 2h / 1d (windowed metrics)
      for: 2m                       # how long the condition holds before the alert fires
      severity: critical            # info | warning | critical
      labels: {team: payments}
      annotations: {summary: "Payments are slow", description: "{subject}: {value}s"}
      min_count: 20                 # task metrics: fewer tasks in the window never fire
      aggregate: false              # true: one fleet-wide value over every matching subject
      resolve_threshold: 4          # hysteresis override
      enabled: true

Why fail at start: a rule that silently never evaluates is worse than no rule. Every problem —
a syntax error, an unknown field, metric or comparison, a bad duration — raises
:class:`RuleError` naming the file, the line and the reason, before any evaluation runs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery_warden.alerts.rules import (
    COMPARISONS,
    LABEL_PATTERN,
    METRICS,
    NAME_PATTERN,
    SEVERITIES,
    Rule,
    default_rules,
)
from celery_warden.alerts.ruletext import RuleError, toml_items, yaml_items
from celery_warden.settings import WardenSettings

FIELDS = ("name", "metric", "scope", "comparison", "threshold", "window", "for", "severity",
          "labels", "annotations", "min_count", "aggregate", "resolve_threshold", "enabled")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class FieldError(ValueError):
    """A problem with one field of a rule (``field`` names it, for the line number)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(reason)


def parse_duration(value: Any) -> float:
    """Seconds from a number or ``500ms`` / ``30s`` / ``5m`` / ``2h`` / ``1d`` / ``1w``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 5m, 2h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 30s, 5m, 2h, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def _string_map(value: Any, what: str, keys_like: re.Pattern[str] | None) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise FieldError(what, f"'{what}' must be a mapping of names to text")
    out = {}
    for k, v in value.items():
        if keys_like is not None and not keys_like.match(str(k)):
            raise FieldError(what, f"{what} name {k!r} is invalid (letters, digits and _)")
        if isinstance(v, dict | list) or v is None:
            raise FieldError(what, f"{what} {k!r} must be text")
        out[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(what, f"'{what}' must be a number, got {value!r}")
    return float(value)


def _duration(value: Any, what: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise FieldError(what, f"'{what}': {exc}") from None


def build_rule(item: Mapping[str, Any], base: Rule | None, origin: str,
               retention: int) -> Rule:
    """A :class:`Rule` from one file item, on top of the default rule of the same name.
    Raises ``ValueError`` naming the field (``KeyError`` for an unknown one)."""
    unknown = [k for k in item if k not in FIELDS]
    if unknown:
        raise KeyError(unknown[0])
    name = item.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise FieldError("name", "'name' is required: letters, digits and _.:- (at most 128)")
    changes: dict[str, Any] = {"name": name, "origin": origin}
    if "metric" in item:
        if item["metric"] not in METRICS:
            raise FieldError("metric", f"unknown metric {item['metric']!r}; expected one of "
                             + ", ".join(sorted(METRICS)))
        changes["metric"] = item["metric"]
    elif base is None:
        raise FieldError("metric", "'metric' is required")
    if "threshold" in item:
        changes["threshold"] = _number(item["threshold"], "threshold")
    elif base is None:
        raise FieldError("threshold", "'threshold' is required")
    if "comparison" in item:
        if item["comparison"] not in COMPARISONS:
            raise FieldError("comparison", f"unknown comparison {item['comparison']!r}; "
                             "expected one of " + " ".join(COMPARISONS))
        changes["comparison"] = item["comparison"]
    if "scope" in item:
        if not isinstance(item["scope"], str) or not item["scope"]:
            raise FieldError("scope", "'scope' must be a non-empty glob, e.g. 'payments.*'")
        changes["scope"] = item["scope"]
    if "window" in item:
        window = _duration(item["window"], "window")
        if not 60 <= window <= retention:
            raise FieldError("window", f"'window' must be between 60s and the metric retention "
                             f"({retention}s), got {item['window']!r}")
        changes["window"] = int(window)
    if "for" in item:
        changes["for_"] = _duration(item["for"], "for")
    if "severity" in item:
        if item["severity"] not in SEVERITIES:
            raise FieldError("severity", f"unknown severity {item['severity']!r}; expected one of "
                             + ", ".join(SEVERITIES))
        changes["severity"] = item["severity"]
    if "labels" in item:
        changes["labels"] = _string_map(item["labels"], "labels", LABEL_PATTERN)
    if "annotations" in item:
        changes["annotations"] = _string_map(item["annotations"], "annotations", LABEL_PATTERN)
    if "min_count" in item:
        count = item["min_count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise FieldError("min_count", f"'min_count' must be a whole number >= 0, got {count!r}")
        changes["min_count"] = count
    for flag in ("aggregate", "enabled"):
        if flag in item:
            if not isinstance(item[flag], bool):
                raise FieldError(flag, f"'{flag}' must be true or false, got {item[flag]!r}")
            changes[flag] = item[flag]
    if "resolve_threshold" in item:
        changes["resolve_threshold"] = _number(item["resolve_threshold"], "resolve_threshold")
    rule = dataclasses.replace(base, **changes) if base is not None else Rule(**changes)
    if rule.aggregate and METRICS[rule.metric].subject != "name":
        raise FieldError("aggregate", "'aggregate' applies to task metrics only")
    return rule


def read_rule_file(path: str, defaults: Mapping[str, Rule], retention: int) -> list[Rule]:
    """Every rule of a rules file, each checked; raises :class:`RuleError` at the first
    problem with its line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(path, None, f"cannot read the rules file: {exc}") from None
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        items = yaml_items(path, text)
    elif suffix == ".toml":
        items = toml_items(path, text)
    else:
        raise RuleError(path, None, "expected a .yaml, .yml or .toml file")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for item in items:
        name = item.data.get("name")
        try:
            if isinstance(name, str) and name in seen:
                raise ValueError(f"rule {name!r} is defined twice (first at line {seen[name]})")
            rule = build_rule(item.data, defaults.get(name) if isinstance(name, str) else None,
                              f"{path}:{item.line}", retention)
        except KeyError as exc:
            key = str(exc.args[0])
            raise RuleError(path, item.key_lines.get(key, item.line),
                            f"unknown field {key!r}; expected one of {', '.join(FIELDS)}"
                            ) from None
        except ValueError as exc:
            field = exc.field if isinstance(exc, FieldError) else None
            line = item.key_lines.get(field, item.line) if field else item.line
            label = f"rule {name!r}: " if isinstance(name, str) else ""
            raise RuleError(path, line, f"{label}{exc}") from None
        seen[rule.name] = item.line
        rules.append(rule)
    return rules


def load_rules(settings: WardenSettings) -> list[Rule]:
    """The default rules, the rules file on top (same name = override) and the names in
    ``WARDEN_ALERT_DISABLED`` switched off. Raises :class:`RuleError`."""
    rules = {r.name: r for r in default_rules(settings)}
    if settings.alert_rules:
        for rule in read_rule_file(settings.alert_rules, rules, settings.metrics_retention):
            rules[rule.name] = rule
    for name in settings.disabled_alerts:
        if name in rules:
            rules[name] = dataclasses.replace(rules[name], enabled=False)
    return list(rules.values())


__all__ = [
    "FIELDS",
    "FieldError",
    "RuleError",
    "build_rule",
    "load_rules",
    "parse_duration",
    "read_rule_file",
]

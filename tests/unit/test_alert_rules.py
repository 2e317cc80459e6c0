"""Alert rules: the spec's thresholds by default, each configurable and switchable off, custom
rules from YAML or TOML, and a rules file that cannot be used refused at start with its line."""

from __future__ import annotations

import textwrap

import pytest

from celery_warden.alerts.engine import Evaluator
from celery_warden.alerts.rulefile import RuleError, load_rules, parse_duration
from celery_warden.alerts.rules import METRICS, render
from celery_warden.settings import load_settings

SPEC = {  # the spec's five thresholds: rule name -> (metric, threshold)
    "CeleryTaskHighFailRate": ("task_failure_rate", 10.0),
    "CeleryHighQueueLength": ("queue_depth", 1000.0),
    "CeleryWorkerDown": ("worker_offline_seconds", 120.0),
    "WardenDLQTooLarge": ("dlq_size", 100.0),
    "CeleryTaskDurationAnomaly": ("task_duration_ratio", 2.0),
}


def rules_by_name(**env: object) -> dict:
    return {r.name: r for r in load_rules(load_settings(**env))}


def test_defaults_are_the_spec_thresholds_plus_latency_breakers_and_drops():
    """Out of the box: failure rate > 10 % (per task and fleet-wide, min task count), depth >
    1000, worker offline > 2 min, DLQ > 100, duration >= 2x baseline (average and p95), plus
    queue latency, breaker open and recorder drops — all enabled."""
    rules = rules_by_name()
    for name, (metric, threshold) in SPEC.items():
        assert rules[name].metric == metric and rules[name].threshold == threshold
        assert rules[name].enabled
    assert rules["CeleryTaskHighFailRate"].min_count == 20
    assert rules["CeleryFleetHighFailRate"].aggregate
    assert rules["CeleryTaskP95Anomaly"].metric == "task_p95_ratio"
    assert {"CeleryQueueLatencyHigh", "WardenCircuitBreakerOpen",
            "WardenRecorderDropping"} <= set(rules)
    assert all(r.enabled for r in rules.values())


def test_each_default_threshold_has_a_setting_and_zero_switches_it_off():
    """WARDEN_ALERT_FAILURE_RATE=25 moves the threshold; 0 disables the rule; a rule can also
    be switched off by name."""
    rules = rules_by_name(WARDEN_ALERT_FAILURE_RATE=25, WARDEN_ALERT_QUEUE_DEPTH=0,
                          WARDEN_ALERT_DISABLED="CeleryWorkerDown, WardenRecorderDropping")
    assert rules["CeleryTaskHighFailRate"].threshold == 25
    assert not rules["CeleryHighQueueLength"].enabled
    assert not rules["CeleryWorkerDown"].enabled
    assert not rules["WardenRecorderDropping"].enabled
    assert rules["WardenDLQTooLarge"].enabled


def test_yaml_rules_add_custom_rules_and_override_defaults(tmp_path):
    """A custom rule carries metric, scope, comparison, threshold, window, for, severity,
    labels and annotations; a default's name overrides only the fields given."""
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent("""\
        rules:
          - name: PaymentsSlow
            metric: task_avg_duration
            scope: "payments.*"
            comparison: ">="
            threshold: 5
            window: 10m
            for: 2m
            severity: critical
            labels: {team: payments}
            annotations: {summary: "{subject} takes {value}s"}
          - name: CeleryHighQueueLength
            threshold: 50
            scope: "critical*"
    """))
    rules = rules_by_name(WARDEN_ALERT_RULES=str(path))
    slow = rules["PaymentsSlow"]
    assert (slow.metric, slow.scope, slow.comparison, slow.threshold, slow.window, slow.for_,
            slow.severity) == ("task_avg_duration", "payments.*", ">=", 5.0, 600, 120.0,
                               "critical")
    assert slow.labels == {"team": "payments"} and slow.origin == f"{path}:2"
    assert slow.covers("payments.charge") and not slow.covers("orders.charge")
    depth = rules["CeleryHighQueueLength"]
    assert (depth.metric, depth.threshold, depth.scope) == ("queue_depth", 50.0, "critical*")
    assert render(slow.annotations["summary"], {"subject": "payments.charge", "value": 6.25}) \
        == "payments.charge takes 6.25s"


def test_toml_rules_work_the_same(tmp_path):
    """TOML: an array of [[rules]] tables with nested label tables."""
    path = tmp_path / "rules.toml"
    path.write_text(textwrap.dedent("""\
        [[rules]]
        name = "DefaultQueueBacklog"
        metric = "queue_depth"
        scope = "*default"
        threshold = 200
        for = "30s"

        [rules.labels]
        team = "platform"

        [[rules]]
        name = "WardenDLQTooLarge"
        enabled = false
    """))
    rules = rules_by_name(WARDEN_ALERT_RULES=str(path))
    backlog = rules["DefaultQueueBacklog"]
    assert (backlog.threshold, backlog.for_, dict(backlog.labels)) == (200.0, 30.0,
                                                                      {"team": "platform"})
    assert not rules["WardenDLQTooLarge"].enabled


YAML_ERRORS = [
    ("  - name: A\n    metric: queue_depth\n    threshold: 5\n    colour: red\n", 5,
     "unknown field 'colour'"),
    ("  - name: A\n    metric: queue_size\n    threshold: 5\n", 3, "unknown metric 'queue_size'"),
    ("  - name: A\n    metric: queue_depth\n    threshold: 5\n    comparison: '=>'\n", 5,
     "unknown comparison '=>'"),
    ("  - name: A\n    metric: queue_depth\n    threshold: 5\n    for: soon\n", 5,
     "'for': expected a duration"),
    ("  - name: A\n    metric: task_failure_rate\n    threshold: 5\n    window: 10s\n", 5,
     "'window' must be between 60s"),
    ("  - name: A\n    metric: queue_depth\n", 2, "'threshold' is required"),
    ("  - name: A\n    metric: queue_depth\n    threshold: high\n", 4,
     "'threshold' must be a number"),
    ("  - name: A\n    metric: queue_depth\n    threshold: 1\n    severity: loud\n", 5,
     "unknown severity 'loud'"),
    ("  - name: A\n    metric: queue_depth\n    threshold: 1\n  - name: A\n    metric: dlq_size"
     "\n    threshold: 2\n", 5, "defined twice (first at line 2)"),
    ("  - name: A\n    metric: queue_depth\n    threshold: [1\n", 5, "invalid YAML"),
    ("  - name: A\n    metric: queue_depth\n    threshold: 1\n    labels: {bad-name: x}\n", 5,
     "labels name 'bad-name' is invalid"),
]


@pytest.mark.parametrize(("body", "line", "reason"), YAML_ERRORS)
def test_an_invalid_yaml_rule_fails_with_its_line_and_reason(tmp_path, body, line, reason):
    """Every kind of mistake is reported as path:line: reason (lines counted from 1)."""
    path = tmp_path / "rules.yml"
    path.write_text("rules:\n" + body)
    with pytest.raises(RuleError) as info:
        load_rules(load_settings(WARDEN_ALERT_RULES=str(path)))
    assert info.value.line == line, str(info.value)
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize(("body", "line", "reason"), [
    ('[[rules]]\nname = "A"\nmetric = "queue_depth"\nthreshold = 1\n\n[[rules]]\nname = "B"\n'
     'metric = "queue_depth"\nthreshold = 1\nwindow = "5x"\n', 10, "'window': expected"),
    ('[[rules]]\nname = "A"\nmetric = "queue_depth"\nthreshold = 1\nnope = 3\n', 5,
     "unknown field 'nope'"),
    ('[[rules]]\nname = "A"\nmetric = "queue_depth"\nthreshold = \n', 4, "invalid TOML"),
])
def test_an_invalid_toml_rule_fails_with_its_line_and_reason(tmp_path, body, line, reason):
    """TOML files are checked the same way, lines included."""
    path = tmp_path / "rules.toml"
    path.write_text(body)
    with pytest.raises(RuleError) as info:
        load_rules(load_settings(WARDEN_ALERT_RULES=str(path)))
    assert (info.value.line, reason in info.value.reason) == (line, True), str(info.value)


def test_an_unusable_rules_file_stops_the_evaluator_at_start(tmp_path, settings_factory):
    """The evaluator refuses to start with a bad file (no evaluation with half the rules), and
    a missing file or another format is named as such."""
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - name: A\n    metric: nope\n    threshold: 1\n")
    with pytest.raises(RuleError, match=r"rules.yaml:3: rule 'A': unknown metric"):
        Evaluator(settings_factory(WARDEN_ALERT_RULES=str(bad)))
    with pytest.raises(RuleError, match="cannot read the rules file"):
        load_rules(load_settings(WARDEN_ALERT_RULES=str(tmp_path / "missing.yaml")))
    other = tmp_path / "rules.json"
    other.write_text("{}")
    with pytest.raises(RuleError, match=r"expected a \.yaml, \.yml or \.toml file"):
        load_rules(load_settings(WARDEN_ALERT_RULES=str(other)))


def test_hysteresis_moves_the_clear_threshold_towards_healthy():
    """A failure-rate alert at > 10 % keeps firing until the rate is at or below 9 %; a
    'below' rule clears above its threshold; resolve_threshold overrides."""
    rules = rules_by_name()
    rate = rules["CeleryTaskHighFailRate"]
    assert rate.breached(10.5) and not rate.breached(10.0)
    assert rate.still_breached(9.5, 10.0) and not rate.still_breached(9.0, 10.0)
    from dataclasses import replace

    low = replace(rate, comparison="<", threshold=50.0)
    assert low.clear_threshold(10.0) == 55.0
    assert replace(rate, resolve_threshold=3.0).clear_threshold(10.0) == 3.0


def test_durations_and_metric_catalogue():
    """Durations read as seconds from numbers and units; every metric names its unit."""
    assert [parse_duration(v) for v in (90, "30s", "5m", "2h", "1d", "500ms")] == \
        [90.0, 30.0, 300.0, 7200.0, 86400.0, 0.5]
    with pytest.raises(ValueError):
        parse_duration("-5m")
    assert all(m.unit for m in METRICS.values())


def test_webhook_urls_are_validated_and_never_printed_whole():
    """A bad webhook URL is refused at start without showing its secret path."""
    from celery_warden.errors import SettingsError

    with pytest.raises(SettingsError) as info:
        load_settings(WARDEN_ALERT_SLACK_URL="hooks.slack.com/services/T0/B0/s3cr3tT0k3n")
    assert "s3cr3tT0k3n" not in str(info.value)
    assert "WARDEN_ALERT_SLACK_URL" in str(info.value)

"""The assets under deploy/ stay valid: Prometheus rules pass `promtool check rules` and their
unit tests (`promtool test rules`), the dashboard's queries are valid PromQL, every metric the
rules and the dashboard query is in deploy/metrics.txt (the one list `/metrics` must export),
rule names match Warden's defaults and the celery-mixin, and the compose file, the scrape
config and the KEDA ScaledObject have the structure they document."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from celery_warden.alerts.demand import QueueLoad
from celery_warden.alerts.rules import default_rules
from celery_warden.autoscale import Bounds, decide
from celery_warden.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MIXIN = {"CeleryTaskHighFailRate", "CeleryHighQueueLength", "CeleryWorkerDown"}
#: PromQL words that look like metric names but are not.
_WORD = re.compile(r"\b((?:celery|warden)_[a-z_]+)\b")


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from Debian's `prometheus` package, installed when missing and we are root;
    skipped with the reason elsewhere, failed when CI is set."""
    found = shutil.which("promtool")
    if found is None and hasattr(os, "geteuid") and os.geteuid() == 0 \
            and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # The lock timeout: another test process may be installing a package at the same time.
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq"], env=env,
                       capture_output=True, timeout=300, check=False)
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq",
                        "--no-install-recommends",
                        "prometheus"], env=env, capture_output=True, timeout=600, check=False)
        found = shutil.which("promtool")
    if found is None:
        reason = ("promtool not found: install Debian's `prometheus` package "
                  "(apt-get install prometheus) to validate deploy/prometheus")
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required when CI is set)")
        pytest.skip(reason)
    return found


def rules() -> list[dict]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard_exprs(variables: bool = False) -> list[str]:
    """The panels' PromQL (and, with ``variables``, the template variables' Grafana queries,
    e.g. ``label_values(celery_queue_length, queue_name)``, which are not PromQL)."""
    dash = json.loads((DEPLOY / "grafana" / "warden.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    if variables:
        exprs += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def metrics_list() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / "metrics.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, kind, *_ = line.split()
            out[name] = kind
    return out


def queried(exprs: list[str]) -> set[str]:
    """Metric names in expressions, histogram series folded to their histogram."""
    kinds = metrics_list()
    names = set()
    for expr in exprs:
        for word in _WORD.findall(expr):
            base = re.sub(r"_(bucket|sum|count)$", "", word)
            names.add(base if kinds.get(base) == "histogram" else word)
    return names


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=DEPLOY / "prometheus", capture_output=True, text=True,
                          timeout=120)


def test_rules_pass_promtool_check(promtool):
    """`promtool check rules alerts.yaml` accepts every rule."""
    done = run(promtool, "check", "rules", "alerts.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_rules_pass_their_promtool_unit_tests(promtool):
    """The fixtures fire each alert over its threshold (with its `for`) and not under it."""
    done = run(promtool, "test", "rules", "alerts.test.yaml", "alerts_duration.test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == 2


def test_dashboard_queries_are_valid_promql(promtool, tmp_path):
    """Each dashboard query (Grafana's variables filled in) parses as PromQL."""
    filled = [e.replace("$__rate_interval", "5m").replace("$__range", "1h")
              .replace("$task", ".*").replace("$queue", ".*") for e in dashboard_exprs()]
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(filled)]}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_metric_queried_is_in_the_one_list():
    """deploy/metrics.txt is exactly what the rules and the dashboard query: the later check
    against a real /metrics scrape compares one list."""
    used = queried([r["expr"] for r in rules()]) | queried(dashboard_exprs(variables=True))
    listed = set(metrics_list())
    assert used - listed == set(), "queried but not in deploy/metrics.txt"
    assert listed - used == set(), "listed in deploy/metrics.txt but queried nowhere"
    dash = queried(dashboard_exprs())
    for needed in ("celery_task_failed_total", "celery_task_runtime", "celery_queue_length",
                   "warden_queue_oldest_message_age_seconds", "celery_worker_up",
                   "warden_dlq_size", "warden_breaker_state", "warden_alerts_firing"):
        assert needed in dash, f"the dashboard shows no {needed}"


def test_prometheus_rules_mirror_warden_defaults_and_the_mixin_names():
    """Every default Warden rule has a Prometheus alert of the same name (and no other), the
    celery-mixin's names included, with its severity."""
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    defaults = {r.name: r for r in default_rules(load_settings())}
    assert set(alerts) == set(defaults)
    assert set(alerts) >= MIXIN
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] == defaults[name].severity
        assert rule["annotations"]["summary"] == defaults[name].annotations["summary"]


def test_scrape_config_uses_a_bearer_token_file_not_an_inline_secret():
    """/metrics is scraped with the metrics-scope token read from a file."""
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "scrape.yaml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert "credentials_file" in job["authorization"]
    assert "credentials" not in job["authorization"]
    assert scrape["rule_files"] == ["/etc/prometheus/alerts.yaml"]


def test_compose_file_has_the_documented_stack():
    """Redis, a worker, beat, warden serve, the evaluator, Prometheus (with the rules and the
    scrape config) and Grafana (provisioned with the dashboard); every mounted file exists and
    every port is bound to loopback only. (No Docker engine here: structure only.)"""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "worker", "beat", "warden", "alerts", "prometheus",
                             "grafana"}
    assert services["worker"]["command"][:4] == ["celery", "-A", "app.worker.celery_app",
                                                 "worker"]
    assert services["beat"]["command"][3] == "beat"
    assert services["warden"]["command"][:2] == ["warden", "serve"]
    assert services["alerts"]["command"] == ["warden", "alerts", "run"]
    for name in ("worker", "beat", "warden", "alerts"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert (DEPLOY / "Dockerfile").exists()
    mounts = [v.split(":")[:2] for s in services.values() for v in s.get("volumes", [])
              if v.startswith("./")]
    for source, _ in mounts:
        if "secrets/" not in source:
            assert (DEPLOY / source).exists(), source
    targets = {t for _, t in mounts}
    assert {"/etc/prometheus/alerts.yaml", "/etc/prometheus/prometheus.yml",
            "/var/lib/grafana/dashboards/warden.json", "/etc/grafana/provisioning"} <= targets
    for s in services.values():
        for port in s.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/warden.yaml")
                              .read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_keda_scaled_object_reads_what_the_autoscaler_answers():
    """The metrics-api trigger reads `desired_processes` from /api/v1/autoscale?queue=...,
    a key the autoscaler's answer for one queue has at its top level."""
    docs = list(yaml.safe_load_all((DEPLOY / "keda" / "scaledobject.yaml").read_text()))
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "metrics-api"
    meta = trigger["metadata"]
    assert meta["url"].split("?")[0].endswith("/api/v1/autoscale")
    assert "queue=default" in meta["url"]
    answer = decide(QueueLoad("default", 10, 0, 0, 1.0, 1.0, 0.5, 1),
                    Bounds(1, 10, 30.0, 300.0), [], 0.0)
    assert isinstance(answer[meta["valueLocation"]], int)
    assert any(d["kind"] == "TriggerAuthentication" for d in docs)

"""The task families written straight to text say exactly what prometheus_client's own
families say when built from ``read_totals`` (the totals' reference reader): same samples, same
values, same labels — so the fast path cannot drift from the store's format unnoticed."""

from __future__ import annotations

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from celery_warden.keys import Keys
from celery_warden.read.totals import read_totals
from celery_warden.record.running import TaskBuffer
from celery_warden.record.store import StoreWriter
from celery_warden.serve import totals_text
from celery_warden.serve.totals_text import HISTOGRAMS, TASK_EVENTS, le, task_text
from celery_warden.settings import WardenSettings


class Reference(Collector):
    """celery-exporter's families built the ordinary prometheus_client way."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client, self.keys = client, keys

    def collect(self) -> list[Metric]:
        counters, hists = read_totals(self.client, self.keys)
        labels = ["name", "hostname", "queue_name"]
        fams: dict[str, Metric] = {
            e: CounterMetricFamily(f"celery_task_{e}", d,
                                   labels=[*labels, "exception"] if e == "failed" else labels)
            for e, d in TASK_EVENTS.items()}
        for c in counters:
            extra = [c.exception] if c.event == "failed" else []
            fams[c.event].add_metric([c.name, c.hostname, c.queue, *extra], c.value)
        for metric, (name, doc) in HISTOGRAMS.items():
            fams[metric] = HistogramMetricFamily(name, doc, labels=labels)
        for h in hists:
            fams[h.metric].add_metric([h.name, h.hostname, h.queue],
                                      [(le(b), n) for b, n in h.buckets], sum_value=h.sum)
        return list(fams.values())


def parsed(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {(s.name, tuple(sorted(s.labels.items())), s.value)
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_fast_text_equals_the_prometheus_client_rendering(settings: WardenSettings,
                                                          redis_client: redis.Redis,
                                                          raw_redis: redis.Redis) -> None:
    buf = TaskBuffer(settings)
    for i in range(60):
        # One name with text-format and printf specials: labels are inserted after the numbers.
        name = f"svc.t{i % 7}" if i % 7 else 'svc.100%d"\\n%s'
        host, queue = f"celery@h{i % 3}" if i % 5 else "celery@hôte-ü", ("default", "low")[i % 2]
        buf.total(("sent", name, "client", queue, ""))
        buf.total(("received", name, host, queue, ""))
        outcome = ("succeeded", "failed", "retried")[i % 3]
        exc = ("ValueError", 'Odd"Error\\')[i % 2] if outcome == "failed" else ""
        buf.total((outcome, name, host, queue, exc), runtime=0.001 * (i ** 2))
    StoreWriter(settings, redis_client).write(buf.take()[0])
    keys = Keys(settings.key_prefix)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Reference(redis_client, keys))
    reference = parsed(generate_latest(registry).decode())
    assert len(reference) > 300
    text = task_text(raw_redis, keys)
    assert parsed(text) == reference


def test_hashes_past_the_whole_read_bound_are_read_in_pages(
        settings: WardenSettings, redis_client: redis.Redis, raw_redis: redis.Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``WHOLE_MAX`` fields a hash is walked with ``HSCAN``: the same text, byte for byte."""
    buf = TaskBuffer(settings)
    for i in range(40):
        buf.total(("succeeded", f"svc.t{i % 9}", f"celery@h{i % 4}", "q", ""), runtime=0.01 * i)
    StoreWriter(settings, redis_client).write(buf.take()[0])
    keys = Keys(settings.key_prefix)
    whole = task_text(raw_redis, keys)
    monkeypatch.setattr(totals_text, "WHOLE_MAX", 3)
    monkeypatch.setattr(totals_text, "SCAN_COUNT", 5)
    assert task_text(raw_redis, keys) == whole
    assert whole.count("celery_task_runtime_count{") == 36

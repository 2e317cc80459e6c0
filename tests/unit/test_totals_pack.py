"""Histogram totals in both layouts: the packed one (a field per label set) that recorders write
now, and the first one (a field per bucket) that a store upgraded from the previous version holds
and that recorders of that version keep writing during a rolling upgrade. A scrape moves the old
fields into the packed hash exactly once and shows the sum; a name's label-set cap is not used up
by the old recorders re-creating moved sets."""

from __future__ import annotations

import json

import redis
from prometheus_client.parser import text_string_to_metric_families

from celery_warden.keys import Keys
from celery_warden.read.totals import read_totals
from celery_warden.read.totals_pack import pack_histograms
from celery_warden.record import totals
from celery_warden.record.running import TaskBuffer
from celery_warden.record.store import StoreWriter
from celery_warden.serve.totals_text import task_text
from celery_warden.settings import WardenSettings

#: The histogram part of the previous version's ``lua/flush.lua``, verbatim but for the argument
#: plumbing: what an old recorder does to the store. KEYS: old hash, meta; ARGV[1]: JSON list of
#: [metric, name, host, queue, sum, {bucket index: count}]; ARGV[2]: the per-name set cap.
OLD_FLUSH = """
local hkey, meta = KEYS[1], KEYS[2]
local cap_sets = tonumber(ARGV[2])
local SEP = '\\31'
local function admit_set(key, probe, name)
  if redis.call('HEXISTS', key, probe) == 1 then return true end
  if (tonumber(redis.call('HGET', meta, 'n:' .. name)) or 0) >= cap_sets then return false end
  redis.call('HINCRBY', meta, 'n:' .. name, 1)
  return true
end
for _, h in ipairs(cjson.decode(ARGV[1])) do
  local metric, name, host, queue, sum, counts = h[1], h[2], h[3], h[4], h[5], h[6]
  local base = metric .. SEP .. name .. SEP .. host .. SEP .. queue .. SEP
  if host ~= '_other' and not admit_set(hkey, base .. 's', name) then
    host, queue = '_other', '_other'
    base = metric .. SEP .. name .. SEP .. host .. SEP .. queue .. SEP
  end
  for i, k in pairs(counts) do redis.call('HINCRBY', hkey, base .. i, k) end
  redis.call('HINCRBYFLOAT', hkey, base .. 's', sum)
end
"""


def old_recorder(client: redis.Redis, keys: Keys, rows: list[list[object]]) -> None:
    client.eval(OLD_FLUSH, 2, keys.totals_hists, keys.totals_meta, json.dumps(rows),
                totals.MAX_SETS_PER_NAME)


def new_recorder(settings: WardenSettings, client: redis.Redis,
                 runs: list[tuple[str, str, float]]) -> None:
    buf = TaskBuffer(settings)
    for host, queue, runtime in runs:
        buf.total(("succeeded", "svc.a", f"celery@{host}", queue, ""), runtime=runtime)
    StoreWriter(settings, client).write(buf.take()[0])


def runtime_samples(text: str) -> dict[tuple[str, ...], float]:
    """``celery_task_runtime`` samples: (sample name, host, queue, le) -> value."""
    return {(s.name, s.labels["hostname"], s.labels["queue_name"], s.labels.get("le", "")): s.value
            for f in text_string_to_metric_families(text) if f.name == "celery_task_runtime"
            for s in f.samples}


def test_old_layout_is_moved_once_and_added_to_the_packed_sets(
        settings: WardenSettings, redis_client: redis.Redis, raw_redis: redis.Redis) -> None:
    keys = Keys(settings.key_prefix)
    # Host a: new recorders only. Host b: both versions. Host c: the old version only.
    new_recorder(settings, redis_client, [("a", "q", 0.02), ("a", "q", 0.3), ("b", "q", 0.02)])
    old_recorder(redis_client, keys, [
        ["runtime", "svc.a", "b", "q", "0.5", {"1": 2, "7": 1}],  # 0.01 x2, 0.5 x1
        ["runtime", "svc.a", "c", "q", "12.0", {"14": 1}],        # past 10 s: +Inf only
    ])
    reference = read_totals(redis_client, keys)  # both layouts, read-only
    text = task_text(raw_redis, keys)
    assert redis_client.hlen(keys.totals_hists) == 0  # all moved
    assert read_totals(redis_client, keys) == reference  # the same totals, now packed
    got = runtime_samples(text)
    assert got[("celery_task_runtime_count", "a", "q", "")] == 2
    assert got[("celery_task_runtime_count", "b", "q", "")] == 4
    assert got[("celery_task_runtime_bucket", "b", "q", "0.01")] == 2
    assert got[("celery_task_runtime_bucket", "b", "q", "0.025")] == 3
    assert got[("celery_task_runtime_bucket", "b", "q", "0.5")] == 4
    assert got[("celery_task_runtime_sum", "b", "q", "")] == 0.52
    assert got[("celery_task_runtime_bucket", "c", "q", "10.0")] == 0
    assert got[("celery_task_runtime_bucket", "c", "q", "+Inf")] == 1
    assert got[("celery_task_runtime_sum", "c", "q", "")] == 12.0
    # An old recorder still running adds to moved sets: the next scrape moves only that.
    old_recorder(redis_client, keys, [["runtime", "svc.a", "c", "q", "0.25", {"6": 1}]])
    again = runtime_samples(task_text(raw_redis, keys))
    assert again[("celery_task_runtime_count", "c", "q", "")] == 2
    assert again[("celery_task_runtime_bucket", "c", "q", "0.25")] == 1
    assert again[("celery_task_runtime_sum", "c", "q", "")] == 12.25
    assert again[("celery_task_runtime_count", "b", "q", "")] == 4  # nothing counted twice
    assert task_text(raw_redis, keys) == task_text(raw_redis, keys)


def test_moved_sets_rewritten_by_old_recorders_do_not_use_up_the_cap(
        settings: WardenSettings, redis_client: redis.Redis) -> None:
    keys = Keys(settings.key_prefix)
    rows: list[list[object]] = [["runtime", "svc.a", f"h{i}", "q", "0.1", {"5": 1}]
                                for i in range(3)]
    old_recorder(redis_client, keys, rows)
    assert redis_client.hget(keys.totals_meta, "n:svc.a") == "3"
    for _ in range(4):  # a rolling upgrade: scrape, old recorders write the same sets again
        pack_histograms(redis_client, keys)
        old_recorder(redis_client, keys, rows)
    pack_histograms(redis_client, keys)
    assert redis_client.hget(keys.totals_meta, "n:svc.a") == "3"
    _, hists = read_totals(redis_client, keys)
    assert [h.count for h in hists] == [5, 5, 5]


def test_a_new_recorder_counts_a_set_of_the_old_layout_once(
        settings: WardenSettings, redis_client: redis.Redis) -> None:
    """A set the old layout holds is not new to the cap when a new recorder first writes it."""
    keys = Keys(settings.key_prefix)
    old_recorder(redis_client, keys, [["runtime", "svc.a", "a", "q", "0.1", {"5": 1}]])
    new_recorder(settings, redis_client, [("a", "q", 0.1)])
    pack_histograms(redis_client, keys)
    meta = redis_client.hgetall(keys.totals_meta)
    # The runtime set (old, then new) and the counter set `succeeded` (new): one each.
    assert meta["n:svc.a"] == "2"
    _, hists = read_totals(redis_client, keys)
    assert [(h.hostname, h.count) for h in hists] == [("a", 2)]


def test_a_malformed_packed_field_is_left_out(settings: WardenSettings, redis_client: redis.Redis,
                                              raw_redis: redis.Redis) -> None:
    keys = Keys(settings.key_prefix)
    new_recorder(settings, redis_client, [("a", "q", 0.02)])
    sep = totals.SEP
    redis_client.hset(keys.totals_packed, mapping={
        f"runtime{sep}svc.b{sep}a{sep}q": "1 2 x",
        f"runtime{sep}svc.c{sep}a{sep}q": " ".join(["1"] * 15 + ["nan?"]),
        f"runtime{sep}svc.d{sep}a{sep}q": " ".join(["-1"] * 15 + ["0.5"]),
        f"runtime{sep}svc.e{sep}a": " ".join(["1"] * 15 + ["0.5"]),
    })
    text = task_text(raw_redis, keys)
    names = {s.labels["name"] for f in text_string_to_metric_families(text)
             if f.name == "celery_task_runtime" for s in f.samples}
    assert names == {"svc.a"}

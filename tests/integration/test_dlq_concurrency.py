"""Two DLQ processors in separate OS processes drain one DLQ: every entry is requeued exactly once.

This pins the guarantee "concurrent processors never requeue the same entry twice" the way it
matters in production: two ``python`` processes (not threads sharing a client), each with its own
Redis connections and its own Celery producer, released at the same moment by a barrier in
Redis, racing ``DeadLetterQueue.process`` in small batches. The broker is then read directly:
exactly one message per entry, with the deterministic task id ``<entry>-r1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import redis
from celery import Celery

from celery_warden import celery_config
from celery_warden.config import queue_name
from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.headers import DLQ_ENTRY as ENTRY_HEADER
from celery_warden.headers import REQUEUES as REQUEUES_HEADER
from celery_warden.settings import WardenSettings
from tests.support import ROOT, settings_env, wait_for
from tests.unit.test_dlq import broker_messages

ENTRIES = 1_000
PROCESSORS = 2
BATCH = 10

#: One processor: wait at the barrier, then process batches until nothing is left to claim.
PROCESSOR = r"""
import json, sys
from collections import Counter

import redis
from celery import Celery

from celery_warden import celery_config, load_settings
from celery_warden.dlq.store import DeadLetterQueue

name, batch, gate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
settings = load_settings()
app = Celery(f"dlq-processor-{name}", set_as_current=False)
app.conf.update(celery_config(settings))
dlq = DeadLetterQueue(settings, app=app)
with app.connection_for_write() as conn:  # connect before the race, not during it
    conn.ensure_connection(max_retries=3)
dlq.stats()
client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
client.rpush(gate + ":ready", name)
if client.blpop([gate + ":go"], timeout=120) is None:
    sys.exit("never released from the barrier")
totals = Counter()
batches = 0
while True:
    counts = dlq.process(max_items=batch)
    if not counts["claimed"]:
        break
    batches += 1
    totals.update(counts)
print(json.dumps({"name": name, "batches": batches, **totals}))
"""


def _run_processors(settings: WardenSettings, client: redis.Redis) -> list[dict[str, int]]:
    gate = f"{settings.key_prefix}:test:gate"
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESSOR, f"p{i}", str(BATCH), gate],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(PROCESSORS)
    ]
    try:
        wait_for(lambda: client.llen(f"{gate}:ready") == PROCESSORS
                 or any(p.poll() is not None for p in procs),
                 timeout=120, message="both processors at the barrier")
        client.rpush(f"{gate}:go", *["go"] * PROCESSORS)  # one push releases both
        results = []
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, f"processor failed ({p.returncode}):\n{err[-4000:]}"
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def test_two_processes_requeue_each_of_1000_entries_exactly_once(settings, redis_client):
    """1,000 entries, two processor processes racing: 1,000 messages on the broker with 1,000
    distinct ids ``<entry>-r1``, each entry requeued once (status, count, recorded task id),
    none left pending or claimed, and the stats say requeued == 1000."""
    app = Celery(f"dlq-setup-{settings.key_prefix}", set_as_current=False)
    app.conf.update(celery_config(settings))
    dlq = DeadLetterQueue(settings, app=app)
    now = time.time()
    queue = queue_name(settings, "default")
    ids = [f"entry-{i:04d}" for i in range(ENTRIES)]
    for i, entry_id in enumerate(ids):
        dlq.add(DLQEntry(id=entry_id, task_id=entry_id, reason="max_retries", name="t.work",
                         args=[i], kwargs={"n": i}, queue=queue,
                         priority=None if i % 12 == 11 else i % 11,
                         last_failed=now - ENTRIES + i))
    assert dlq.stats()["ready"] == ENTRIES

    results = _run_processors(settings, redis_client)

    totals: Counter[str] = Counter()
    for r in results:
        totals.update({k: v for k, v in r.items() if k != "name"})
    assert totals["requeued"] == ENTRIES, results
    assert totals["claimed"] == ENTRIES, results
    assert totals["failed"] == totals["parked"] == 0, results
    # Both processes really raced: each one requeued part of the DLQ.
    assert all(r.get("requeued", 0) > 0 for r in results), results

    messages = broker_messages(redis_client, settings)
    assert len(messages) == ENTRIES
    task_ids = [m.headers["id"] for m in messages]
    assert len(set(task_ids)) == ENTRIES
    assert set(task_ids) == {f"{e}-r1" for e in ids}
    for m in messages:
        entry_id = m.headers[ENTRY_HEADER]
        assert m.headers["id"] == f"{entry_id}-r1"
        assert m.headers[REQUEUES_HEADER] == 1
        i = int(entry_id.removeprefix("entry-"))
        assert (m.args, m.kwargs) == ([i], {"n": i})

    stats = dlq.stats()
    assert (stats["size"], stats["ready"], stats["claimed"]) == (0, 0, 0)
    assert stats["requeued"] == ENTRIES
    pipe = redis_client.pipeline(transaction=False)
    for entry_id in ids:
        pipe.hmget(dlq.keys.dlq_entry(entry_id), "status", "requeues", "requeued_task_ids",
                   "claim_token")
    for entry_id, (status, requeues, task_ids_json, token) in zip(ids, pipe.execute(),
                                                                  strict=True):
        assert (status, requeues, token) == ("requeued", "1", None), entry_id
        assert json.loads(task_ids_json) == [f"{entry_id}-r1"]
    dlq.redis.close()
    app.close()



def test_racing_processors_with_vanished_malformed_and_discarded_entries(
        settings, redis_client):
    """Two processor processes drain a DLQ in which some entry hashes vanished, some are
    malformed, and the test discards others while the race runs. No processor crashes, no
    entry is published twice, nothing is written under a removed entry's key, every other
    entry is requeued exactly once, the vanished and malformed ones are counted once each, and
    afterwards only the malformed entries are left in the DLQ (size == what a listing skips)."""
    app = Celery(f"dlq-setup-{settings.key_prefix}", set_as_current=False)
    app.conf.update(celery_config(settings))
    dlq = DeadLetterQueue(settings, app=app)
    now = time.time()
    queue = queue_name(settings, "default")
    ids = [f"entry-{i:03d}" for i in range(300)]
    for i, entry_id in enumerate(ids):
        dlq.add(DLQEntry(id=entry_id, task_id=entry_id, reason="max_retries", name="t.work",
                         args=[i], kwargs={}, queue=queue, last_failed=now - 300 + i))
    vanished = set(ids[0::10])
    malformed = set(ids[1::10])
    discarded_during = ids[5::10]
    for entry_id in vanished:
        redis_client.delete(dlq.keys.dlq_entry(entry_id))
    for entry_id in malformed:
        redis_client.hset(dlq.keys.dlq_entry(entry_id), "args", "[not json")

    discarded: set[str] = set()
    gate = f"{settings.key_prefix}:test:gate"

    def discard_while_racing() -> None:
        """Starts once both processors wait at the barrier (they are released right after)."""
        wait_for(lambda: redis_client.llen(f"{gate}:ready") == PROCESSORS, timeout=120,
                 message="both processors at the barrier")
        other = DeadLetterQueue(settings, app=app)
        for entry_id in discarded_during:
            other.discard(entry_id)
            discarded.add(entry_id)
            time.sleep(0.005)
        other.redis.close()

    discarder = threading.Thread(target=discard_while_racing)
    discarder.start()
    try:
        results = _run_processors(settings, redis_client)
    finally:
        discarder.join(130)
    assert discarded == set(discarded_during)

    totals: Counter[str] = Counter()
    for r in results:
        totals.update({k: v for k, v in r.items() if k != "name"})
    assert totals["vanished"] == len(vanished), results
    assert totals["malformed"] == len(malformed), results
    assert totals["failed"] == 0, results

    published = Counter(m.headers[ENTRY_HEADER] for m in broker_messages(redis_client, settings))
    assert max(published.values()) == 1
    assert not set(published) & (vanished | malformed)
    expected = set(ids) - vanished - malformed - discarded
    assert expected <= set(published)
    for entry_id in vanished | discarded:
        assert redis_client.exists(dlq.keys.dlq_entry(entry_id)) == 0, entry_id
    for entry_id in expected:
        assert dlq.get(entry_id).status == "requeued", entry_id

    stats = dlq.stats()
    assert (stats["ready"], stats["claimed"], stats["malformed"]) == (0, 0, len(malformed))
    page = dlq.list_entries(limit=1000)
    assert (list(page), page.skipped) == ([], len(malformed))
    assert dlq.size() == len(malformed)
    dlq.redis.close()
    app.close()

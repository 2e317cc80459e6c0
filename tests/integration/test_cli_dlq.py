"""`warden dlq ...` and `warden errors` as real subprocesses on the test's Redis and prefixes."""

from __future__ import annotations

import time

from celery_warden import DeadLetterQueue, DLQEntry
from celery_warden.dlq.groups import describe
from celery_warden.record.recorder import Recorder
from tests.integration.test_cli_commands import as_json, cli
from tests.support import client_app


def entry(i: int, **kw: object) -> DLQEntry:
    base: dict[str, object] = {
        "id": f"e{i}", "task_id": f"e{i}", "reason": "exception", "name": "fleet.add",
        "args": [i, 1], "kwargs": {}, "queue": None, "exc_type": "ValueError",
        "exc_message": f"bad {i}",
    }
    base.update(kw)
    return DLQEntry(**base)  # type: ignore[arg-type]


def test_dlq_list_show_park_requeue_discard(settings):
    """The DLQ commands list, show, park, force-requeue and discard real entries, and say
    clearly (exit 1) when an entry does not exist."""
    dlq = DeadLetterQueue(settings, app=client_app(settings))
    now = time.time()
    for i in range(3):
        dlq.add(entry(i, queue=f"{settings.queue_prefix}default"))
    dlq.add(entry(9, last_failed=now - 5 * 86400, reason="time_limit"))

    listed = as_json(cli(settings, "dlq", "list", "--json"))
    assert listed["stats"]["size"] == 4
    assert [e["id"] for e in listed["entries"]] == ["e2", "e1", "e0", "e9"]
    only = as_json(cli(settings, "dlq", "list", "--reason", "time_limit", "--json"))
    assert [e["id"] for e in only["entries"]] == ["e9"]

    shown = as_json(cli(settings, "dlq", "show", "e1", "--json"))
    assert shown["args"] == [1, 1] and shown["exc_message"] == "bad 1"
    missing = cli(settings, "dlq", "show", "nope")
    assert missing.returncode == 1 and "no DLQ entry nope" in missing.stderr

    assert cli(settings, "dlq", "park", "e1", "--note", "look at this").returncode == 0
    assert dlq.get("e1").status == "parked"
    refused = cli(settings, "dlq", "requeue", "e1")
    assert refused.returncode == 1, "parked entries need --force"
    forced = cli(settings, "dlq", "requeue", "e1", "--force")
    assert forced.returncode == 0 and forced.stdout.strip() == "e1-r1"
    assert dlq.get("e1").status == "requeued"

    old = cli(settings, "dlq", "discard", "--older-than", "3d")
    assert old.returncode == 0 and old.stdout.strip() == "discarded 1"
    assert dlq.get("e9") is None
    both = cli(settings, "dlq", "discard", "e0", "--older-than", "1d")
    assert both.returncode == 2, "an id and a threshold together is a usage error"


def test_dlq_list_and_show_report_a_malformed_entry(settings, redis_client):
    """An entry hash another writer broke is not shown by `dlq list` but counted there (JSON
    ``skipped``, a note under the table, its id in the warning), and `dlq show` displays it
    marked ``broken`` instead of failing."""
    dlq = DeadLetterQueue(settings, app=client_app(settings))
    for i in range(2):
        dlq.add(entry(i))
    redis_client.hset(dlq.keys.dlq_entry("e1"), "kwargs", "{not json")

    listed = as_json(cli(settings, "dlq", "list", "--json"))
    assert [e["id"] for e in listed["entries"]] == ["e0"]
    assert (listed["skipped"], listed["stats"]["size"]) == (1, 2)
    table = cli(settings, "dlq", "list")
    assert table.returncode == 0
    assert "1 malformed entries not shown" in " ".join(table.stdout.split())
    assert "e1" in table.stderr and "malformed" in table.stderr
    shown = as_json(cli(settings, "dlq", "show", "e1", "--json"))
    assert shown["broken"] == "kwargs: invalid JSON"
    assert shown["exc_message"] == "bad 1"


def test_dlq_process_parks_or_requeues_and_reports_counts(settings):
    """`dlq process --park` parks ready entries; `--requeue` requeues them; counts are JSON."""
    dlq = DeadLetterQueue(settings, app=client_app(settings))
    for i in range(4):
        dlq.add(entry(i, queue=f"{settings.queue_prefix}default"))
    parked = as_json(cli(settings, "dlq", "process", "--max-items", "2", "--park", "--json"))
    assert parked["parked"] == 2 and parked["requeued"] == 0
    requeued = as_json(cli(settings, "dlq", "process", "--json"))
    assert requeued["requeued"] == 2 and requeued["parked"] == 0
    assert dlq.size() == 2, "the two parked entries stay"


def test_errors_command_shows_groups(settings):
    """`warden errors --json` lists the groups the recorder wrote, with their counts."""
    recorder = Recorder(settings)
    for i in range(5):
        try:
            raise KeyError(f"user {i} missing")
        except KeyError as exc:
            recorder.error(describe(exc), "fleet.lookup", f"t{i}", time.time())
    recorder.stop()
    groups = as_json(cli(settings, "errors", "--json", "--window", "1h"))
    assert len(groups) == 1
    assert groups[0]["count"] == 5 and groups[0]["count_in_window"] == 5
    assert groups[0]["task_names"] == {"fleet.lookup": 5}
    bad = cli(settings, "errors", "--window", "soon")
    assert bad.returncode == 2


def test_breakers_command_lists_and_forces(settings):
    """`warden breakers open|reset NAME` changes the fleet-wide state `breakers list` shows."""
    opened = cli(settings, "breakers", "open", "payments-api")
    assert opened.returncode == 0, opened.stderr
    listed = as_json(cli(settings, "breakers", "list", "--json"))
    assert [(b["name"], b["state"]) for b in listed] == [("payments-api", "forced_open")]
    assert cli(settings, "breakers", "reset", "payments-api").returncode == 0
    listed = as_json(cli(settings, "breakers", "list", "--json"))
    assert listed[0]["state"] == "closed"

"""Error groups: message normalisation, fingerprints, the task's own frame, and aggregation of
many failures through the real recorder and Lua flush script into a few groups."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from types import TracebackType

import pytest

from celery_warden.dlq.groups import (
    MAX_TRACEBACK,
    _is_library,
    describe,
    fingerprint,
    innermost_own_frame,
    normalise_message,
)
from celery_warden.keys import Keys
from celery_warden.read.errors import RECENT_TASK_IDS, ErrorGroups
from celery_warden.record.recorder import Recorder
from celery_warden.settings import WardenSettings


@pytest.fixture
def groups(settings: WardenSettings, redis_client) -> ErrorGroups:
    return ErrorGroups(settings, client=redis_client)


# Three failure sites of "the task's own code", each with variable data in the message.
def charge_card(order: int) -> None:
    raise ValueError(f"order {order} for customer {uuid.uuid4()} was declined")


def call_vendor(attempt: int) -> None:
    raise ConnectionError(f"vendor at 10.0.0.{attempt % 250} refused after {attempt} ms")


def parse_payload(token: int) -> None:
    raise KeyError(f"missing field in payload 0x{token:08x}")


def legacy_import(_: int) -> None:
    int("not a number")


CAUSES = [charge_card, call_vendor, parse_payload]


def caught(fn: Callable[[int], object], arg: int) -> BaseException:
    try:
        fn(arg)
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


def library_only(tb: TracebackType | None) -> TracebackType | None:
    """The part of a traceback that starts at the first library frame."""
    while tb is not None and not _is_library(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb


# -- normalisation ---------------------------------------------------------------------------
@pytest.mark.parametrize(("message", "expected"), [
    ("task 3f2b8c1e-9a4d-4e5f-8b6a-1c2d3e4f5a6b failed",
     "task <uuid> failed"),
    ("ids 3F2B8C1E-9A4D-4E5F-8B6A-1C2D3E4F5A6B and 00000000-0000-0000-0000-000000000000",
     "ids <uuid> and <uuid>"),
    ("object at 0x7f3a9c2b1d40 is gone", "object at <hex> is gone"),
    ("sha deadbeefcafe0123456789 mismatch", "sha <hex> mismatch"),
    ("order 12345 has 3 items costing 19.99 and -4 left", "order <n> has <n> items costing <n>"
     " and <n> left"),
    ("connect to 10.0.0.7:5432 failed", "connect to <n>.<n>:<n> failed"),
    ("item42 and v2_name keep their digits", "item42 and v2_name keep their digits"),
    ("nodes node12 and node13 are down", "nodes node12 and node13 are down"),
    ("retry 3x later", "retry 3x later"),
    ("user 'alice.smith@example.com' not found", "user <str> not found"),
    ('key "a-very-long-cache-key-value" missing', "key <str> missing"),
    ("short 'abc' stays", "short 'abc' stays"),
    ("nothing variable here", "nothing variable here"),
])
def test_normalise_message_replaces_variable_parts(message, expected):
    """UUIDs, hex values, numbers and long quoted values become placeholders; words with
    digits and short quoted values stay."""
    assert normalise_message(message) == expected


def test_normalise_message_is_bounded():
    """A huge message is cut to 300 characters after normalisation."""
    assert len(normalise_message("x" * 10_000)) == 300


# -- fingerprints --------------------------------------------------------------------------
def test_fingerprint_is_stable_across_ids_and_numbers():
    """One failure site with different orders, customers and numbers is one fingerprint."""
    prints = {describe(caught(charge_card, n))["fingerprint"] for n in (1, 77, 123456)}
    prints |= {describe(caught(call_vendor, n))["fingerprint"] for n in (1, 300)}
    assert len(prints) == 2


def test_fingerprint_differs_by_type_message_and_frame():
    """Different exception types, message shapes or frames are different groups."""
    base = fingerprint("ValueError", "order 1 declined", "tasks.py:charge")
    assert fingerprint("ValueError", "order 2 declined", "tasks.py:charge") == base
    assert fingerprint("TypeError", "order 1 declined", "tasks.py:charge") != base
    assert fingerprint("ValueError", "order 1 refunded", "tasks.py:charge") != base
    assert fingerprint("ValueError", "order 1 declined", "tasks.py:refund") != base
    assert fingerprint("ValueError", "order 1 declined", "billing.py:charge") != base
    assert len(base) == 16


def test_same_type_raised_in_two_functions_is_two_groups():
    """The same exception type and message from two different functions of the task's own code
    are two groups (the frame is part of the fingerprint)."""

    def first() -> None:
        raise RuntimeError("broken")

    def second() -> None:
        raise RuntimeError("broken")

    a, b = describe(caught(lambda _: first(), 0)), describe(caught(lambda _: second(), 0))
    assert a["frame"] == "test_error_groups.py:first"
    assert b["frame"] == "test_error_groups.py:second"
    assert a["fingerprint"] != b["fingerprint"]


def test_describe_fields():
    """describe() gives the fingerprint, type, normalised and raw message, own frame and a
    traceback text naming the failing function."""
    info = describe(caught(charge_card, 42))
    assert info["exc_type"] == "ValueError"
    assert info["message"] == "order <n> for customer <uuid> was declined"
    assert info["sample_message"].startswith("order 42 for customer ")
    assert info["frame"] == "test_error_groups.py:charge_card"
    assert "charge_card" in info["traceback"]
    assert info["traceback"].rstrip().endswith("was declined")
    assert info["fingerprint"] == fingerprint("ValueError", info["sample_message"],
                                              info["frame"])


def test_describe_keeps_the_end_of_a_long_traceback_text():
    """A traceback text longer than MAX_TRACEBACK keeps its last part (where the error is)."""
    text = "frame\n" * 5000 + "ValueError: the end"
    info = describe(ValueError("x"), None, text)
    assert len(info["traceback"]) == MAX_TRACEBACK
    assert info["traceback"].endswith("ValueError: the end")


# -- own frame -----------------------------------------------------------------------------
def decode_order(raw: str) -> object:
    return json.loads(raw)


def test_innermost_own_frame_skips_library_frames():
    """An error raised deep inside the stdlib is attributed to the task code that called it."""
    exc = caught(lambda _: decode_order("{not json"), 0)
    assert isinstance(exc, json.JSONDecodeError)
    names = [f.name for f in __import__("traceback").extract_tb(exc.__traceback__)]
    assert names[-1] != "decode_order"  # the innermost frame really is json's
    assert innermost_own_frame(exc.__traceback__) == "test_error_groups.py:decode_order"


def test_innermost_own_frame_skips_site_packages_and_warden_frames():
    """Third-party (site-packages) and Warden's own frames are library frames too."""
    from celery_warden.tasks.backoff import Backoff

    def configure() -> None:
        Backoff(factor=0.1)  # raises inside celery_warden/backoff.py

    exc = caught(lambda _: configure(), 0)
    assert innermost_own_frame(exc.__traceback__) == "test_error_groups.py:configure"

    import redis

    def connect() -> None:
        redis.Redis.from_url("notascheme://x")  # raises inside site-packages/redis

    exc = caught(lambda _: connect(), 0)
    assert innermost_own_frame(exc.__traceback__) == "test_error_groups.py:connect"


def test_innermost_own_frame_falls_back_to_the_innermost_frame():
    """A traceback with only library frames reports its innermost frame; none at all is '?'."""
    exc = caught(lambda _: decode_order("{not json"), 0)
    tb = library_only(exc.__traceback__)
    assert tb is not None
    assert innermost_own_frame(tb) == "decoder.py:raw_decode"
    assert innermost_own_frame(None) == "?"


# -- aggregation through the recorder and the Lua flush ------------------------------------
def record_failures(recorder: Recorder, count: int, now: float,
                    ts_of: Callable[[int, float], float] = lambda i, now: now,
                    ) -> dict[int, list[str]]:
    """``count`` failures cycling through the three causes; returns task ids per cause, in
    the order they failed."""
    ids: dict[int, list[str]] = {0: [], 1: [], 2: []}
    for i in range(count):
        cause = i % 3
        info = describe(caught(CAUSES[cause], i))
        task_id = f"task-{i:04d}"
        name = "billing.charge" if cause == 0 and i % 2 else f"t.{CAUSES[cause].__name__}"
        recorder.error(info, name, task_id, ts_of(i, now))
        ids[cause].append(task_id)
    return ids


def test_300_failures_of_3_causes_are_exactly_3_groups(recorder, groups):
    """300 failures from 3 distinct causes flushed through the Lua script: exactly 3 groups,
    100 each, with type, normalised message, frame, task names with counts, the 20 most recent
    task ids newest first, first/last seen and a sample traceback."""
    now = time.time()
    ids = record_failures(recorder, 300, now, lambda i, now: now - 300 + i)
    assert recorder.flush()
    listed = groups.list(limit=50)
    assert len(listed) == 3
    by_type = {g["exc_type"]: g for g in listed}
    assert set(by_type) == {"ValueError", "ConnectionError", "KeyError"}
    assert [g["count"] for g in listed] == [100, 100, 100]
    # Newest first by last occurrence: cause 2 failed last (i = 299), then 1, then 0.
    assert [g["exc_type"] for g in listed] == ["KeyError", "ConnectionError", "ValueError"]

    charge = by_type["ValueError"]
    assert charge["frame"] == "test_error_groups.py:charge_card"
    assert charge["message"] == "order <n> for customer <uuid> was declined"
    assert charge["sample_message"].startswith("order 0 for customer ")
    assert charge["task_names"] == {"billing.charge": 50, "t.charge_card": 50}
    assert charge["first_seen"] == pytest.approx(now - 300)
    assert charge["last_seen"] == pytest.approx(now - 300 + 297)
    assert "charge_card" in charge["sample_traceback"]
    assert "raise ValueError" in charge["sample_traceback"]
    assert by_type["ConnectionError"]["task_names"] == {"t.call_vendor": 100}
    # str(KeyError) quotes the message: a long quoted value, normalised as a whole.
    assert by_type["KeyError"]["message"] == "<str>"

    for cause, exc_type in enumerate(["ValueError", "ConnectionError", "KeyError"]):
        group = by_type[exc_type]
        assert len(group["recent_task_ids"]) == RECENT_TASK_IDS == 20
        assert group["recent_task_ids"] == ids[cause][-20:][::-1]
        assert groups.get(group["fingerprint"]) == group


def test_groups_accumulate_across_flushes(recorder, groups):
    """A second flush adds to the same groups: counts add, first_seen and the sample stay,
    last_seen moves, recent ids are the 20 newest over both flushes, newest first."""
    now = time.time()
    first = record_failures(recorder, 30, now - 100)
    assert recorder.flush()
    second = record_failures(recorder, 6, now)
    assert recorder.flush()
    listed = groups.list()
    assert [g["count"] for g in listed] == [12, 12, 12]
    charge = next(g for g in listed if g["exc_type"] == "ValueError")
    assert charge["first_seen"] == pytest.approx(now - 100)
    assert charge["last_seen"] == pytest.approx(now)
    assert charge["sample_message"].startswith("order 0 ")
    assert charge["recent_task_ids"] == (first[0] + second[0])[-20:][::-1]


def test_per_minute_counts_through_list_window(recorder, groups):
    """Failures are counted per minute: list(window=...) reports ``count_in_window`` from the
    minutes inside the window only, and leaves out groups not seen in it."""
    now = time.time()
    # Half of each cause's failures 30 minutes ago, half now.
    record_failures(recorder, 300, now, lambda i, now: now - 1800 if i < 150 else now)
    # A fourth cause seen only two hours ago.
    old = describe(caught(legacy_import, 0))
    for n in range(7):
        recorder.error(old, "t.old", f"old-{n}", now - 7200)
    assert recorder.flush()

    assert len(groups.list()) == 4
    assert all("count_in_window" not in g for g in groups.list())

    recent = groups.list(window=600)
    assert len(recent) == 3
    assert [g["count_in_window"] for g in recent] == [50, 50, 50]
    assert [g["count"] for g in recent] == [100, 100, 100]

    hour = groups.list(window=3600)
    assert [g["count_in_window"] for g in hour] == [100, 100, 100]

    day = groups.list(window=24 * 3600)
    assert sorted(g["count_in_window"] for g in day) == [7, 100, 100, 100]


def test_minute_counters_are_real_keys_with_exact_counts(recorder, settings, redis_client):
    """Each group's per-minute counter key holds the failures of that minute exactly."""
    now = time.time()
    minute = int(now // 60) * 60
    info = describe(caught(charge_card, 1))
    for i in range(5):
        recorder.error(info, "t.charge", f"a{i}", minute + 1)
    for i in range(2):
        recorder.error(info, "t.charge", f"b{i}", minute - 59)
    assert recorder.flush()
    keys = Keys(settings.key_prefix)
    fp = info["fingerprint"]
    assert redis_client.get(keys.error_group_minute(fp, minute)) == "5"
    assert redis_client.get(keys.error_group_minute(fp, minute - 60)) == "2"
    assert redis_client.ttl(keys.error_group_minute(fp, minute)) > 0


def test_unknown_group_and_empty_store(groups):
    """Nothing recorded: no groups, and an unknown fingerprint reads as None."""
    assert groups.list() == []
    assert groups.list(window=60) == []
    assert groups.get("0123456789abcdef") is None


# -- secrets in failure text ------------------------------------------------------------------
def leak_credentials(_: int) -> None:
    raise ConnectionError("password=hunter2 token=abc url=redis://u:s3cr3t@cache:6379/0")


def test_describe_masks_secrets_in_message_sample_and_traceback():
    """Every text of a group is masked (the normalised message too, which `warden errors`
    shows), and the fingerprint is that of the masked message."""
    exc = caught(leak_credentials, 0)
    info = describe(exc)
    for field in ("message", "sample_message", "traceback"):
        assert "hunter2" not in info[field] and "s3cr3t" not in info[field], field
        assert "token=abc" not in info[field], field
    assert info["sample_message"].startswith("password=[redacted] token=[redacted]")
    assert info["traceback"].rstrip().endswith(
        "ConnectionError: password=[redacted] token=[redacted] "
        "url=redis://u:[redacted]@cache:6379/0")
    assert info["fingerprint"] == fingerprint("ConnectionError", info["sample_message"],
                                              info["frame"])


def leak_a_token(token: str) -> None:
    raise PermissionError(f"gateway refused token={token} for order")


def test_secrets_that_differ_per_call_do_not_split_a_group():
    """One cause failing with a different secret each time is one group, and its fingerprint
    does not depend on any secret (it would otherwise be a searchable hash of it)."""
    infos = [describe(caught(leak_a_token, t)) for t in ("abc", "xyz", "s3cr3t-other")]
    assert len({i["fingerprint"] for i in infos}) == 1
    assert infos[0]["fingerprint"] == fingerprint(
        "PermissionError", "gateway refused token=[redacted] for order", infos[0]["frame"])


def test_groups_stored_unmasked_are_masked_when_read(recorder, groups):
    """A group written before failure text was masked (or by another writer) is masked when
    listed and when fetched."""
    secret = "ConnectionError: password=hunter2 token=abc"
    recorder.error({"fingerprint": "f00d", "exc_type": "ConnectionError", "message": secret,
                    "sample_message": secret, "frame": "x.py:f", "traceback": secret},
                   "t.leak", "id1", time.time())
    recorder.flush()
    (group,) = groups.list(10)
    assert "hunter2" not in json.dumps(group) and "token=abc" not in json.dumps(group)
    assert group["message"] == "ConnectionError: password=[redacted] token=[redacted]"
    assert "hunter2" not in json.dumps(groups.get("f00d"))

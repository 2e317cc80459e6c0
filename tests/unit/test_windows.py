"""Windows: parsing, and bucket keys that cover a window exactly once, without gaps."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from celery_warden.keys import BLOCK, HOUR, MINUTE, Keys, minute_of
from celery_warden.record.windows import (
    MINUTES_ONLY_UP_TO,
    bucket_keys,
    cover,
    fleet_keys,
    parse_window,
)

KEYS = Keys("p")
NAME = "fleet.add"


@pytest.mark.parametrize(
    ("window", "seconds"),
    [
        ("5m", 300), ("1h", 3600), ("24h", 86400), ("7d", 604800), ("1w", 604800),
        ("90", 90), ("90s", 90), (" 15m ", 900), ("1.5h", 5400), ("1 h", 3600),
        (3600, 3600), (60.0, 60), (timedelta(minutes=5), 300), (timedelta(days=7), 604800),
    ],
)
def test_parse_window_valid(window, seconds):
    """Windows given as '5m'/'24h'/'7d', seconds or a timedelta parse to whole seconds."""
    assert parse_window(window) == seconds


@pytest.mark.parametrize("window", ["", "abc", "5x", "-5m", "m5", "5mm", "1h30m", "five"])
def test_parse_window_rejects_garbage(window):
    """Unparseable windows raise ValueError saying what is expected."""
    with pytest.raises(ValueError, match=r"expected a number of seconds or e\.g\. 5m"):
        parse_window(window)


@pytest.mark.parametrize("window", ["30s", "59", 59, 0, timedelta(seconds=10)])
def test_parse_window_rejects_less_than_a_minute(window):
    """Windows shorter than the one-minute resolution are rejected."""
    with pytest.raises(ValueError, match="shortest window is 1 minute"):
        parse_window(window)


def intervals(keys: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, kind) of the period each bucket key covers."""
    out = []
    for key in keys:
        head, _, period = key.rpartition(":")
        start = int(period)
        if head == f"p:m:{NAME}":
            assert start % MINUTE == 0
            out.append((start, start + MINUTE, "m"))
        elif head == f"p:h:{NAME}":
            assert start % HOUR == 0
            out.append((start, start + HOUR, "h"))
        elif head == f"p:m10:{NAME}":
            assert start % BLOCK == 0
            out.append((start, start + BLOCK, "b"))
        else:
            raise AssertionError(f"unexpected key {key}")
    return out


def assert_tiles(keys: list[str], start: float, end: float) -> list[tuple[int, int, str]]:
    """The keys cover [minute_of(start), minute_of(end) + 60) with no gap and no overlap."""
    spans = sorted(intervals(keys))
    assert len(set(keys)) == len(keys), "a bucket is read twice"
    assert spans[0][0] == minute_of(start)
    assert spans[-1][1] == minute_of(end) + MINUTE
    for (_, a_end, _), (b_start, _, _) in itertools.pairwise(spans):
        assert a_end == b_start, "gap or overlap between buckets"
    return spans


BASE = 1_700_000_000.0  # not aligned to a minute or hour
OFFSETS = [0.0, 0.5, 17.25, 59.999, 60.0, 1799.0, 3599.5, 3600.0 - BASE % 3600]


@pytest.mark.parametrize("offset", OFFSETS)
def test_five_minutes_reads_minute_buckets_only(offset):
    """A 5-minute window reads only the 5 or 6 minute buckets that touch it."""
    end = BASE + offset
    start = end - 300
    keys = bucket_keys(KEYS, NAME, start, end)
    spans = assert_tiles(keys, start, end)
    assert {kind for _, _, kind in spans} == {"m"}
    assert len(keys) in (5, 6)


def test_six_hours_is_still_minute_buckets_only():
    """Up to MINUTES_ONLY_UP_TO the window reads minute buckets, never hour roll-ups."""
    end = BASE
    keys = bucket_keys(KEYS, NAME, end - MINUTES_ONLY_UP_TO, end)
    spans = assert_tiles(keys, end - MINUTES_ONLY_UP_TO, end)
    assert {kind for _, _, kind in spans} == {"m"}


@pytest.mark.parametrize("seconds", [24 * HOUR, 7 * 24 * HOUR, 6 * HOUR + 1, 30 * 24 * HOUR])
@pytest.mark.parametrize("offset", OFFSETS)
def test_long_windows_use_hours_plus_edge_minutes(seconds, offset):
    """Long windows read whole hours as roll-ups and only the partial edge hours as minutes."""
    end = BASE + offset
    start = end - seconds
    keys = bucket_keys(KEYS, NAME, start, end)
    spans = assert_tiles(keys, start, end)
    kinds = [kind for _, _, kind in spans]
    assert "h" in kinds
    # minutes only at the edges: m* h+ m*
    text = "".join(kinds)
    assert text.strip("m") == "h" * kinds.count("h")
    leading = len(text) - len(text.lstrip("m"))
    trailing = len(text) - len(text.rstrip("m"))
    assert leading < 60 and 1 <= trailing <= 60
    if seconds == 7 * 24 * HOUR:
        assert len(keys) <= 290


def test_hour_aligned_window():
    """A window starting on an hour boundary has no leading minute buckets."""
    end = 1_700_002_800.0  # a whole hour
    assert end % HOUR == 0
    keys = bucket_keys(KEYS, NAME, end - 24 * HOUR, end)
    spans = assert_tiles(keys, end - 24 * HOUR, end)
    assert spans[0][2] == "h"
    assert [k for _, _, k in spans].count("h") == 24
    assert spans[-1] == (int(end), int(end) + MINUTE, "m")


def test_summary_cover_partitions_the_window_with_aligned_periods() -> None:
    """The cross-name summaries covering a window: every minute of it exactly once, each period
    aligned to its width, hours only past 6 h, and 1 h in at most 24 hashes (not 61)."""
    from celery_warden.keys import BLOCK, HOUR, MINUTE
    from celery_warden.record.windows import summary_cover

    for start in (1_700_000_000.0, 1_700_000_337.5, 1_700_003_599.0):
        for seconds in (300, 3600, 6 * 3600, 24 * 3600 + 7):
            spans = summary_cover(start, start + seconds)
            minutes = [m for width, t in spans for m in range(t, t + width, MINUTE)]
            first = int(start // MINUTE) * MINUTE
            assert minutes == list(range(first, int((start + seconds) // MINUTE) * MINUTE + 1,
                                         MINUTE))
            assert all(t % width == 0 for width, t in spans)
            if seconds > 6 * 3600:
                assert sum(w == HOUR for w, _ in spans) >= 22
            else:
                assert {w for w, _ in spans} <= {BLOCK, MINUTE}
            if seconds == 3600:
                assert len(spans) <= 24


@pytest.mark.parametrize("seconds", [300, 600, 601, 2220, 3600, 3600 + 17, 5400, 6 * HOUR])
@pytest.mark.parametrize("offset", OFFSETS)
def test_blocks_fill_the_middle_minutes_the_ends(seconds, offset):
    """With blocks (marker at 0) a window up to 6 h reads aligned 10-minute blocks in the middle
    and minutes only at both ends (at most 9 each), whether or not its length is a multiple of
    10 minutes; one hour (61 minutes touched) reads 7-16 hashes, not 61."""
    end = BASE + offset
    start = end - seconds
    keys = bucket_keys(KEYS, NAME, start, end, 0)
    spans = assert_tiles(keys, start, end)
    text = "".join(kind for _, _, kind in spans)
    assert set(text) <= {"m", "b"}
    assert "m" not in text.strip("m"), "minutes only at the ends"
    if "b" in text:  # else fewer than 10 aligned minutes in a row: no block fits
        assert len(text) - len(text.lstrip("m")) <= 9 and len(text) - len(text.rstrip("m")) <= 9
    minutes = (minute_of(end) + MINUTE - minute_of(start)) // MINUTE
    assert text.count("b") == len(range(-(-minute_of(start) // BLOCK) * BLOCK,
                                        minute_of(end) + MINUTE - BLOCK + 1, BLOCK))
    if seconds == 3600:
        assert 7 <= len(keys) <= 16 and minutes == 61
    if seconds >= 2 * BLOCK:
        assert "b" in text


def test_a_block_aligned_window_is_blocks_and_its_last_minute():
    """A window starting on a block boundary starts with a block; the minute holding the end
    is always read as a minute (its block is not over)."""
    end = 1_700_001_000.0  # a multiple of 600
    assert end % BLOCK == 0
    assert cover(end - 3600, end, 0) == [(BLOCK, int(end) - 3600 + i * BLOCK) for i in range(6)] \
        + [(MINUTE, int(end))]


@pytest.mark.parametrize("since_offset", [-7200, -1800, -1500, -60, 0, 600, 7200])
def test_no_block_before_the_marker(since_offset):
    """Blocks start at ``blocks_from`` (``P:blocks:since``): before it minutes, from it blocks;
    ``None`` is minutes only (the cover of earlier versions)."""
    end = BASE + 1234.5
    since = (int(end) // BLOCK) * BLOCK + since_offset
    spans = cover(end - 3600, end, since)
    for width, t in spans:
        if width == BLOCK:
            assert t >= since
    minutes_before = [t for w, t in spans if w == MINUTE and t < since - MINUTE]
    assert all(t < since for t in minutes_before)
    assert [w for w, _ in cover(end - 3600, end, None)] == [MINUTE] * 61
    everything = [m for w, t in spans for m in range(t, t + w, MINUTE)]
    assert everything == list(range(minute_of(end - 3600), minute_of(end) + 1, MINUTE))


@pytest.mark.parametrize("seconds", [6 * HOUR + 1, 24 * HOUR, 7 * 24 * HOUR])
@pytest.mark.parametrize("offset", OFFSETS)
def test_long_windows_use_hours_then_blocks_then_minutes(seconds, offset):
    """Beyond 6 h: whole hours, then blocks, then minutes at each end (m* b* h+ b* m*); 7 days
    in at most ~200 hashes (290 without blocks)."""
    end = BASE + offset
    start = end - seconds
    keys = bucket_keys(KEYS, NAME, start, end, 0)
    text = "".join(kind for _, _, kind in assert_tiles(keys, start, end))
    core = text.strip("m").strip("b")
    assert core == "h" * text.count("h")
    head, tail = text[: text.index("h")], text[text.rindex("h") + 1:]
    assert head == "".join(sorted(head, key="mb".index)) and head.count("m") <= 9
    assert tail == "".join(sorted(tail, key="bm".index)) and tail.count("m") <= 9
    if seconds == 7 * 24 * HOUR:
        assert len(keys) <= 200


def test_fleet_keys_follow_the_same_cover():
    """The fleet-wide keys take the same periods as one name's: minute, block, hour."""
    end = BASE + 2222.0
    fleet = fleet_keys(KEYS, end - 3600, end, 0)
    names = bucket_keys(KEYS, NAME, end - 3600, end, 0)
    assert len(fleet) == len(names)
    assert all(f.rpartition(":")[2] == n.rpartition(":")[2] for f, n in zip(fleet, names,
                                                                             strict=True))
    assert {f.rpartition(":")[0] for f in fleet} == {"p:fm", "p:fm10"}

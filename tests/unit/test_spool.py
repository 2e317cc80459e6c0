"""The spool: what a process buffered survives its death and is replayed exactly once."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import redis

from celery_warden import CeleryMonitor
from celery_warden.keys import Keys
from celery_warden.read.totals import read_totals
from celery_warden.record.recorder import EXIT_DEADLINE, Recorder
from celery_warden.record.spool import Spool, frame, read_entries, spool_dir
from celery_warden.record.store import StoreWriter
from tests.unit.test_recorder import Switch, dead_writer
from tests.unit.test_totals import FakeRun


@pytest.fixture
def spool_settings(settings_factory, tmp_path: Path):
    return settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / "spool"))


class FactRun(FakeRun):
    def facts(self) -> tuple[object, ...]:
        return (self.queue, self.worker, 123, 1.0e9, None, 0, 0, self.wait, self.counts_received)


def spooling(settings, made: list[Recorder], **kw: object) -> Recorder:
    r = Recorder(settings, **kw)  # type: ignore[arg-type]
    r.stop()  # no thread: every flush is explicit
    r.restart()
    r._stopping.set()  # keep the thread from starting on the first record
    assert r.enable_spool()
    made.append(r)
    return r


def finish(r: Recorder, n: int, outcome: str = "success", start: int = 0,
           kind: type[FakeRun] | None = None) -> list[str]:
    ids = []
    for i in range(start, start + n):
        run = (kind or FactRun)("t.work", "celery@host-a", "q1", 0.5)
        tid = f"task-{i}"
        r.begin(tid, run)
        final: dict[str, object] = {"state": outcome.upper(), "finished": 1.0e9 + 1}
        r.end(tid, run, "t.work", final, 5, outcome, 1.0e9 + 1, 0.01, 0.5)  # type: ignore[arg-type]
        ids.append(tid)
    return ids


def die(r: Recorder) -> None:
    """What SIGKILL leaves: files on disk, the lock released, nothing flushed."""
    assert r._spool is not None
    r._spool.forget()
    r._spool = None


def counts(settings, redis_client) -> dict[str, int]:
    got, _ = read_totals(redis_client, Keys(settings.key_prefix))
    return {c.event: c.value for c in got}


def replayer(settings, made: list[Recorder]) -> Recorder:
    r = Recorder(settings)
    r.stop()
    made.append(r)
    return r


def test_killed_before_any_flush_everything_is_replayed_once(spool_settings, recorders,
                                                             redis_client):
    dead = spooling(spool_settings, recorders)
    ids = finish(dead, 30)
    die(dead)
    assert counts(spool_settings, redis_client) == {}
    report = replayer(spool_settings, recorders).replay_dead()
    assert report is not None and report.entries == 30 and report.kept == 0
    assert counts(spool_settings, redis_client) == {"received": 30, "started": 30, "succeeded": 30}
    monitor = CeleryMonitor(spool_settings)
    status = monitor.get_task_status(ids[0])
    assert status["state"] == "SUCCESS" and status["worker"] == "celery@host-a"
    # A second start finds nothing left.
    again = replayer(spool_settings, recorders).replay_dead()
    assert again is not None and again.entries == 0
    assert counts(spool_settings, redis_client) == {"received": 30, "started": 30, "succeeded": 30}
    assert not list((Path(spool_dir(spool_settings.spool_dir, spool_settings.key_prefix)
                          or "")).glob("*"))


class OldFactRun(FactRun):
    """What an older version spooled: 8 facts, its worker main process having counted the
    receipt already."""

    def facts(self) -> tuple[object, ...]:
        return super().facts()[:8]


def test_an_older_versions_spool_replays_without_counting_the_receipt_again(
        spool_settings, recorders, redis_client) -> None:
    dead = spooling(spool_settings, recorders)
    finish(dead, 4, kind=OldFactRun)
    die(dead)
    report = replayer(spool_settings, recorders).replay_dead()
    assert report is not None and report.entries == 4
    assert counts(spool_settings, redis_client) == {"started": 4, "succeeded": 4}


def test_flushed_but_not_yet_deleted_segment_is_not_counted_again(spool_settings, recorders,
                                                                  redis_client):
    """Killed after Redis applied the batch, before the segment was deleted."""
    dead = spooling(spool_settings, recorders)
    finish(dead, 10)
    segments_before = dead._spool.segments()  # type: ignore[union-attr]
    kept = [p.read_bytes() for p in segments_before]
    assert dead.flush() is True
    assert counts(spool_settings, redis_client) == {"received": 10, "started": 10, "succeeded": 10}
    # Put the applied segment (with its marker) back, as if the process died before deleting.
    for path, data in zip(segments_before, kept, strict=True):
        path.write_bytes(data + frame(("M", 1, 1, dead.flusher.writer_id)))
    finish(dead, 5, start=10)  # and these were never flushed
    die(dead)
    report = replayer(spool_settings, recorders).replay_dead()
    assert report is not None and report.kept == 0
    assert counts(spool_settings, redis_client) == {"received": 15, "started": 15, "succeeded": 15}


def test_replay_waits_for_the_store_and_keeps_the_files(spool_settings, recorders,
                                                        redis_client, settings_factory,
                                                        tmp_path):
    dead = spooling(spool_settings, recorders)
    finish(dead, 4, outcome="failure")
    die(dead)
    down = settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / "spool"),
                            WARDEN_KEY_PREFIX=spool_settings.key_prefix,
                            REDIS_URL="redis://127.0.0.1:1/0")
    report = replayer(down, recorders).replay_dead()
    assert report is not None and report.kept == 1
    report = replayer(spool_settings, recorders).replay_dead()
    assert report is not None and report.entries == 4
    assert counts(spool_settings, redis_client) == {"received": 4, "started": 4, "failed": 4}


def test_a_live_process_spool_is_left_alone(spool_settings, recorders, redis_client):
    alive = spooling(spool_settings, recorders)
    finish(alive, 3)
    report = replayer(spool_settings, recorders).replay_dead()
    assert report is not None and report.entries == 0
    assert alive.flush() is True
    assert counts(spool_settings, redis_client) == {"received": 3, "started": 3, "succeeded": 3}
    assert alive._spool is not None and alive._spool.segments() == []


def test_clean_stop_leaves_no_files(spool_settings, recorders):
    r = spooling(spool_settings, recorders)
    finish(r, 3)
    directory = r._spool.dir  # type: ignore[union-attr]
    r._stopping.clear()
    r.stop()
    assert list(directory.glob("*")) == []


def test_a_spool_given_up_is_not_replayed_after_its_records_were_written(
        spool_settings, recorders, redis_client):
    """A write fails (a full disk): the process logs, keeps its records in memory and drops its
    current segment — every change in it is still buffered and gets written — so when the
    process is gone, the next start does not apply that segment a second time."""
    import errno

    r = spooling(spool_settings, recorders)
    finish(r, 2)
    spool = r._spool
    assert spool is not None and spool.segments()

    def full(entry: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    spool.append = full  # type: ignore[method-assign]
    finish(r, 1, start=2)
    assert r._spool is None and spool.segments() == []
    finish(r, 3, start=3)
    assert r.flush() is True
    spool.forget()  # the process is gone: its lock is released
    report = replayer(spool_settings, recorders).replay_dead()
    assert report is not None and report.entries == 0
    assert counts(spool_settings, redis_client) == {"received": 6, "started": 6, "succeeded": 6}


def on_disk(r: Recorder) -> tuple[int, int, int]:
    """(segment files, their bytes, task ends in them) in this recorder's spool directory."""
    paths = list(r.flusher.segments.paths)
    current = r._spool.segment_path(r._spool._segment)  # type: ignore[union-attr]
    if current.exists():
        paths.append(current)
    ends = sum(1 for p in paths for e in read_entries(p) if e[0] == "E")
    return len(paths), sum(p.stat().st_size for p in paths), ends


def test_a_long_outage_keeps_the_spool_within_its_bound(settings_factory, tmp_path,
                                                        recorders, redis_client, caplog):
    """One segment per failed flush, for as long as the store is away: at most
    WARDEN_SPOOL_MAX_MB of them stay (the oldest go, said once); what the buffer holds is
    still written when the store answers, and nothing is left on disk after."""
    s = settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / "spool"), WARDEN_SPOOL_MAX_MB=1,
                         WARDEN_BUFFER_SIZE=2000)
    switch = Switch(dead_writer(s))
    r = spooling(s, recorders, writer_factory=lambda: switch)
    largest = 0
    with caplog.at_level(logging.WARNING, logger="celery_warden.recorder"):
        for k in range(40):  # 12,000 tasks: ~2 MB of spool at ~170 B each
            finish(r, 300, start=300 * k)
            assert r.flush() is False
            files, size, _ = on_disk(r)
            largest = max(largest, size // max(files, 1))
            assert size <= 1024 * 1024 + 2 * largest
    shed = [m for m in caplog.messages if "spool reached its bound" in m]
    assert len(shed) == 1, "said once per outage"
    assert r.flusher.segments.bytes <= 1024 * 1024
    switch.target = StoreWriter(s)
    assert r.flush() is True
    assert counts(s, redis_client)["succeeded"] == 12_000, "the totals stay exact"
    assert r.stats()["written"] == 2000, "task records: the buffer's newest 2,000"
    assert on_disk(r)[0] == 0


def test_killed_during_a_long_outage_replays_what_the_bound_kept(settings_factory, tmp_path,
                                                                 recorders, redis_client,
                                                                 monkeypatch):
    """Segments deleted by the bound are simply not replayed: the replay counts exactly the
    task ends still on disk, once."""
    from celery_warden.record import pending

    monkeypatch.setattr(pending, "MAX_SEGMENTS", 5)
    s = settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / "spool"))
    r = spooling(s, recorders, writer_factory=lambda: dead_writer(s))
    for k in range(12):
        finish(r, 10, start=10 * k)
        assert r.flush() is False
    files, _, ends = on_disk(r)
    assert files == 5 and ends == 50
    finish(r, 3, start=500)  # in the current segment, never taken
    die(r)
    report = replayer(s, recorders).replay_dead()
    assert report is not None and report.kept == 0
    assert counts(s, redis_client) == {"received": 53, "started": 53, "succeeded": 53}


def test_torn_tail_is_ignored(tmp_path: Path):
    path = tmp_path / "x.0.seg"
    path.write_bytes(frame(("S", "a", 1)) + frame(("S", "b", 2))[:-3])
    assert list(read_entries(path)) == [("S", "a", 1)]


def test_spool_refuses_a_directory_others_can_read(tmp_path: Path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    assert Spool(shared, "w1").open() is False
    assert spool_dir("off", "p") is None
    assert spool_dir("", "a/b:c").name == "a_b_c"  # type: ignore[union-attr]


class StuckStore:
    """A store that never answers (until the test releases it, then fails like one that is
    gone); the first ``refused`` calls fail at once, as a refused connection does."""

    def __init__(self, refused: int = 0) -> None:
        self.release = threading.Event()
        self.refused = refused

    def apply(self, chunk: object) -> int:
        if self.refused:
            self.refused -= 1
        else:
            self.release.wait(3.0)
        raise redis.ConnectionError("no answer")


def exits_within_the_shared_deadline(r: Recorder) -> None:
    """The shutdown begins, the pool's children take EXIT_DEADLINE, then the exit's stop():
    the whole took one deadline, not two."""
    began = time.monotonic()
    r.begin_exit()  # wakes the flusher: a flush now waits on the store
    time.sleep(EXIT_DEADLINE)  # the pool's children exit meanwhile
    r.stop()
    assert time.monotonic() - began < EXIT_DEADLINE + 0.25


def test_a_workers_exit_flushes_share_one_deadline(spool_settings, recorders):
    """A store that is away and then never answers: the shutdown's first step (the heartbeat's
    last beat) starts one EXIT_DEADLINE for every exit flush of the process, so the exit's own
    stop(), after the pool's children took their time, does not wait a deadline of its own
    again; what is left stays spooled."""
    store = StuckStore(refused=1)
    r = Recorder(spool_settings, writer_factory=lambda: store)
    recorders.append(r)
    assert r.enable_spool()
    try:
        finish(r, 5)
        assert r.flush() is False and r.flusher.away(1.0)
        finish(r, 5, start=5)
        r.flush_within(0.05)  # a flush stuck on the store, as in a sick-store exit
        exits_within_the_shared_deadline(r)
        spool = Path(spool_settings.spool_dir) / spool_settings.key_prefix
        assert any(spool.glob("*.seg")), "what was not written stays on disk for a replay"
    finally:
        store.release.set()


def test_a_store_that_stops_answering_at_the_shutdown_shares_the_deadline_too(spool_settings,
                                                                            recorders):
    """No flush failed before the shutdown, but the one it started has been waiting on the
    store since: the store is away all the same."""
    store = StuckStore()
    r = Recorder(spool_settings, writer_factory=lambda: store)
    recorders.append(r)
    assert r.enable_spool()
    try:
        finish(r, 5)
        exits_within_the_shared_deadline(r)
    finally:
        store.release.set()


def test_a_healthy_store_gets_the_exit_its_full_deadline(spool_settings, recorders,
                                                         redis_client):
    """The shared exit deadline is for a store that is away: with a healthy one, the exit's
    last flush is not cut short however long the shutdown took before it."""

    class Slow(StoreWriter):
        def apply(self, chunk):  # type: ignore[no-untyped-def]
            time.sleep(0.15)
            return super().apply(chunk)

    r = Recorder(spool_settings, writer_factory=lambda: Slow(spool_settings))
    recorders.append(r)
    assert r.enable_spool()
    r.begin_exit()
    time.sleep(EXIT_DEADLINE)  # a threads pool finishing its tasks, say
    finish(r, 5)
    r.stop()
    assert counts(spool_settings, redis_client)["succeeded"] == 5


def test_spooled_dlq_entries_stay_within_the_bound(settings_factory, tmp_path, recorders):
    """A failure storm during a long outage: DLQ entries are spooled up to WARDEN_SPOOL_MAX_MB,
    then refused (the capture logs the entry in full at CRITICAL, as without a spool)."""
    s = settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / "spool"), WARDEN_SPOOL_MAX_MB=1)
    r = spooling(s, recorders)
    entry = {"id": "e", "task_id": "t", "traceback": "x" * 100_000}
    kept = 0
    while r.spool_dlq(entry):
        kept += 1
        assert kept < 50, "never refused"
    assert kept == 11  # 10 entries of ~100 KB stay under 1 MiB, the 11th crosses it
    spool = r._spool
    assert spool is not None and spool.dlq_bytes() < 1024 * 1024 + 101_000
    assert [e[1]["id"] for e in read_entries(spool.dlq_path)] == ["e"] * kept

#!/usr/bin/env python
"""What does ``Warden(app)`` cost a Celery worker? Plain Celery vs Warden, same everything else.

Run: ``.venv/bin/python bench/overhead.py`` (see ``bench/README.md`` for how to read the output).

Why it is built this way:

* **Alternating arms in one run** (plain, warden, plain, warden, ...) on one Redis and one
  machine, so slow drift (CPU frequency, page cache, a noisy neighbour) hits both arms alike; the
  headline is the median of the per-round ratios.
* **Drain throughput, not publish speed**: all ``N`` messages are published while no worker
  consumes; then a fresh ``celery worker --pool=prefork --concurrency=2`` starts and the clock runs
  from the first message leaving the queue to the last acknowledgement. Worker boot (imports,
  forking the pool) is outside the clock.
* **Completion without touching the task**: the no-op task stays a no-op (``ignore_result``) and no
  extra signal receiver is connected in either arm (one would take the plain arm off Celery's
  "no receivers" fast path). Instead this process polls the broker: the queue's priority lists
  (``LLEN``) and kombu's ``unacked`` hash (``HLEN``). With ``acks_late`` a message leaves
  ``unacked`` only after its task returned, so "lists empty and ``unacked`` empty on two
  consecutive polls" is exactly "every task finished". The poll's own commands and bytes are
  counted here and subtracted from the Redis statistics.
* **Redis cost from the server's own counters**: ``INFO commandstats`` (which also counts the
  commands a Lua script runs) and ``total_net_input_bytes``/``total_net_output_bytes``, as deltas
  around each phase, on an isolated embedded ``redis-server`` unless ``--redis-url`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlparse

import psutil
import redis
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from celery_warden.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(ROOT))
from bench import publisher_arm, variants  # noqa: E402
from bench.interval import decided, median_interval  # noqa: E402

#: Targets from the issues, printed next to the measurements (never asserted): drain throughput
#: and worker CPU per task, warden vs plain.
TARGET_RATIO = 0.98
TARGET_CPU_RATIO = 1.03
TARGET_WIRE_PER_TASK = 2.0
TARGET_RECORD_BYTES = 1024

#: kombu's Redis transport: one list per priority step, ``<queue>\x06\x16<step>`` (step 0 is the
#: bare queue name). Probing 0..10 covers every step ``celery_config`` may configure.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = range(11)
#: Commands that are a client round trip of Warden's flusher (the Lua script and its loading).
SCRIPT_COMMANDS = frozenset({"evalsha", "eval", "evalsha_ro", "eval_ro", "script"})
#: Commands the bench itself sends outside the measured windows (never part of a result).
BOOKKEEPING = frozenset({"config"})

ARMS = ("plain", "warden")
#: Share of the machine's CPU used by other processes above which the run is flagged as noisy.
BUSY_WARNING = 0.05


class BenchError(RuntimeError):
    """The benchmark could not run (a worker died, a phase timed out, ...)."""


# -- Redis accounting --------------------------------------------------------------------------


def resp_len(*args: str) -> int:
    """Bytes of one command in RESP2, exactly as redis-py writes it (to subtract our own)."""
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        parts.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
    return sum(len(p) for p in parts)


@dataclass(slots=True)
class Snapshot:
    """Server counters at one instant plus what this process had sent by then."""

    commands: dict[str, int]
    net_in: int
    net_out: int
    own_commands: dict[str, int]
    own_in: int
    own_out: int
    redis_cpu: float | None
    script_usec: int


@dataclass(slots=True)
class Traffic:
    """Redis work between two snapshots, minus the benchmark's own commands and bytes."""

    commands: dict[str, int]
    net_in: int
    net_out: int
    #: Microseconds the server spent running scripts (EVALSHA & co., the commands they run
    #: included): how long Warden's flushes kept the single-threaded server busy.
    script_usec: int

    @property
    def total(self) -> int:
        return sum(self.commands.values())

    @property
    def scripts(self) -> int:
        return sum(n for c, n in self.commands.items() if c in SCRIPT_COMMANDS)

    def as_dict(self) -> dict[str, Any]:
        return {"commands": dict(sorted(self.commands.items())), "total": self.total,
                "script_calls": self.scripts, "script_usec": self.script_usec,
                "net_in": self.net_in, "net_out": self.net_out}


def parse_info(raw: str) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    """``INFO all`` text → (calls by command, microseconds by command, other fields).

    A command's count is ``calls + rejected_calls``: a rejected call still crossed the wire.
    """
    commands: dict[str, int] = {}
    usec: dict[str, int] = {}
    fields: dict[str, str] = {}
    for line in raw.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        if key.startswith("cmdstat_"):
            stats = dict(kv.split("=", 1) for kv in value.split(","))
            name = key[len("cmdstat_"):].lower()
            commands[name] = int(stats.get("calls", 0)) + int(stats.get("rejected_calls", 0))
            usec[name] = int(stats.get("usec", 0))
        else:
            fields[key] = value
    return commands, usec, fields


class Probe:
    """The benchmark's one Redis connection; counts every command and byte it causes."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, decode_responses=True, protocol=2, socket_timeout=30, socket_connect_timeout=5
        )
        # The raw INFO text: its length is what the server counts as output bytes.
        self.client.set_response_callback("INFO", lambda r, **_: r)
        self.client.ping()  # connect (and any client handshake) before the first snapshot
        self.own_commands: Counter[str] = Counter()
        self.own_in = 0
        self.own_out = 0
        _, _, fields = parse_info(self.info("server"))
        self.server = fields
        self.redis_pid = int(fields.get("process_id", 0)) or None
        self._redis_proc: psutil.Process | None = None
        if self.redis_pid:
            with contextlib.suppress(psutil.Error):
                self._redis_proc = psutil.Process(self.redis_pid)
                self._redis_proc.cpu_times()

    def info(self, section: str) -> str:
        """Raw ``INFO <section>`` text (the response callback above leaves it unparsed)."""
        return str(self.client.execute_command("INFO", section))  # type: ignore[no-untyped-call]

    def redis_cpu(self) -> float | None:
        """CPU seconds of the redis-server process (loopback only, so it is on this machine)."""
        if self._redis_proc is None:
            return None
        try:
            t = self._redis_proc.cpu_times()
        except psutil.Error:
            return None
        return t.user + t.system

    def snapshot(self) -> Snapshot:
        # The server counts a request's bytes before running it and its reply's after: so this
        # INFO's request is inside the snapshot, its reply and its own call only in the next one.
        self.own_in += resp_len("INFO", "all")
        raw = self.info("all")
        commands, usec, fields = parse_info(raw)
        snap = Snapshot(
            commands=commands,
            net_in=int(fields["total_net_input_bytes"]),
            net_out=int(fields["total_net_output_bytes"]),
            own_commands=dict(self.own_commands),
            own_in=self.own_in,
            own_out=self.own_out,
            redis_cpu=self.redis_cpu(),
            script_usec=sum(v for k, v in usec.items() if k in SCRIPT_COMMANDS),
        )
        body = len(raw.encode())
        self.own_out += len(f"${body}\r\n") + body + 2
        self.own_commands["info"] += 1
        return snap

    @staticmethod
    def window(a: Snapshot, b: Snapshot) -> Traffic:
        names = set(a.commands) | set(b.commands)
        commands: dict[str, int] = {}
        for name in names:
            if name in BOOKKEEPING:
                continue
            n = b.commands.get(name, 0) - a.commands.get(name, 0)
            n -= b.own_commands.get(name, 0) - a.own_commands.get(name, 0)
            if n:
                commands[name] = n
        return Traffic(
            commands=commands,
            net_in=(b.net_in - a.net_in) - (b.own_in - a.own_in),
            net_out=(b.net_out - a.net_out) - (b.own_out - a.own_out),
            script_usec=b.script_usec - a.script_usec,
        )

    def reset_stats(self) -> None:
        """``CONFIG RESETSTAT`` (isolated server only; results use deltas either way)."""
        self.client.config_resetstat()
        self.own_commands.clear()
        self.own_in = self.own_out = 0

    def depth(self, keys: list[str], unacked: str) -> tuple[int, int]:
        """(messages waiting in ``keys``, messages delivered but not yet acknowledged)."""
        pipe = self.client.pipeline(transaction=False)
        for k in keys:
            pipe.llen(k)
        pipe.hlen(unacked)
        replies = [int(r) for r in pipe.execute()]
        self.own_commands["llen"] += len(keys)
        self.own_commands["hlen"] += 1
        self.own_in += sum(resp_len("LLEN", k) for k in keys) + resp_len("HLEN", unacked)
        self.own_out += sum(len(f":{r}\r\n") for r in replies)
        return sum(replies[:-1]), replies[-1]

    def close(self) -> None:
        self.client.close()


# -- processes ---------------------------------------------------------------------------------


def tree_cpu(procs: list[psutil.Process]) -> tuple[float, float, float, float]:
    """User + system CPU seconds of (the first process, the others, the first process's main
    thread, the others' main threads): the worker's main process, its pool children, the
    consumer's event loop (the rest of the main process is its other threads: Warden's flusher,
    reaper, heartbeat; Celery's timer) and the children's task threads (the rest of a child is
    Warden's flusher thread). Children are read one by one because a parent's
    ``children_user`` only covers children that already exited."""
    main = rest = loop = tasks = 0.0
    for i, p in enumerate(procs):
        try:
            t = p.cpu_times()
            own = sum(th.user_time + th.system_time for th in p.threads() if th.id == p.pid)
        except psutil.Error:
            continue
        if i == 0:
            main += t.user + t.system
            loop = own
        else:
            rest += t.user + t.system
            tasks += own
    return main, rest, loop, tasks


def machine_busy() -> float:
    """CPU seconds all cores of this machine spent busy (not idle, not waiting on I/O)."""
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


class Worker:
    """A ``celery worker`` subprocess in its own session, stopped by pid (never by name)."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.cmd = cmd
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._known: dict[int, psutil.Process] = {}

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            # Own session: a Ctrl-C in the terminal reaches only us; we stop the worker.
            self.process = subprocess.Popen(
                self.cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self._known[self.process.pid] = psutil.Process(self.process.pid)

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise BenchError(f"worker exited early (code {code}):\n{self.log_tail()}")

    def processes(self) -> list[psutil.Process]:
        """The worker's main process and its pool children (remembered for a later kill)."""
        assert self.process is not None
        main = self._known[self.process.pid]
        try:
            kids = main.children(recursive=True)
        except psutil.Error:
            kids = []
        for k in kids:
            self._known.setdefault(k.pid, k)
        return [main, *kids]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (warm shutdown: Warden's last flush happens here), SIGKILL if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.processes()
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL whatever is left of the processes this worker started (by pid)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.processes()
        for proc in self._known.values():
            with contextlib.suppress(psutil.Error):
                if proc.is_running():  # psutil checks the create time: never a reused pid
                    proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


# -- one arm -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Layout:
    """Names shared by both arms: queue, key prefixes, the broker keys the poll reads."""

    redis_url: str
    key_prefix: str
    queue_prefix: str
    broker_key_prefix: str

    @property
    def queue(self) -> str:
        return f"{self.queue_prefix}default"

    @property
    def unacked(self) -> str:
        return f"{self.broker_key_prefix}unacked"

    def priority_keys(self) -> list[str]:
        base = f"{self.broker_key_prefix}{self.queue}"
        return [base if p == 0 else f"{base}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS]


@dataclass(slots=True)
class ArmResult:
    """One drain of one arm: timings, CPU, Redis traffic per phase, Warden's records."""

    arm: str
    round: int
    tasks: int
    drain_seconds: float
    boot_seconds: float
    worker_cpu: float
    main_cpu: float
    loop_cpu: float
    pool_task_cpu: float
    probe_cpu: float
    background_cpu: float
    redis_cpu: float | None
    publish_seconds: float
    publish_cpu: float
    publish: Traffic
    drain: Traffic
    records: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.tasks / self.drain_seconds

    @property
    def background_share(self) -> float:
        """Fraction of the machine's CPU capacity other processes used during the drain."""
        return self.background_cpu / (self.drain_seconds * (psutil.cpu_count() or 1))

    def as_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm, "round": self.round, "tasks": self.tasks,
            "drain_seconds": self.drain_seconds, "throughput": self.throughput,
            "boot_seconds": self.boot_seconds, "worker_cpu_seconds": self.worker_cpu,
            "worker_cpu_per_task": self.worker_cpu / self.tasks,
            "worker_main_cpu_seconds": self.main_cpu,
            "worker_main_thread_cpu_seconds": self.loop_cpu,
            "pool_cpu_seconds": self.worker_cpu - self.main_cpu,
            "pool_task_thread_cpu_seconds": self.pool_task_cpu,
            "bench_poll_cpu_seconds": self.probe_cpu,
            "background_cpu_seconds": self.background_cpu,
            "background_share": self.background_share,
            "redis_cpu_seconds": self.redis_cpu, "publish_seconds": self.publish_seconds,
            "publish_cpu_seconds": self.publish_cpu, "publish_traffic": self.publish.as_dict(),
            "drain_traffic": self.drain.as_dict(), "records": self.records,
        }


class Bench:
    """Runs arms against one Redis; owns every process it starts until :meth:`close`."""

    def __init__(self, args: argparse.Namespace, layout: Layout, probe: Probe, tmp: Path,
                 console: Console, isolated: bool) -> None:
        self.args = args
        self.layout = layout
        self.probe = probe
        self.tmp = tmp
        self.console = console
        self.isolated = isolated
        self.worker: Worker | None = None
        self.publisher: subprocess.Popen[str] | None = None
        #: ``--variant``: the patched copy of the package the Warden arm runs (bench/variants.py).
        self.variant = variants.make(args.variant, tmp) if args.variant else None

    def env(self, arm: str) -> dict[str, str]:
        """Both arms get the same environment except ``BENCH_WARDEN``; inherited ``WARDEN_*``,
        ``CELERY_*`` and ``REDIS_URL`` are dropped so the shell cannot skew one run."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("WARDEN_", "CELERY_", "BENCH_")) and k != "REDIS_URL"}
        env.update({
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "REDIS_URL": self.layout.redis_url,
            "WARDEN_KEY_PREFIX": self.layout.key_prefix,
            "WARDEN_QUEUE_PREFIX": self.layout.queue_prefix,
            "WARDEN_BROKER_KEY_PREFIX": self.layout.broker_key_prefix,
            "BENCH_WARDEN": "1" if arm == "warden" else "0",
            # --base-task: the Warden arm's task is a celery_warden BaseTask (guards, backoff,
            # DLQ hooks); the plain arm stays a plain Celery task.
            "BENCH_BASE_TASK": "1" if arm == "warden" and self.args.base_task else "0",
            # ... and the plain arm's task then gets the same time limits as BaseTask's
            # defaults, so Celery's own per-task timer bookkeeping is in both arms.
            "BENCH_PLAIN_LIMITS": "1" if arm == "plain" and self.args.base_task else "0",
        })
        for item in self.args.env:
            key, _, value = item.partition("=")
            env[key] = value
        if arm == "warden" and self.variant is not None:  # --variant: an ablation, first
            env["PYTHONPATH"] = os.pathsep.join([str(self.variant), env["PYTHONPATH"]])
        return env

    def publish(self, arm: str, tasks: int) -> dict[str, Any]:
        return self.run_client(arm, "publish", tasks)

    def clear_queue(self) -> None:
        """Delete the published messages (the publisher arm runs no worker)."""
        self.probe.client.delete(*self.layout.priority_keys())

    def run_client(self, arm: str, mode: str, tasks: int) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "bench.apps", mode, str(tasks)]
        self.publisher = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env(arm), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True,
        )
        try:
            out, err = self.publisher.communicate(timeout=max(120.0, tasks / 50))
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"publishing {tasks} tasks timed out") from exc
        finally:
            if self.publisher.poll() is None:
                self.publisher.kill()
                self.publisher.wait(10)
        if self.publisher.returncode != 0:
            raise BenchError(f"publisher failed ({self.publisher.returncode}):\n{err[-3000:]}")
        self.publisher = None
        return dict(json.loads(out.strip().splitlines()[-1]))

    def queued_keys(self, tasks: int) -> list[str]:
        """The priority lists that hold the published messages (normally one: every message
        has the default priority); polling only those keeps the poll light."""
        keys = self.layout.priority_keys()
        pipe = self.probe.client.pipeline(transaction=False)
        for k in keys:
            pipe.llen(k)
        sizes = [int(n) for n in pipe.execute()]
        self.probe.own_commands["llen"] += len(keys)  # outside any window; kept consistent
        if sum(sizes) != tasks:
            raise BenchError(f"expected {tasks} queued messages, found {sum(sizes)}: "
                             "is another worker consuming this queue?")
        return [k for k, n in zip(keys, sizes, strict=True) if n]

    def run_arm(self, arm: str, round_no: int, tasks: int) -> ArmResult:
        probe, layout = self.probe, self.layout
        if self.isolated:
            probe.reset_stats()
        p0 = probe.snapshot()
        pub = self.publish(arm, tasks)
        p1 = probe.snapshot()
        keys = self.queued_keys(tasks)

        log = self.tmp / f"worker-{arm}-{round_no}.log"
        cmd = [
            sys.executable, "-m", "celery", "-A", "bench.apps", "worker",
            f"--concurrency={self.args.concurrency}", "--pool=prefork", "-Q", layout.queue,
            "--without-gossip", "--without-mingle", "--loglevel=WARNING",
            f"--hostname=bench-{arm}-{round_no}-{uuid.uuid4().hex[:4]}@localhost",
        ]
        s0 = probe.snapshot()
        self.worker = worker = Worker(cmd, self.env(arm), log)
        spawned = time.perf_counter()
        worker.start()
        interval = self.args.poll_interval / 1000
        boot_deadline = spawned + 120.0
        drain_deadline: float | None = None
        t_first = t_empty = 0.0
        cpu_first = cpu_empty = (0.0, 0.0, 0.0, 0.0)
        own_first = own_empty = sys_first = sys_empty = 0.0
        rcpu_first = rcpu_empty = None
        while True:
            worker.check_alive()
            queued, unacked = probe.depth(keys, layout.unacked)
            now = time.perf_counter()
            if not t_first:
                if queued < tasks or unacked:
                    t_first = now
                    cpu_first = tree_cpu(worker.processes())
                    own_first = time.process_time()
                    sys_first = machine_busy()
                    rcpu_first = probe.redis_cpu()
                    drain_deadline = now + max(120.0, tasks / 20)
                elif now > boot_deadline:
                    raise BenchError(f"worker did not start consuming:\n{worker.log_tail()}")
            elif queued == 0 and unacked == 0:
                if t_empty:
                    break  # empty on two consecutive polls: every task was acknowledged
                t_empty = now
                cpu_empty = tree_cpu(worker.processes())
                own_empty = time.process_time()
                sys_empty = machine_busy()
                rcpu_empty = probe.redis_cpu()
            else:
                t_empty = 0.0
                if drain_deadline is not None and now > drain_deadline:
                    raise BenchError(f"drain timed out ({queued} queued, {unacked} unacked)")
            time.sleep(interval)
        worker.stop()
        self.worker = None
        s1 = probe.snapshot()

        records: dict[str, Any] = {}
        if arm == "warden":
            records = self.sample_records(tasks)
            self.delete_warden_keys()
        redis_cpu = (None if rcpu_first is None or rcpu_empty is None
                     else rcpu_empty - rcpu_first)
        worker_cpu = sum(cpu_empty[:2]) - sum(cpu_first[:2])
        probe_cpu = own_empty - own_first
        # Busy CPU time of the whole machine not spent by the worker, Redis or this process.
        background = max(0.0, (sys_empty - sys_first) - worker_cpu - (redis_cpu or 0.0)
                         - probe_cpu)
        return ArmResult(
            arm=arm, round=round_no, tasks=tasks, drain_seconds=t_empty - t_first,
            boot_seconds=t_first - spawned, worker_cpu=worker_cpu,
            main_cpu=cpu_empty[0] - cpu_first[0], loop_cpu=cpu_empty[2] - cpu_first[2],
            pool_task_cpu=cpu_empty[3] - cpu_first[3],
            probe_cpu=probe_cpu,
            background_cpu=background,
            redis_cpu=redis_cpu, publish_seconds=float(pub["seconds"]),
            publish_cpu=float(pub["cpu"]), publish=Probe.window(p0, p1),
            drain=Probe.window(s0, s1), records=records,
        )

    def sample_records(self, tasks: int) -> dict[str, Any]:
        """MEMORY USAGE of a random sample of task records, plus the ``recent`` index's share
        (a retained record also costs one entry there)."""
        c = self.probe.client
        recent = f"{self.layout.key_prefix}:recent"
        retained = int(c.zcard(recent))
        ids = list(c.zrandmember(recent, self.args.memory_sample) or [])
        pipe = c.pipeline(transaction=False)
        for tid in ids:
            key = f"{self.layout.key_prefix}:task:{tid!s}"
            pipe.memory_usage(key, samples=0)
            pipe.hlen(key)
            pipe.hget(key, "state")
        replies = pipe.execute()
        sizes = [int(n) for n in replies[0::3] if n is not None]
        fields = [int(n) for n in replies[1::3]]
        states = Counter(str(s) for s in replies[2::3])
        index_bytes = int(c.memory_usage(recent, samples=0) or 0)
        return {
            "retained": retained,
            "expected": tasks,
            "sampled": len(sizes),
            "mean_bytes": statistics.fmean(sizes) if sizes else None,
            "min_bytes": min(sizes, default=None),
            "max_bytes": max(sizes, default=None),
            "mean_fields": statistics.fmean(fields) if fields else None,
            "sample_states": dict(states),
            "index_bytes_per_record": index_bytes / retained if retained else None,
        }

    def delete_warden_keys(self) -> None:
        """Drop this run's Warden keys so every warden round starts from the same state."""
        c = self.probe.client
        batch: list[str] = []
        for key in c.scan_iter(match=f"{self.layout.key_prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                c.unlink(*batch)
                batch.clear()
        if batch:
            c.unlink(*batch)

    def delete_broker_keys(self) -> None:
        """With a shared ``--redis-url``: remove the broker keys under this run's own prefix."""
        if not self.layout.broker_key_prefix:
            return
        c = self.probe.client
        keys = list(c.scan_iter(match=f"{self.layout.broker_key_prefix}*", count=1000))
        if keys:
            c.unlink(*keys)

    def close(self) -> None:
        """Stop whatever is still running (on success, error or Ctrl-C)."""
        if self.publisher is not None and self.publisher.poll() is None:
            self.publisher.kill()
            self.publisher.wait(10)
        if self.worker is not None:
            self.worker.kill()
            self.worker = None


# -- reporting ---------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def paired(results: list[ArmResult]) -> list[tuple[ArmResult, ArmResult]]:
    """(plain, warden) of each round."""
    by_round: dict[int, dict[str, ArmResult]] = {}
    for r in results:
        by_round.setdefault(r.round, {})[r.arm] = r
    return [(v["plain"], v["warden"]) for _, v in sorted(by_round.items())
            if "plain" in v and "warden" in v]


def summarise(results: list[ArmResult]) -> dict[str, Any]:
    """Medians over rounds; Warden's share is warden minus plain *within* a round."""
    pairs = paired(results)
    if not pairs:
        return {}

    def arm_median(fn: Any) -> dict[str, float]:
        return {"plain": median([fn(p) for p, _ in pairs]),
                "warden": median([fn(w) for _, w in pairs])}

    def diff_median(fn: Any) -> float:
        return median([fn(w) - fn(p) for p, w in pairs])

    def per_task(value: Any) -> Any:
        return lambda r: value(r) / r.tasks

    ratios = [w.throughput / p.throughput for p, w in pairs]
    cpu_ratios = [(w.worker_cpu / w.tasks) / (p.worker_cpu / p.tasks) for p, w in pairs]
    names = sorted({n for p, w in pairs for r in (p, w)
                    for t in (r.publish, r.drain) for n in t.commands})
    per_command = {}
    for name in names:
        pub = diff_median(per_task(lambda r, n=name: r.publish.commands.get(n, 0)))
        drain = diff_median(per_task(lambda r, n=name: r.drain.commands.get(n, 0)))
        per_command[name] = {"publish": pub, "drain": drain, "total": pub + drain}
    metrics: dict[str, Any] = {}
    for key, fn in {
        "worker_cpu_ms_per_task": per_task(lambda r: r.worker_cpu * 1000),
        "main_cpu_ms_per_task": per_task(lambda r: r.main_cpu * 1000),
        "loop_cpu_ms_per_task": per_task(lambda r: r.loop_cpu * 1000),
        "pool_cpu_ms_per_task": per_task(lambda r: (r.worker_cpu - r.main_cpu) * 1000),
        "pool_task_cpu_ms_per_task": per_task(lambda r: r.pool_task_cpu * 1000),
        "redis_cpu_us_per_task": per_task(lambda r: (r.redis_cpu or 0.0) * 1e6),
        "publish_us_per_task": per_task(lambda r: r.publish_seconds * 1e6),
        "publish_cpu_us_per_task": per_task(lambda r: r.publish_cpu * 1e6),
        "drain_commands_per_task": per_task(lambda r: r.drain.total),
        "drain_wire_script_calls_per_task": per_task(lambda r: r.drain.scripts),
        "drain_script_usec_per_task": per_task(lambda r: r.drain.script_usec),
        "publish_script_usec_per_task": per_task(lambda r: r.publish.script_usec),
        "drain_bytes_in_per_task": per_task(lambda r: r.drain.net_in),
        "drain_bytes_out_per_task": per_task(lambda r: r.drain.net_out),
        "publish_commands_per_task": per_task(lambda r: r.publish.total),
        "publish_wire_script_calls_per_task": per_task(lambda r: r.publish.scripts),
        "publish_bytes_in_per_task": per_task(lambda r: r.publish.net_in),
        "publish_bytes_out_per_task": per_task(lambda r: r.publish.net_out),
        "total_commands_per_task": per_task(lambda r: r.publish.total + r.drain.total),
        "total_wire_script_calls_per_task": per_task(
            lambda r: r.publish.scripts + r.drain.scripts),
        "total_bytes_in_per_task": per_task(lambda r: r.publish.net_in + r.drain.net_in),
        "total_bytes_out_per_task": per_task(lambda r: r.publish.net_out + r.drain.net_out),
    }.items():
        metrics[key] = {**arm_median(fn), "diff": diff_median(fn)}
    records = [w.records for _, w in pairs if w.records]
    mean_bytes = [r["mean_bytes"] for r in records if r.get("mean_bytes") is not None]
    index_bytes = [r["index_bytes_per_record"] for r in records
                   if r.get("index_bytes_per_record") is not None]
    throughput = arm_median(lambda r: r.throughput)
    return {
        "background_share": median([r.background_share for p, w in pairs for r in (p, w)]),
        "rounds": len(pairs),
        "throughput": throughput,
        "ratio_per_round": ratios,
        "ratio_median": median(ratios),
        "ratio_interval": median_interval(ratios),
        "ratio_of_medians": throughput["warden"] / throughput["plain"],
        "cpu_ratio_per_round": cpu_ratios,
        "cpu_ratio_median": median(cpu_ratios),
        "cpu_ratio_interval": median_interval(cpu_ratios),
        "metrics": metrics,
        "commands_attributable_per_task": per_command,
        "record_bytes_mean": median(mean_bytes),
        "record_index_bytes": median(index_bytes),
        "records_retained": [r["retained"] for r in records],
        "targets": {"ratio": TARGET_RATIO, "wire_per_task": TARGET_WIRE_PER_TASK,
                    "record_bytes": TARGET_RECORD_BYTES},
    }


def verdict(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[red]FAIL[/]"


def report(console: Console, results: list[ArmResult], summary: dict[str, Any]) -> None:
    pairs = paired(results)
    t = Table(title="Drain throughput per round (tasks/s)", title_justify="left")
    for col in ("round", "plain", "warden", "warden/plain", "plain CPU ms/task",
                "warden CPU ms/task"):
        t.add_column(col, justify="right")
    for p, w in pairs:
        t.add_row(str(p.round), f"{p.throughput:,.1f}", f"{w.throughput:,.1f}",
                  f"{w.throughput / p.throughput:.3f}",
                  f"{p.worker_cpu / p.tasks * 1000:.3f}", f"{w.worker_cpu / w.tasks * 1000:.3f}")
    tp = summary["throughput"]
    t.add_row("median", f"{tp['plain']:,.1f}", f"{tp['warden']:,.1f}",
              f"{summary['ratio_median']:.3f}", "", "", style="bold")
    console.print(t)

    m = summary["metrics"]
    t = Table(title="Per task (median over rounds; warden - plain paired within a round)",
              title_justify="left")
    t.add_column("metric")
    for col in ("plain", "warden", "warden - plain"):
        t.add_column(col, justify="right")
    t.add_column("target")

    def row(label: str, key: str, fmt: str = "{:.3f}", target: str = "") -> None:
        v = m[key]
        t.add_row(label, fmt.format(v["plain"]), fmt.format(v["warden"]),
                  ("+" if v["diff"] >= 0 else "") + fmt.format(v["diff"]), target)

    wire = m["total_wire_script_calls_per_task"]["diff"]
    row("worker CPU, ms/task (main + pool children)", "worker_cpu_ms_per_task")
    row("  of which worker main process (consumer)", "main_cpu_ms_per_task")
    row("    its main thread (the consumer's event loop)", "loop_cpu_ms_per_task")
    row("  of which pool children (task execution)", "pool_cpu_ms_per_task")
    row("    their task threads (the rest: Warden's flusher)", "pool_task_cpu_ms_per_task")
    if any(r.redis_cpu is not None for r in results):
        row("redis-server CPU, µs/task (drain)", "redis_cpu_us_per_task", "{:.1f}")
    row("drain: server-side commands/task", "drain_commands_per_task", "{:.2f}")
    row("drain: script round trips/task (EVALSHA…)", "drain_wire_script_calls_per_task",
        "{:.4f}")
    row("drain: Redis busy in scripts, µs/task", "drain_script_usec_per_task", "{:.1f}")
    row("drain: bytes in/task (client → redis)", "drain_bytes_in_per_task", "{:.0f}")
    row("drain: bytes out/task (redis → client)", "drain_bytes_out_per_task", "{:.0f}")
    row("publish: server-side commands/task", "publish_commands_per_task", "{:.2f}")
    row("publish: script round trips/task", "publish_wire_script_calls_per_task", "{:.4f}")
    row("publish: Redis busy in scripts, µs/task", "publish_script_usec_per_task", "{:.1f}")
    row("publish: bytes in/task", "publish_bytes_in_per_task", "{:.0f}")
    row("publish: publisher wall µs/task", "publish_us_per_task", "{:.1f}")
    row("publish: publisher CPU µs/task", "publish_cpu_us_per_task", "{:.1f}")
    row("total: server-side commands/task", "total_commands_per_task", "{:.2f}")
    row("total: script round trips/task (Δ = Warden's)", "total_wire_script_calls_per_task",
        "{:.4f}", f"Δ ≤ {TARGET_WIRE_PER_TASK:g} {verdict(wire <= TARGET_WIRE_PER_TASK)}")
    row("total: bytes in/task", "total_bytes_in_per_task", "{:.0f}")
    row("total: bytes out/task", "total_bytes_out_per_task", "{:.0f}")
    console.print(t)

    console.print("Redis commands per task attributable to Warden (warden - plain, median;\n"
                  "server-side: the commands Warden's Lua script runs count too):")
    t = Table()
    for col in ("command", "publish", "drain", "total"):
        t.add_column(col, justify="right" if col != "command" else "left")
    per_cmd = summary["commands_attributable_per_task"]
    for name, v in sorted(per_cmd.items(), key=lambda kv: -abs(kv[1]["total"])):
        if abs(v["total"]) < 0.0005 and abs(v["publish"]) < 0.0005 and abs(v["drain"]) < 0.0005:
            continue
        t.add_row(name, f"{v['publish']:+.4f}", f"{v['drain']:+.4f}", f"{v['total']:+.4f}")
    console.print(t)

    rec = summary["record_bytes_mean"]
    idx = summary["record_index_bytes"]
    samples = [w.records for _, w in pairs if w.records and w.records.get("sampled")]
    have_records = bool(samples) and not math.isnan(rec)
    if have_records:
        t = Table(title="Memory per retained task record (MEMORY USAGE … SAMPLES 0)",
                  title_justify="left")
        t.add_column("measure")
        t.add_column("bytes", justify="right")
        t.add_column("target")
        t.add_row(f"task hash, mean of {samples[0]['sampled']} sampled keys "
                  "(median over rounds)", f"{rec:.0f}",
                  f"≤ {TARGET_RECORD_BYTES} {verdict(rec <= TARGET_RECORD_BYTES)}")
        t.add_row("+ its entry in the <prefix>:recent index", f"{idx:.0f}", "")
        t.add_row("= per retained record, all in", f"{rec + idx:.0f}",
                  f"≤ {TARGET_RECORD_BYTES} {verdict(rec + idx <= TARGET_RECORD_BYTES)}")
        s = samples[-1]
        t.add_row(f"(last round: min {s['min_bytes']}, max {s['max_bytes']}, "
                  f"{s['mean_fields']:.1f} fields, states {s['sample_states']})", "", "")
        console.print(t)
    else:
        console.print("no Warden task records found in this Redis (is WARDEN's REDIS_URL "
                      "another server?): memory not measured", highlight=False)
    retained = summary["records_retained"]
    expected = pairs[0][1].tasks
    console.print(f"records retained per warden round: {retained} (expected {expected} each)",
                  highlight=False)

    ratio = summary["ratio_median"]
    console.print()
    busy = summary["background_share"]
    console.print(f"other processes used {busy:.1%} of this machine's CPU during the drains "
                  "(median)", highlight=False)
    if busy > BUSY_WARNING:
        console.print(
            "[yellow]WARNING: the machine was not idle; throughput and its ratio are skewed by "
            "the other load. CPU per task is the more robust number; re-run on an idle "
            "machine.[/]")
    console.print(
        f"throughput plain {tp['plain']:,.1f} tasks/s, warden {tp['warden']:,.1f} tasks/s "
        f"(median of {summary['rounds']} rounds)", highlight=False)
    console.print(
        "ratio warden/plain per round: "
        + ", ".join(f"{r:.3f}" for r in summary["ratio_per_round"]), highlight=False)
    console.print(
        f"ratio warden/plain (median of per-round ratios): {ratio:.4f}   "
        f"target ≥ {TARGET_RATIO}   {verdict(ratio >= TARGET_RATIO)}   "
        f"(ratio of median throughputs: {summary['ratio_of_medians']:.3f})"
        + decided(summary["ratio_interval"], TARGET_RATIO), highlight=False)
    cpu_ratio = summary["cpu_ratio_median"]
    console.print(
        "worker CPU per task warden/plain per round: "
        + ", ".join(f"{r:.3f}" for r in summary["cpu_ratio_per_round"]), highlight=False)
    console.print(
        f"worker CPU per task warden/plain (median): {cpu_ratio:.4f}   target ≤ "
        f"{TARGET_CPU_RATIO}   {verdict(cpu_ratio <= TARGET_CPU_RATIO)}"
        + decided(summary["cpu_ratio_interval"], TARGET_CPU_RATIO),
        highlight=False)
    console.print(
        f"wire round trips per task from Warden: {wire:.4f}   target ≤ "
        f"{TARGET_WIRE_PER_TASK:g}   {verdict(wire <= TARGET_WIRE_PER_TASK)}   "
        f"(server-side commands: {m['total_commands_per_task']['diff']:+.2f}/task)",
        highlight=False)
    if have_records:
        console.print(
            f"memory per retained record: {rec:.0f} B hash (+{idx:.0f} B index)   target ≤ "
            f"{TARGET_RECORD_BYTES} B   {verdict(rec <= TARGET_RECORD_BYTES)}", highlight=False)


# -- main --------------------------------------------------------------------------------------


def loopback_only(url: str) -> str:
    """Refuse anything but a local Redis: the numbers are only meaningful on this machine."""
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        raise SystemExit("--redis-url: unix sockets are not supported (kombu needs a TCP URL)")
    if parsed.hostname not in {"127.0.0.1", "localhost", "::1"}:
        raise SystemExit(f"--redis-url must point at a loopback address, not {parsed.hostname!r}")
    return url


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Overhead of Warden(app) on a Celery worker: plain vs Warden, alternating.")
    p.add_argument("--tasks", type=int, default=None,
                   help="no-op tasks per arm per round (default 5000; 1000 with --quick)")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds, each one plain and one warden drain and, with the publisher "
                        "arm, one plain and one warden publisher (default 5; 1 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1000 tasks, 1 round, no warm-up (explicit flags still win)")
    p.add_argument("--warmup-tasks", type=int, default=None,
                   help="tasks of an unreported warm-up drain per arm (default 500; 0 = none)")
    p.add_argument("--concurrency", type=int, default=2, help="prefork pool size (default 2)")
    p.add_argument("--publisher-tasks", type=int, default=None,
                   help="delay() calls per arm per round of the publisher arm, no worker "
                        "running (default 10000; 2000 with --quick; 0 = skip the arm)")
    p.add_argument("--redis-url", default=None,
                   help="use this loopback Redis instead of an isolated embedded one; its stats "
                        "are not reset and other clients' traffic would skew the numbers")
    p.add_argument("--json", type=Path, default=None, help="write all results to this file")
    p.add_argument("--memory-sample", type=int, default=200,
                   help="task records to MEMORY USAGE per warden round (default 200)")
    p.add_argument("--poll-interval", type=float, default=5.0,
                   help="milliseconds between queue-depth polls (default 5)")
    p.add_argument("--base-task", action="store_true",
                   help="Warden arm runs the task on celery_warden's BaseTask; the plain arm a "
                        "plain Celery task with the same time limits (like for like)")
    p.add_argument("--variant", default=None, metavar="NAME[,NAME...]",
                   help="the Warden arm runs an ablation of this checkout (bench/variants.py: "
                        f"{', '.join(sorted(variants.PATCHES))}; "
                        "what removing one part of Warden's per-task work would save; not a "
                        "configuration of the product)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for publisher and worker of both arms, e.g. "
                        "WARDEN_TRACK_SENT=false (repeatable)")
    args = p.parse_args(argv)
    args.tasks = args.tasks if args.tasks is not None else (1000 if args.quick else 5000)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    if args.publisher_tasks is None:
        args.publisher_tasks = 2000 if args.quick else 10_000
    if args.warmup_tasks is None:
        args.warmup_tasks = 0 if args.quick else 500
    if args.tasks < 1 or args.rounds < 1 or args.concurrency < 1:
        p.error("--tasks, --rounds and --concurrency must be positive")
    if args.variant:
        try:
            variants.names(args.variant)
        except variants.VariantError as exc:
            p.error(f"--variant: {exc}")
    for item in args.env:
        if "=" not in item:
            p.error(f"--env expects KEY=VALUE, got {item!r}")
    return args


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the clean-up below runs for it too."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="warden-bench-"))
    server: EmbeddedRedis | None = None
    probe: Probe | None = None
    bench: Bench | None = None
    try:
        if args.redis_url:
            url = loopback_only(args.redis_url)
            run_id = uuid.uuid4().hex[:6]
            layout = Layout(url, f"wbench{run_id}", f"wbench{run_id}.", f"wbench{run_id}b:")
        else:
            server = EmbeddedRedis(tmp / "redis", appendonly=False)
            url = server.start()
            # The defaults a real deployment has: prefix "warden", queue "default", no
            # broker key prefix (a prefix would switch kombu to its key-rewriting client).
            layout = Layout(url, "warden", "", "")
        probe = Probe(url)
        bench = Bench(args, layout, probe, tmp, console, isolated=server is not None)
        redis_version = probe.server.get("redis_version", "?")
        console.print(
            f"Redis {redis_version} at {url} ({'embedded, isolated' if server else 'given'}), "
            f"queue {layout.queue!r}, {psutil.cpu_count()} CPUs\n{args.tasks} no-op tasks per "
            f"arm x {args.rounds} rounds, prefork concurrency={args.concurrency}, arms "
            "alternating plain/warden", highlight=False)
        if args.variant:
            console.print(f"[bold]Warden arm: ablation {args.variant!r} (bench/variants.py), "
                          "not the product[/]", highlight=False)
        if args.warmup_tasks:
            for arm in ARMS:
                r = bench.run_arm(arm, 0, args.warmup_tasks)
                console.print(f"warm-up {arm:6}: {r.throughput:8,.1f} tasks/s (not reported)",
                              highlight=False)
        results: list[ArmResult] = []
        publishers: list[publisher_arm.PublishRun] = []
        for round_no in range(1, args.rounds + 1):
            if args.publisher_tasks:
                runs = publisher_arm.run_round(bench, round_no, args.publisher_tasks)
                publishers += runs
                console.print(f"round {round_no}/{args.rounds} publisher: " + ", ".join(
                    f"{r.arm} {r.rate:,.0f} delay()/s" for r in runs), highlight=False)
            for arm in ARMS:
                r = bench.run_arm(arm, round_no, args.tasks)
                results.append(r)
                console.print(
                    f"round {round_no}/{args.rounds} {arm:6}: {r.tasks} tasks drained in "
                    f"{r.drain_seconds:.3f}s = {r.throughput:8,.1f} tasks/s, worker CPU "
                    f"{r.worker_cpu / r.tasks * 1000:.3f} ms/task, other load "
                    f"{r.background_share:.0%}", highlight=False)
        summary = summarise(results)
        summary["publisher"] = publisher_arm.summarise(publishers)
        report(console, results, summary)
        for line in publisher_arm.report_lines(summary["publisher"]):
            console.print(line, highlight=False)
        return {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "redis": {"url": url, "version": redis_version, "embedded": server is not None},
            "layout": {"key_prefix": layout.key_prefix, "queue": layout.queue,
                       "broker_key_prefix": layout.broker_key_prefix},
            "machine": {"cpus": psutil.cpu_count(), "python": sys.version.split()[0]},
            "results": [r.as_dict() for r in results],
            "publisher_results": [r.as_dict() for r in publishers],
            "summary": summary,
        }
    finally:
        if bench is not None:
            bench.close()
            if server is None:
                with contextlib.suppress(redis.RedisError):
                    bench.delete_warden_keys()
                    bench.delete_broker_keys()
        if probe is not None:
            probe.close()
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    width = shutil.get_terminal_size((120, 40)).columns
    console = Console(width=max(width, 120), highlight=False)
    try:
        with sigterm_as_interrupt():
            data = run(args, console)
    except KeyboardInterrupt:
        console.print("interrupted: every process this run started was stopped")
        return 130
    except (BenchError, variants.VariantError) as exc:
        console.print(f"[red]benchmark failed:[/] {escape(str(exc))}", highlight=False)
        return 1
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2, sort_keys=True))
        console.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

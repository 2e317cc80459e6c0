"""Task search pages of two source trees, alternated on one store: before/after.

    git archive <commit> | tar -x -C /tmp/before        # the tree to compare against
    .venv/bin/python bench/search_ab.py --old-src /tmp/before/src --tasks 1000000
    .venv/bin/python bench/search_ab.py --old-src /tmp/before/src --url redis://127.0.0.1:P/0

``--url`` reuses a store filled earlier by :func:`bench.serve_api.fill_store` (prefix ``bench``;
ids to search by are then sampled from its ``recent`` index) instead of filling one (~4 min at
1,000,000 records), so a change can be measured again and again on one store.

``--old-url`` gives the old tree a store of its own (filled by that tree, e.g. when the change
is in what the flush writes): each arm then searches its own store, and the Redis CPU of each
is read from its own server.

``serve_api.py`` measures one tree; on a shared machine two of its runs minutes apart compare
foreign load as much as code. Here ``warden serve`` from ``--old-src`` and from this tree (same
venv: same uvicorn, parser, loop) run side by side on one embedded store filled with ``--tasks``
records, each warmed up, and answer the same search mixes in turn (``--rounds`` x ``--seconds``,
20 connections from another process): ``serve_api.py``'s mix (50 task names, state=FAILURE with a
queue, 50 three-character id prefixes, the unfiltered list), and each kind alone plus a text
search (``--mixes``; ``newest`` is the unfiltered list alone). Printed per round and arm:
pages/s, p50/p99, and the CPU per page of the server process and of ``redis-server``
(``psutil``, user + system), which a busy machine inflates far less than latencies.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402

from bench.serve_api import PREFIX, Server, _env, fill_store, run_load  # noqa: E402
from bench.store_fill import Shape  # noqa: E402
from celery_warden.embedded import EmbeddedRedis, free_port  # noqa: E402
from celery_warden.keys import Keys  # noqa: E402
from celery_warden.serve.tokens import TokenStore  # noqa: E402

SERVE = "import sys; from celery_warden.cli.main import main; sys.argv[0] = 'warden'; main()"


def mixes(names: list[str], ids: list[str]) -> dict[str, list[str]]:
    page = "/api/v1/tasks?limit=50&"
    name = [f"{page}name={n}" for n in names[:50]]
    failure = [f"{page}state=FAILURE&queue=default"]
    prefix = [f"{page}id_prefix={i[:3]}" for i in ids[:50]]
    newest = ["/api/v1/tasks?limit=50"]
    return {"bench": [*name, *failure * 5, *prefix, *newest], "name": name,
            "failure": failure, "prefix": prefix, "newest": newest,
            "text": [f"{page}q=timeout", f"{page}q=valueerror"],
            # Not a search: serve_api.py's performance summaries, to check a change elsewhere.
            "performance": [f"/api/v1/monitoring/performance?task_name={n}&window=1h"
                            for n in names]}


def cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


@contextmanager
def store(url: str | None, tasks: int) -> Iterator[tuple[str, int, list[str], list[str]]]:
    """(url, redis-server pid, task names, 50 sampled ids) of the store to search: the one at
    ``url`` as it is, else an embedded one filled with ``tasks`` records for this run."""
    if url:
        client = redis.Redis.from_url(url, decode_responses=True)
        pid = int(client.info("server")["process_id"])
        ids = list(client.zrandmember(Keys(PREFIX).recent, 50) or [])
        client.close()
        yield url, pid, [Shape().name(i) for i in range(Shape().names)], ids
        return
    with EmbeddedRedis(tempfile.mkdtemp(prefix="warden-bench-search-"), appendonly=False) as srv:
        filled = fill_store(srv.url, tasks)
        yield srv.url, srv.pid or 0, filled["names"], random.Random(3).sample(filled["ids"], 50)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old-src", required=True, help="the other tree's src/ directory")
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--mixes", default="bench,name,failure,prefix,text")
    p.add_argument("--url", help="a store filled earlier (prefix 'bench'): no fill")
    p.add_argument("--old-url", help="the old tree's own store (prefix 'bench'), filled by it")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with store(a.url, a.tasks) as (url, redis_pid, names, ids):
        urls = {"old": a.old_url or url, "new": url}
        pids = {arm: int(redis.Redis.from_url(u).info("server")["process_id"])
                for arm, u in urls.items()} if a.old_url else {"old": redis_pid, "new": redis_pid}
        tokens_by_url: dict[str, str] = {}
        for u in set(urls.values()):
            client = redis.Redis.from_url(u, decode_responses=True)
            tokens_by_url[u] = TokenStore(client, Keys(PREFIX)).create(
                f"ab-read-{os.getpid()}", "read")[0]
            client.close()
        if a.old_url:  # ids both stores hold (same fill seeds), else each arm's own would differ
            old = redis.Redis.from_url(a.old_url, decode_responses=True)
            ids = [i for i in ids if old.exists(Keys(PREFIX).task(i))] or ids
            old.close()
        paths = mixes(names, ids)
        servers: dict[str, Server] = {}
        try:
            for arm in ("old", "new"):
                env, port = _env(urls[arm]), free_port()
                # No retention sweep from these servers: a store filled earlier stays as it was
                # filled (a sweep shortens the successes' TTL, and the arms would drift apart).
                env["WARDEN_SERVE_SAMPLER"] = "false"
                if arm == "old":
                    env["PYTHONPATH"] = f"{a.old_src}{os.pathsep}{env['PYTHONPATH']}"
                servers[arm] = Server([sys.executable, "-c", SERVE, "serve", "--port",
                                       str(port)], env, port)
                run_load(servers[arm].url, tokens_by_url[urls[arm]], paths["bench"], 3)  # warm
            for mix in a.mixes.split(","):
                for r in range(a.rounds):
                    for arm, server in servers.items():
                        c0, r0 = server.cpu(), cpu(pids[arm])
                        out = run_load(server.url, tokens_by_url[urls[arm]], paths[mix],
                                       a.seconds)
                        n = max(1, out["requests"])
                        row = {"mix": mix, "round": r, "arm": arm,
                               "load": round(os.getloadavg()[0], 1),
                               "pages_s": round(out["per_second"]),
                               "p50_ms": round(out["p50_ms"], 1),
                               "p99_ms": round(out["p99_ms"], 1),
                               "server_cpu_us": round(1e6 * (server.cpu() - c0) / n),
                               "redis_cpu_us": round(1e6 * (cpu(pids[arm]) - r0) / n),
                               "statuses": out["statuses"]}
                        rows.append(row)
                        print(row, flush=True)
        finally:
            for server in servers.values():
                server.stop()
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()

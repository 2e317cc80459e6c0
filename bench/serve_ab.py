"""Task lookups and ``/metrics`` of two source trees, alternated on one store: before/after.

    git archive <commit> | tar -x -C /tmp/before        # the tree to compare against
    .venv/bin/python bench/serve_ab.py --old-src /tmp/before/src --rounds 3

On a shared machine a single run of ``serve_api.py`` compares arms measured minutes apart under
different foreign load. Here the plain arm (``bench/floor_app.py``), ``warden serve`` from
``--old-src`` and ``warden serve`` from this tree answer the same lookups in turn, ``--rounds``
times, each for ``--seconds``, on one embedded store filled with ``--tasks`` records (a lookup is
one ``HGETALL`` whatever the store's size). Both trees run in this venv (same uvicorn, parser and
loop), so the difference is the code. Printed per round and arm: lookups/s, p50/p99, the server's
CPU per lookup (robust under load), and for the two ``warden`` arms the ``/metrics`` scrape's
wall time and server CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.serve_api import PREFIX, Server, _env, fill_store, scrape_times, server_load  # noqa: E402
from celery_warden.embedded import EmbeddedRedis, free_port  # noqa: E402
from celery_warden.keys import Keys  # noqa: E402
from celery_warden.serve.tokens import TokenStore  # noqa: E402

SERVE = "import sys; from celery_warden.cli.main import main; sys.argv[0] = 'warden'; main()"


def arm_server(arm: str, url: str, old_src: str) -> tuple[Server, str]:
    env, port = _env(url), free_port()
    if arm == "plain":
        return Server([sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port",
                       str(port), "--log-level", "warning"], env, port), "/floor/{}"
    if arm == "old":
        env["PYTHONPATH"] = f"{old_src}{os.pathsep}{env['PYTHONPATH']}"
    return (Server([sys.executable, "-c", SERVE, "serve", "--port", str(port)], env, port),
            "/api/v1/monitoring/tasks/{}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old-src", required=True, help="the other tree's src/ directory")
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)
    rows: dict[str, list[dict[str, Any]]] = {"plain": [], "old": [], "new": []}
    with EmbeddedRedis(tempfile.mkdtemp(prefix="warden-bench-ab-"), appendonly=False) as srv:
        ids = fill_store(srv.url, a.tasks)["ids"]
        client = redis.Redis.from_url(srv.url, decode_responses=True)
        store = TokenStore(client, Keys(PREFIX))
        read, metrics = store.create("ab-read", "read")[0], store.create("ab-m", "metrics")[0]
        client.close()
        sample = random.Random(3).sample(ids, min(10_000, len(ids)))
        for r in range(a.rounds):
            for arm in rows:
                server, path = arm_server(arm, srv.url, a.old_src)
                try:
                    out = server_load(server, "" if arm == "plain" else read,
                                      [path.format(i) for i in sample], a.seconds)
                    row = {"round": r, "load": round(os.getloadavg()[0], 1),
                           "rps": round(out["per_second"]), "p50_ms": round(out["p50_ms"], 1),
                           "p99_ms": round(out["p99_ms"], 1),
                           "cpu_us": round(out["cpu_us_per_request"])}
                    if arm != "plain":
                        m = scrape_times(server, metrics, 8)
                        row.update(scrape_p50_ms=round(m["p50_ms"]),
                                   scrape_min_ms=round(m["min_ms"]),
                                   scrape_cpu_ms=round(m["server_cpu_ms"]))
                finally:
                    server.stop()
                rows[arm].append(row)
                print(arm, row, flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()

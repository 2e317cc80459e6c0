"""HTTP load from its own process: N keep-alive connections, latency per request, SSE listeners.

Run by ``bench/serve_api.py`` as a subprocess (so the client's CPU is not the server's):

    python bench/http_load.py load --url URL --token T --paths FILE --concurrency 20 --seconds 10
    python bench/http_load.py listen --url URL --token T --listeners 100 --seconds 30

Why a raw asyncio client instead of httpx: on a 2-core machine the client shares the CPU with
the server, and a heavier client measures itself. This one writes a GET, reads the status line,
the headers and a ``Content-Length`` (or chunked) body — nothing more — on uvloop when it is
installed. Prints one JSON object, with the client's own CPU per request (``client_cpu_us``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    """(status, body bytes) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
        return status, len(body)
    size = 0
    while True:  # chunked
        n = int((await reader.readuntil(b"\r\n")).strip(), 16)
        await reader.readexactly(n + 2)
        size += n
        if n == 0:
            return status, size


async def _worker(host: str, port: int, token: str, paths: list[str], until: float,
                  latencies: list[float], statuses: dict[int, int], rng: random.Random) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    try:
        while time.perf_counter() < until:
            path = rng.choice(paths)
            t0 = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode())
            status, _ = await _read_response(reader)
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(url: str, token: str, paths: list[str], concurrency: int,
               seconds: float) -> dict[str, object]:
    parts = urlsplit(url)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    cpu = time.process_time()
    until = started + seconds
    await asyncio.gather(*(
        _worker(parts.hostname or "127.0.0.1", parts.port or 80, token, paths, until,
                latencies, statuses, random.Random(i)) for i in range(concurrency)))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return {"requests": len(latencies), "seconds": wall, "per_second": len(latencies) / wall,
            "p50_ms": 1000 * _pct(latencies, 0.50), "p99_ms": 1000 * _pct(latencies, 0.99),
            "max_ms": 1000 * max(latencies, default=float("nan")), "statuses": statuses,
            "client_cpu_us": 1e6 * cpu / max(len(latencies), 1)}


async def _listen(host: str, port: int, token: str, until: float,
                  counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET /api/v1/stream HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
                     .encode())
        await reader.readuntil(b"\r\n\r\n")
        while True:
            left = until - time.perf_counter()
            if left <= 0:
                return
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                return
            if not chunk:
                counts["closed"] += 1
                return
            counts["bytes"] += len(chunk)
            counts["events"] += chunk.count(b"\nevent: ") + chunk.startswith(b"event: ")
    finally:
        writer.close()


async def listen(url: str, token: str, listeners: int, seconds: float) -> dict[str, object]:
    parts = urlsplit(url)
    counts = {"bytes": 0, "events": 0, "closed": 0}
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_listen(parts.hostname or "127.0.0.1", parts.port or 80, token,
                                   until, counts) for _ in range(listeners)))
    return {"listeners": listeners, **counts}


def _run(coro: Coroutine[Any, Any, dict[str, object]]) -> dict[str, object]:
    """``coro`` on uvloop when installed (``warden serve`` runs on it too): the lighter the
    client, the less of the 2-core machine it takes from the server it measures (~75 against
    ~110-130 µs of client CPU per search page on asyncio's own loop)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=("load", "listen"))
    p.add_argument("--url", required=True)
    p.add_argument("--token", default="")
    p.add_argument("--paths", help="file with one request path per line (load)")
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--listeners", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    a = p.parse_args(argv)
    if a.mode == "load":
        with open(a.paths) as fh:
            paths = [line.strip() for line in fh if line.strip()]
        out = _run(load(a.url, a.token, paths, a.concurrency, a.seconds))
    else:
        out = _run(listen(a.url, a.token, a.listeners, a.seconds))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

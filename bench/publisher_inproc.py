#!/usr/bin/env python
"""What ``Warden(app)`` adds to one ``delay()``, measured inside one process.

Why: ``overhead.py`` and ``publisher_ab.py`` run each arm in a process of its own, as a web
app would, and on this VM two processes of the *same* arm differ by up to ±60 µs per
``delay()`` (~450 µs): their per-round ratios spread 0.78-1.04 and cannot show a change of a
few microseconds. Here one process holds a plain app and a Warden app (same settings, same
Redis, same task name) and alternates small batches of ``delay()`` on each, so both arms see
the same moment of the machine; the figure is the median over rounds of the difference in the
main thread's CPU per ``delay()`` (``time.thread_time``), and apart from it the process's
other threads (Warden's flusher building and writing the SENT records).

One bias, stated: Celery's publish signals are global, so the plain app's publishes also
dispatch ``before_task_publish`` to Warden's receiver, which returns at once (no Warden
publish in progress): the plain arm carries that dispatch (~1.5 µs) and the difference is a
lower bound of Warden's main-thread cost by that much.

    python bench/publisher_inproc.py [--rounds 30] [--batch 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))


def run(task: Any, n: int) -> float:
    """Main-thread CPU seconds per ``delay()`` over ``n`` calls."""
    started = time.thread_time()
    for _ in range(n):
        task.delay()
    return (time.thread_time() - started) / n


def measure(url: str, rounds: int, batch: int) -> dict[str, float]:
    from celery import Celery

    from celery_warden import Warden, celery_config, load_settings

    settings = load_settings(REDIS_URL=url, WARDEN_KEY_PREFIX="bench-inproc")

    def noop() -> None:
        return None

    plain = Celery("plain")
    plain.conf.update(celery_config(settings))
    wapp = Celery("warden")
    wapp.conf.update(celery_config(settings))
    warden = Warden(wapp, settings)
    tp = plain.task(name="bench.noop", ignore_result=True)(noop)
    tw = wapp.task(name="bench.noop", ignore_result=True)(noop)
    run(tp, batch)  # warm-up: connections, caches, the flusher thread started
    run(tw, batch)
    plain_s, warden_s = [], []
    process0 = time.process_time()
    for _ in range(rounds):
        plain_s.append(run(tp, batch))
        warden_s.append(run(tw, batch))
    main_thread = (sum(plain_s) + sum(warden_s)) * batch
    other = time.process_time() - process0 - main_thread  # Warden's flusher thread
    warden.recorder.stop()
    diffs = [w - p for p, w in zip(plain_s, warden_s, strict=True)]
    ratios = [w / p for p, w in zip(plain_s, warden_s, strict=True)]
    return {
        "plain_us": 1e6 * statistics.median(plain_s),
        "warden_us": 1e6 * statistics.median(warden_s),
        "diff_us": 1e6 * statistics.median(diffs),
        "ratio": statistics.median(ratios),
        "other_threads_us": 1e6 * other / (rounds * batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=300)
    opts = parser.parse_args()
    from celery_warden.embedded import EmbeddedRedis

    with EmbeddedRedis(tempfile.mkdtemp(prefix="warden-bench-inproc-"),
                       appendonly=False) as server:
        r = measure(server.url, opts.rounds, opts.batch)
    print(f"main thread CPU per delay(), median of {opts.rounds} rounds x {opts.batch}: "
          f"plain {r['plain_us']:.1f} us, warden {r['warden_us']:.1f} us, "
          f"difference {r['diff_us']:+.1f} us (ratio {r['ratio']:.3f}); other threads "
          f"{r['other_threads_us']:.1f} us per warden delay()")


if __name__ == "__main__":
    main()

"""The environment of one arm of a side-by-side benchmark, run in a fresh process.

An arm is ``name[:VAR=value...]`` (``plain``, ``warden``, ``warden:BENCH_SRC=<dir>``). Its
process gets this environment without the caller's ``WARDEN_*``, ``CELERY_*``, ``BENCH_*`` and
``REDIS_URL``, so each arm runs only what it names; ``BENCH_SRC`` puts another checkout's
package first on the path, to compare two versions in the same rounds. Shared by
``child_path.py``, ``publisher_ab.py`` and ``worker_pair.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def arm_env(spec: str, url: str, fixed: dict[str, str],
            extra: Iterable[str] = ()) -> dict[str, str]:
    """The environment of arm ``spec`` on the Redis at ``url``: ``fixed`` variables, then the
    ``extra`` ``VAR=value`` items, then the arm's own (later ones win)."""
    arm, *own = spec.split(":")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WARDEN_", "CELERY_", "BENCH_")) and k != "REDIS_URL"}
    env.update({"PYTHONPATH": str(ROOT), "REDIS_URL": url,
                "BENCH_WARDEN": "1" if arm == "warden" else "0", **fixed})
    for item in [*extra, *own]:
        k, _, v = item.partition("=")
        env[k] = v
    if env.get("BENCH_SRC"):  # another checkout's package, to compare versions
        env["PYTHONPATH"] = os.pathsep.join([env["BENCH_SRC"], str(ROOT)])
    return env


__all__ = ["arm_env"]

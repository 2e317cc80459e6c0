"""Ablations: copies of this checkout's package with one part of Warden's per-task work removed.

Why: the issue's worker targets (CPU per task ≤ 1.03 x plain, throughput ≥ 0.98 x plain, on a
no-op task) leave a budget of ~3 % of a no-op task, ~17 µs on a 2-core VM where plain Celery
spends ~560 µs per task. Asking "which part of Warden does not fit" needs Warden runs *without*
that part, side by side with plain Celery in the same rounds. A variant is such a copy, made in a
temporary directory and put first on the Warden arm's ``PYTHONPATH``
(``bench/overhead.py --variant NAME``); the plain arm and the product are untouched.

These are measurements of what a design could at best save, never configurations to run:

* ``norecord``: pool children record nothing per task — the tracer hook hands Celery's tracer
  back unwrapped (no run kept, no spool write, no record, no count, no flush of task records).
  What stays is everything else Warden does: the publish path (priority, the ``warden_sent``
  header, SENT records unless ``WARDEN_TRACK_SENT=false``), the worker main process's
  ``task_received`` stamp, heartbeats, the reaper. With ``--env WARDEN_TRACK_SENT=false`` it
  is the floor of Warden installed on a worker that writes no per-task fact at all.
* ``noreceipt``: the worker main process's ``task_received`` handler returns at once (no
  receipt stamp, no poison-pill check on a redelivery, no RECEIVED record for an ETA task).
* ``noheaders``: ``before_task_publish`` returns at once (no priority normalised, no
  ``warden_sent`` header, so no queue wait and no SENT record).
* ``nosuccess``: a pool child writes no task record for a success on its first delivery
  (counts, buckets, totals and the spool write per task unchanged): what deciding a success
  policy at write time could at most save on the worker.

Variants combine (``--variant norecord,noreceipt,noheaders``: Warden installed, doing nothing
per task). A variant patches text; when this checkout's code moved and a patch no longer
applies, making the variant fails with the file and the text it looked for, rather than
measuring something else.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: name -> [(file under src/celery_warden, text to find, replacement)]
PATCHES: dict[str, list[tuple[str, str, str]]] = {
    "norecord": [(
        "record/tracer_hook.py",
        "        name = task.name\n        begin, end, runs, report = ",
        "        return trace  # bench variant 'norecord': nothing recorded per task\n"
        "        name = task.name\n        begin, end, runs, report = ",
    )],
    "nosuccess": [(
        "record/running.py",
        "            delta = tasks.get(task_id)\n            if delta is None:\n",
        "            delta = tasks.get(task_id)\n"
        "            if delta is None and outcome == 'success' and not seq:\n"
        "                pass  # bench variant 'nosuccess': no record for a first-try success\n"
        "            elif delta is None:\n",
    )],
    "noreceipt": [(
        "record/worker.py",
        "    def on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:\n",
        "    def on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:\n"
        "        return  # bench variant 'noreceipt': no receipt stamp, no poison-pill check\n",
    )],
    "noheaders": [(
        "record/publish.py",
        "        slot = PUBLISHING.get()\n        if headers is None",
        "        return  # bench variant 'noheaders': no priority, no warden_sent, no SENT\n"
        "        slot = PUBLISHING.get()\n        if headers is None",
    )],
}


class VariantError(Exception):
    """A variant's patch no longer applies to this checkout."""


def names(spec: str) -> list[str]:
    """The variants ``spec`` names (comma-separated: ``norecord,noreceipt``), all known."""
    listed = spec.split(",")
    unknown = [n for n in listed if n not in PATCHES]
    if unknown:
        raise VariantError(f"unknown variant {unknown[0]!r} (known: {', '.join(sorted(PATCHES))})")
    return listed


def make(spec: str, into: Path) -> Path:
    """A copy of this checkout's ``src`` with the variants ``spec`` names applied (see
    :func:`names`), under ``into``; returns the directory to put first on ``PYTHONPATH``."""
    chosen = names(spec)
    dest = into / f"variant-{'-'.join(chosen)}"
    shutil.copytree(ROOT / "src", dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in chosen:
        for rel, find, replace in PATCHES[name]:
            path = dest / "celery_warden" / rel
            text = path.read_text()
            if text.count(find) != 1:
                raise VariantError(f"variant {name!r}: {rel} no longer holds exactly one {find!r}")
            path.write_text(text.replace(find, replace))
    return dest


__all__ = ["PATCHES", "VariantError", "make", "names"]

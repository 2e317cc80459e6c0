"""``warden demo``: a whole monitored fleet on one machine, with a live summary.

What it does, in order:

1. **Redis**: :func:`celery_warden.embedded.resolve_redis`: ``REDIS_URL`` if set, else
   127.0.0.1:6379 if it answers, else an embedded ``redis-server`` with its data and AOF under
   the data directory (stopped on exit). It prints which one it uses.
2. **Worker and beat** of the reference app as child processes
   (``python -m celery -A app.worker.celery_app worker|beat``) in the current directory, with
   their output in ``<data dir>/logs/``. Each runs in its own session (a Ctrl-C in the terminal
   reaches only the demo, which then stops them in order) and, on Linux, gets SIGTERM from the
   kernel if the demo itself is killed, so nothing is orphaned.
3. **Workload**: a thread sends a steady mix of the reference app's tasks by name at
   ``--rate`` tasks/s: mostly ``example.add``, some slow, flaky (retrying), failing, order and
   high-priority tasks, so every number on the summary moves.
4. **Summary** from :class:`~celery_warden.read.monitor.CeleryMonitor` every ``--interval``
   seconds: throughput, success and retry rates, p95, workers, queue depths, tasks sent. A read
   that fails (Redis restarting, say) is shown in the summary, never fatal.
5. **Stop** on Ctrl-C, SIGTERM, SIGHUP or after ``--duration``: workload first, then SIGTERM to
   worker and beat (SIGKILL by pid, with the pool processes they started, if they hang), then
   the embedded Redis, then a final summary. A second Ctrl-C makes the stop immediate.

Unless ``WARDEN_TASK_TTL`` is set, the demo keeps task records one hour instead of a day, so a
demo left running stays small (20 tasks/s for a day would be 1.7 M records); unless
``CELERY_LOG_LEVEL`` is set, worker and beat log at WARNING (INFO writes two lines per task).

Exit codes: 0 after a normal stop, 1 if Redis could not be started or a child process died,
2 for a configuration problem (invalid setting, app not importable).

Modules: :mod:`~celery_warden.demo.runner` (the :class:`~celery_warden.demo.runner.Demo`
orchestration and :func:`run_demo`), :mod:`~celery_warden.demo.children` (worker and beat
processes), :mod:`~celery_warden.demo.workload` (the task mix),
:mod:`~celery_warden.demo.summary` (reading the monitor), :mod:`~celery_warden.demo.display`
(rendering), :mod:`~celery_warden.demo.stop` (signals), :mod:`~celery_warden.demo.app_loader`
(finding the Celery app) and :mod:`~celery_warden.demo.errors`.
"""

from celery_warden.demo.runner import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]

"""A DLQ processor in its own process, so the driver can SIGKILL it mid-requeue or race two.

``python -m tests.chaos.dlqproc BATCH ROUNDS`` (settings from the environment): calls
``DeadLetterQueue.process(max_items=BATCH, requeue=True)`` until a round claims nothing, at most
ROUNDS times, printing each round's counts as one JSON line.
"""

from __future__ import annotations

import json
import sys

from celery import Celery

from celery_warden import DeadLetterQueue, celery_config, load_settings


def main(batch: int, rounds: int) -> None:
    settings = load_settings()
    app = Celery("chaos-dlq", set_as_current=False)
    app.conf.update(celery_config(settings))
    dlq = DeadLetterQueue(settings, app=app)
    for _ in range(rounds):
        counts = dlq.process(max_items=batch, requeue=True)
        print(json.dumps(counts), flush=True)
        if not counts["claimed"]:
            break
    app.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))

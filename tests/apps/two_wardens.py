"""A worker process that holds two Warden-wired apps: the one it runs (``app``) and a second
one (``other``, its own key prefix) that a project might create for publishing elsewhere.
Consumer signals (task_rejected, task_unknown) are global in Celery: only the running app's
Warden may count them (core defect 11)."""

from __future__ import annotations

from celery import Celery

from celery_warden import Warden, celery_config, load_settings

settings = load_settings()
app = Celery("two-wardens")
app.conf.update(celery_config(settings))
Warden(app, settings)

other_settings = settings.model_copy(update={"key_prefix": f"{settings.key_prefix}other"})
other = Celery("two-wardens-other", set_as_current=False)
other.conf.update(celery_config(other_settings))
Warden(other, other_settings)


@app.task(name="two.ok")
def ok(x: int) -> int:
    return x

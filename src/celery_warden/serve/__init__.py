"""``warden serve``: the monitoring REST API (FastAPI on uvicorn), tokens, sessions, audit log.

:func:`celery_warden.serve.app.create_app` builds the ASGI app;
:func:`celery_warden.serve.server.serve` runs it. Nothing is imported here, so the ``warden``
commands that only need tokens or the bind check (:mod:`.tokens`, :mod:`.binding`) do not pay
for importing FastAPI and every route (~0.8 s).
"""

"""Reference application: a Celery project wired with Celery Warden, laid out as the spec shows."""

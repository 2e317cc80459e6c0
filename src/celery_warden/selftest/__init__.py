"""Self-tests against a live fleet: ``warden check`` (any fleet) and the spec's
``test_celery_monitoring.py`` (the reference app), one line per check and a summary."""

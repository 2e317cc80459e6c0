"""Benchmarks (run as scripts; a package only so ``celery -A bench.apps`` can import the app)."""

# Two commands are all a newcomer needs: `make run` (the demo) and `make test` (the suite).
# Both create .venv on first use and install from the lock files in requirements/.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast lint bench chaos soak vs-flower lock clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml requirements/run.lock | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -r requirements/run.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml requirements/dev.lock | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -r requirements/dev.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/warden demo

# Two test processes (pytest-xdist), a file's tests kept together: most tests wait on real
# workers, servers and brokers, so two run side by side on 2 cores. TEST_WORKERS=0 for one.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# Everything but the browser tests (tests/browser: they install Debian's chromium when missing).
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(XDIST) -m "not browser" $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src app tests bench
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/overhead.py

# The chaos suite, full size: 10,000 mixed tasks per broker under scheduled faults, reconciled
# against ground truth (tests/chaos/). CHAOS_ARGS="--broker redis --tasks 2000" to narrow it.
chaos: $(VENV)/.installed-dev
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

# 10 minutes at a steady 200 tasks/s: RSS and Redis memory per task at start/warm-up/end.
soak: $(VENV)/.installed-dev
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Side by side with Flower (needs the `bench` extra: pip install -e '.[bench]').
vs-flower: $(VENV)/.installed-dev
	$(BIN)/pip install -q --disable-pip-version-check 'flower>=2.0,<3'
	$(BIN)/python bench/vs_flower.py $(VS_FLOWER_ARGS)

# Regenerate the lock files after changing dependencies in pyproject.toml (needs `uv`).
lock:
	uv pip compile pyproject.toml --python-version 3.11 -q -o requirements/run.lock
	uv pip compile pyproject.toml --python-version 3.11 -q --extra dev --extra otel -o requirements/dev.lock

clean:
	rm -rf $(VENV) .warden .pytest_cache .mypy_cache .ruff_cache

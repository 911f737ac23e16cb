# Two commands a user needs: `make run` (the engine's main job) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DURATION ?= 0

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/options-engine run -c engine.toml $(if $(filter-out 0,$(DURATION)),--duration $(DURATION))

# asyncio's debug mode is on in the tests (any non-empty PYTHONASYNCIODEBUG turns it on; this line read "=0"
# for a long time and meant the same): it reports calls from the wrong thread and never-awaited coroutines.
test: $(STAMP)
	PYTHONASYNCIODEBUG=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy greeks risk domain strategies engine
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) bench/kernels.py
	$(PY) bench/sim_throughput.py
	$(PY) bench/feed.py
	$(PY) bench/latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

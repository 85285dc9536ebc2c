# Two entry points for a fresh machine: `make run` (dashboard on the built-in zoo) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: run test lint screenshots bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(PY) -m ui.launch --server.address $(ADDRESS) --server.port $(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(PY) -m ruff check .

# Refresh the README's pictures (docs/screenshots/) from the browser test; `make test` never writes there.
screenshots: $(VENV)/.installed
	FAILURE_LENS_SHOTS=docs/screenshots FAILURE_LENS_SHOTS_1080=artifacts/screenshots/1080 \
		$(PY) -m pytest -q -m browser tests/test_browser.py

bench: $(VENV)/.installed
	$(PY) -m bench heatmap
	$(PY) -m bench graph

clean:
	rm -rf $(VENV) .pytest_cache

# Two commands for a new user: `make run` (set up, ingest sources.yaml, start the app) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run setup setup-dev system-deps ingest app test test-fast lint bench clean

run: setup ingest app

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

# System packages for PDF export fonts, browser tests and pdftotext (Debian/Ubuntu; needs root or sudo).
system-deps:
	apt-get update && grep -v '^#' .ci/apt-packages.txt | xargs apt-get install -y --no-install-recommends

# Exit code 1 means some sources failed (e.g. no network): they are listed, the rest is indexed.
ingest: setup
	$(BIN)/python -m ingest run || test $$? -eq 1

app: setup
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

# Lint and type-check first (fast), then the whole suite.
test: setup-dev lint
	$(BIN)/python -m pytest

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

test-fast: setup-dev
	$(BIN)/python -m pytest -m "not slow and not browser"

bench: setup-dev
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py

clean:
	rm -rf $(VENV) data

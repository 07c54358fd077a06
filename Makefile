# The two commands a new user runs: `make demo` and `make test`. Everything else is set up on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Assets the demo and the CI smoke tests use; `tokenshift assets --list` shows them all.
DEMO_ASSETS := smollm2-135m smollm2 gpt2 llama-3 qwen2.5 cl100k wiki-en wiki-fr wiki-es man-fr
# The demo: SmolLM2-135M adapted to French manual pages (the leading 1 MB of man-fr's train split), judged
# on pages it never saw; each run writes a new folder under demo/.
DEMO_OUT = demo/smollm2-135m-man-fr-$(shell date +%Y%m%d-%H%M%S)
TEST_ASSETS := smollm2-135m smollm2 gpt2 wiki-en wiki-fr

PEERS := .venv-peers

.PHONY: setup demo test test-slow docs bench peers clean-venv

setup: $(INSTALLED)

# torch is installed first and pinned, so nothing later pulls a multi-GB CUDA build on a CPU machine.
$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: $(INSTALLED)
	$(BIN)/tokenshift assets --install $(DEMO_ASSETS)
	$(BIN)/tokenshift adapt smollm2-135m --text man-fr:train --max-bytes 1000000 --minutes 5 --out $(DEMO_OUT)

test: $(INSTALLED) docs
	$(BIN)/tokenshift assets --install --quiet $(TEST_ASSETS)
	$(BIN)/python -m pytest -q -m "not slow"

# The documentation site (docs/, mkdocs.yml) into site/. --strict: a broken link, a missing anchor or a page
# left out of the navigation fails the build, and so `make test`. Builds offline, in seconds.
DOCS_INSTALLED := $(VENV)/.docs-installed
$(DOCS_INSTALLED): $(INSTALLED) pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[docs]'
	touch $@

docs: $(DOCS_INSTALLED)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# Also builds llama-cpp-python from its sdist, once (3.6 min on 2 idle cores, 11 on busy ones), for tests/test_export_llama_cpp.py,
# and installs Debian's Chromium, once, for tests/test_report_browser.py and tests/test_docs.py (the --report pages and the
# documentation site in a real headless browser).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-slow: $(INSTALLED) docs
	command -v chromium >/dev/null 2>&1 || { echo "installing Chromium (Debian's package) for tests/test_report_browser.py"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	$(BIN)/python -c "import llama_cpp" 2>/dev/null || { echo "building llama-cpp-python from source (4 to 11 minutes on 2 cores)"; \
		CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-$$(nproc)} $(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,llama]'; }
	$(BIN)/tokenshift assets --install $(DEMO_ASSETS) gemma3-270m gemma-3 o200k
	$(BIN)/python -m pytest -q

# The peer tools compared in bench/transplant.py live in their own venv: their dependencies differ from ours.
# deepfocus is installed without its deps because its `fasttext` needs a compiler; fasttext-numpy2-wheel replaces it.
peers: $(PEERS)/.installed

$(PEERS)/.installed:
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install -q torch==2.13.0
	$(PEERS)/bin/python -m pip install -q mergekit==0.1.5 transformers==5.23.0 tokenizers==0.23.3 \
		fasttext-numpy2-wheel entmax fastdist numba print-on-steroids datasets rich regex
	$(PEERS)/bin/python -m pip install -q --no-deps deepfocus==1.0.1
	touch $@

bench: $(INSTALLED) peers
	$(BIN)/tokenshift assets --install $(DEMO_ASSETS) gemma3-270m gemma-3 man-en man-fr man-es man-de man-it handbook-en handbook-fr
	$(BIN)/python bench/evaluate.py
	$(BIN)/python bench/train.py --sections main extension transfer
	$(BIN)/python bench/transplant.py --peer-python $(PEERS)/bin/python
	PYTHONPATH=src $(PEERS)/bin/python bench/omp_speed.py
	$(BIN)/python bench/bytelevel.py
	$(BIN)/python bench/heal.py
	$(BIN)/python bench/mixture.py
	$(BIN)/python bench/encoders.py
	$(BIN)/python bench/dynamic.py
	$(BIN)/python bench/export.py

clean-venv:
	rm -rf $(VENV)

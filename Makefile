# Two commands do all set-up on a fresh machine (see README.md):
#   make demo   render -> consolidate -> train a few steps -> a picture, on a small default
#   make test   the test suite (what CI runs)
# Both create and use the project's own virtual environment in .venv (Python 3.11).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO ?= demo_rooms
export PYTHONUNBUFFERED := 1

.PHONY: venv test demo lint stock-blender assets bench clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (bpy 5.0.1 is a CPython 3.11 wheel)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in pyproject.toml: a plain `torch` would pull gigabytes of CUDA.
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Debian's stock Blender (3.4) for the tests that run `blender --background --python render.py`.
stock-blender:
	@if command -v blender >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y --no-install-recommends blender >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y --no-install-recommends blender >/dev/null)) && echo "installed Debian's blender"; \
	else echo "no stock blender and no root apt-get: the stock_blender tests will be skipped"; fi

lint: venv
	$(VENV)/bin/ruff check .

# The tests render real assets: fetch them first (cached outside the repo in CACHE_DIR; a no-op once fetched).
test: venv stock-blender assets
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q --durations=15

assets: venv
	$(PY) -m pipeline.assets fetch

bench: venv
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

demo: venv
	$(PY) -m pipeline.demo --name $(DEMO)

# Deletes the demo's dataset and training run, so that the next `make demo` renders everything again.
clean-demo: venv
	$(PY) -m pipeline.demo --name $(DEMO) --clean

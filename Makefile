# adabench — one command for the demo, one for the tests; each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_CPU := torch==2.13.0

.PHONY: help setup demo demo-server test test-all test-gpu test-floors lint format bench clean models

help:  ## show this help
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv and install adabench (CPU torch only if no torch exists)

$(STAMP): pyproject.toml
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "[setup] reusing the existing torch of $(PYTHON) (never replaced)"; \
	  $(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
	  $(PYTHON) -m venv $(VENV); \
	  $(VPY) -m pip install -q --upgrade pip; \
	  echo "[setup] no torch found: installing the CPU build $(TORCH_CPU)"; \
	  $(VPY) -m pip install -q $(TORCH_CPU); \
	fi
	$(VPY) -m pip install -q -e '.[dev,ray]'
	@touch $(STAMP)

demo: setup  ## run the main job on the embedded default (tiny model, shapes suite)
	$(VENV)/bin/adabench sweep --name demo

demo-server: setup  ## serving under load: static, controller and oracle policies on the same arrivals
	$(VENV)/bin/adabench sweep --config server --name demo-server

chromium:  # headless Chromium for the report test (best effort: the test skips without it)
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) \
	  || echo "[setup] chromium not installed: the HTML render test will be skipped")

test: setup chromium  ## run the test suite (fails if no test ran)
	$(VPY) -m pytest -q -m "not gpu"

test-all: setup  ## tests including the slow ones
	$(VPY) -m pytest -q -m "not gpu" --run-slow

test-gpu:  ## GPU tests (marker gpu); fails in one line when no Python here sees CUDA
	@PY=; for p in $(VPY) $(PYTHON); do \
	  if command -v $$p >/dev/null 2>&1 && \
	     $$p -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then \
	    PY=$$p; break; fi; \
	done; \
	if [ -z "$$PY" ]; then \
	  echo "test-gpu: CUDA is not available to $(VPY) or $(PYTHON) (torch.cuda.is_available() is False); run it on a GPU machine" >&2; \
	  exit 1; \
	fi; \
	PYTHONPATH=. $$PY -m adabench.measure.preflight || exit 1; \
	CUDA_MODULE_LOADING=$${CUDA_MODULE_LOADING:-EAGER} PYTHONPATH=. \
	  $$PY -m pytest -q -m gpu tests/gpu -p no:cacheprovider

FLOORS := .floors
TRANSFORMERS_FLOOR_VERSION := 5.17.0
TRANSFORMERS_FLOOR := transformers==$(TRANSFORMERS_FLOOR_VERSION)
test-floors: setup  ## unit tests on the oldest transformers pyproject admits (5.17; run before stopping)
	@test -f $(FLOORS)/.installed || { rm -rf $(FLOORS) && \
	  $(VPY) -m pip install -q --target $(FLOORS) "$(TRANSFORMERS_FLOOR)" "huggingface-hub>=1.5,<2" && \
	  touch $(FLOORS)/.installed; }
	PYTHONPATH=$(FLOORS):. $(VPY) -c "import transformers as t; assert t.__version__ == '$(TRANSFORMERS_FLOOR_VERSION)', t.__version__"
	PYTHONPATH=$(FLOORS):. $(VPY) -m pytest -q -m "not gpu and not slow" tests/unit -p no:cacheprovider

lint: setup  ## ruff lint + format check
	$(VENV)/bin/ruff check adabench tests benchmarks
	$(VENV)/bin/ruff format --check adabench tests benchmarks

format: setup
	$(VENV)/bin/ruff format adabench tests benchmarks
	$(VENV)/bin/ruff check --fix adabench tests benchmarks

bench: setup  ## performance benchmarks (numbers reported, never asserted)
	$(VPY) benchmarks/timer_overhead.py
	$(VPY) benchmarks/harness_overhead.py
	$(VPY) benchmarks/budget_speedup.py
	$(VPY) benchmarks/adaptive_overhead.py --out results/adaptive_overhead.json
	$(VPY) benchmarks/family_realization.py --out results/family_realization.json
	$(VPY) benchmarks/wrapper_realization.py --out results/wrapper_realization.json

MODELS_OUT ?= adabench/assets
models: setup  ## retrain the embedded checkpoints from scratch (~60 min on 2 CPU cores)
	$(VENV)/bin/adabench train base --out $(MODELS_OUT)/.tiny-stage1 --minutes 25 --seed 0 --lr 7e-4 --position-probe
	$(VENV)/bin/adabench train base --out $(MODELS_OUT)/tiny --init-from $(MODELS_OUT)/.tiny-stage1 \
	  --minutes 20 --seed 1 --lr 5e-4 --spatial-weight 2
	rm -rf $(MODELS_OUT)/.tiny-stage1
	for v in l h; do V=$$(echo $$v | tr a-z A-Z); OMP_NUM_THREADS=1 $(VENV)/bin/adabench train adallava --variant $$V \
	  --base $(MODELS_OUT)/tiny --out $(MODELS_OUT)/tiny-adallava-$$v --minutes 13 --seed 0 & done; wait

clean:  ## remove the venv, caches and results
	rm -rf $(VENV) $(FLOORS) .pytest_cache build *.egg-info results/*

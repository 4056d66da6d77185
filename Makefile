# radclr — the two commands at the top of the README.
#   make demo   create .venv (CPU), install, run the end-to-end demo on the embedded data
#   make test   create .venv if missing, install the system packages the tests use when missing and possible
#               (chromium, as root with apt-get: scripts/install-test-deps.sh), run the whole test suite
# Both are idempotent: the venv is rebuilt only when a requirements file or pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.radclr-installed
TORCH_REQ ?= requirements-torch-cpu.txt
PYTEST_ARGS ?=

.PHONY: demo test test-deps install install-cuda bench clean-venv

$(STAMP): requirements-torch-cpu.txt requirements-cpu.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# torch first and alone: anything that depends on torch must find it already installed
	$(PIP) install -q -r $(TORCH_REQ)
	$(PIP) install -q -r requirements-cpu.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

install-cuda:
	$(MAKE) install TORCH_REQ=requirements-cuda.txt

demo: $(STAMP)
	$(VENV)/bin/radclr demo

test: $(STAMP) test-deps
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

# chromium for the report's headless-browser test: nothing to do when present (fast); installed with apt-get when
# run as root; otherwise a note (the test is skipped, or fails under CI)
test-deps:
	@bash scripts/install-test-deps.sh

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)

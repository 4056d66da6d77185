# radclr — the two commands at the top of the README.
#   make demo   create .venv (CPU), install, run the end-to-end demo on the embedded data
#   make test   create .venv if missing, install the system packages the tests use when missing and possible
#               (chromium, as root with apt-get: scripts/install-test-deps.sh), run the whole test suite
# Both are idempotent: the venv is rebuilt only when a requirements file or pyproject.toml changes.
#   make install-cuda   the same venv with the CUDA torch instead (requirements-cuda.txt); switch back with
#                       make install TORCH_REQ=requirements-torch-cpu.txt
# The install stamp names the torch flavour (.venv/.radclr-installed-<requirements file>): a venv installed with
# one flavour is reinstalled -- its torch removed first, pip would take 2.x.y+cpu as satisfying torch==2.x.y --
# when another is asked for, and later plain `make test` / `make demo` keep the flavour the venv has.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# the flavour this venv was installed with (none yet: the CPU one)
INSTALLED_REQ := $(patsubst $(VENV)/.radclr-installed-%,%.txt,$(firstword $(wildcard $(VENV)/.radclr-installed-*)))
TORCH_REQ ?= $(or $(INSTALLED_REQ),requirements-torch-cpu.txt)
STAMP  := $(VENV)/.radclr-installed-$(basename $(notdir $(TORCH_REQ)))
PYTEST_ARGS ?=

.PHONY: demo test test-deps install install-cuda bench clean-venv

$(STAMP): $(TORCH_REQ) requirements-cpu.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# another flavour's stamp (or the flavour-less stamp of older versions, a CPU install): remove its torch
	@for s in $(VENV)/.radclr-installed*; do \
	  [ -e "$$s" ] && [ "$$s" != "$(STAMP)" ] && \
	  ! { [ "$$s" = "$(VENV)/.radclr-installed" ] && [ "$(notdir $(TORCH_REQ))" = requirements-torch-cpu.txt ]; } && \
	  { echo "torch flavour changes to $(TORCH_REQ): removing the installed torch"; $(PIP) uninstall -y -q torch; break; }; \
	done; true
	@# torch first and alone: anything that depends on torch must find it already installed
	$(PIP) install -q -r $(TORCH_REQ)
	$(PIP) install -q -r requirements-cpu.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.radclr-installed*
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

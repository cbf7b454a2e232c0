# The README's two commands are `make demo` and `make test`; each installs what it needs first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch is the default. Elsewhere, point TORCH_INDEX at a CPU wheel index
# (or a CUDA one on a GPU machine); here pip's configured find-links already hold the CPU wheel.
TORCH_VERSION := 2.13.0
TORCH_INDEX ?=
COMMA := ,
STAMP := $(VENV)/.installed
# The [optimum] extra pins transformers below 5 (optimum-onnx 0.1.0), so its route is tested in a
# venv of its own; .venv keeps transformers 5.x.
OPTIMUM_VENV := .venv-optimum
OPTIMUM_STAMP := $(OPTIMUM_VENV)/.installed

.PHONY: setup demo test test-unit test-optimum lint format clean

setup: $(STAMP)

# $(call make_venv,DIRECTORY,EXTRAS): a venv with torch first (the CPU wheel), then the project.
# Each step says what it installs, and pip shows each package it collects (a first setup downloads
# torch, about 200 MB, and takes minutes).
define make_venv
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; set PYTHON=/path/to/python3.11")'
	@echo "setup 1/4: a virtual environment in $(1) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(1)
	@echo "setup 2/4: the latest pip"
	$(1)/bin/python -m pip install --upgrade pip
	@echo "setup 3/4: torch $(TORCH_VERSION) $(if $(TORCH_INDEX),from $(TORCH_INDEX),(the CPU wheel pip finds))"
	$(1)/bin/python -m pip install torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	@echo "setup 4/4: this project and its [$(2)] extras (pyproject.toml)"
	$(1)/bin/python -m pip install -e '.[$(2)]'
	touch $(1)/.installed
	@echo "setup done: $(1) holds $$($(1)/bin/python -m pip list --format=freeze | wc -l) packages"
endef

$(STAMP): pyproject.toml Makefile
	$(call make_venv,$(VENV),dev)

$(OPTIMUM_STAMP): pyproject.toml Makefile
	$(call make_venv,$(OPTIMUM_VENV),dev$(COMMA)optimum)

demo: setup
	$(BIN)/profiler demo

# Every test: unit, integration (live servers, real locust, real exports) and e2e. `-m ''` replaces
# the unit-only selection that pyproject.toml gives a bare `pytest`.
test: setup
	$(BIN)/python -m pytest -m ''

# The unit tests only: in-process, a couple of minutes.
test-unit: setup
	$(BIN)/python -m pytest

# The tests marked `optimum` (the [optimum] extra's export route), in .venv-optimum; `make test`
# skips them, saying so, where the extra is not installed.
test-optimum: $(OPTIMUM_STAMP)
	$(OPTIMUM_VENV)/bin/python -m pytest -m optimum

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The wheel, installed (not editable) in a fresh venv, runs a sweep from an empty directory.
# Needs no setup: it builds its own venv (.ci/wheel-check says how).
.PHONY: wheel-check
wheel-check:
	PYTHON=$(PYTHON) TORCH_VERSION=$(TORCH_VERSION) TORCH_INDEX=$(TORCH_INDEX) .ci/wheel-check

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(OPTIMUM_VENV) build .pytest_cache .mypy_cache .ruff_cache

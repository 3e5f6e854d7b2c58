# Two commands set everything up on a machine with only python3:
#   make demo   -> creates .venv, installs ebmlab, trains the default model into runs/demo/
#   make test   -> installs the test tools and runs the whole suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_WHEEL := $(wildcard /opt/wheels/torch-2.13.0+cpu-*.whl)
export MALLOC_MMAP_THRESHOLD_ ?= 268435456
export MALLOC_TRIM_THRESHOLD_ ?= 1073741824

.PHONY: demo test install bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# Prefer the local CPU wheel of torch when it is on disk (saves a multi-GB CUDA download).
	@if [ -n "$(TORCH_WHEEL)" ]; then $(PIP) install -q "$(TORCH_WHEEL)"; \
	 elif ! $(PY) -c "import torch" 2>/dev/null; then $(PIP) install -q torch; fi
	$(PIP) install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ebmlab train --name demo

test: install
	$(PY) -m pytest -n 2 -q tests

bench: install
	$(VENV)/bin/ebmlab bench samplers --out runs/bench

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info

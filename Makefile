# Everything installs from this project's own files into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

test: setup
	$(BIN)/pytest -q

demo: setup
	$(BIN)/epochal demo

bench: setup
	$(BIN)/python bench/run

clean:
	rm -rf $(VENV) build *.egg-info

# The two commands of the README's quickstart:
#   make run    set up, then run the whole pipeline on the embedded phantom dataset (dvc repro)
#   make test   set up, then run every test
# and what CI runs besides: make lint (ruff format --check, ruff check).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-quick lint setup bench-setup clean-venv

run: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

test-quick: $(VENV)/.installed  # everything but the end-to-end pipeline tests
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

clean-venv:
	rm -rf $(VENV)

# benchmark-only environment: the project's requirements plus lightly (bench/requirements.txt)
bench-setup: .venv-bench/.installed

.venv-bench/.installed: requirements.txt bench/requirements.txt
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet -r bench/requirements.txt
	touch $@

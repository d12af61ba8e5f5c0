# The two commands of the README's quickstart:
#   make run    set up, then run the whole pipeline on the embedded phantom dataset (dvc repro)
#   make test   set up, then run the tests
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test setup bench-setup clean-venv

run: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

clean-venv:
	rm -rf $(VENV)

# benchmark-only environment: the project's requirements plus lightly (bench/requirements.txt)
bench-setup: .venv-bench/.installed

.venv-bench/.installed: requirements.txt bench/requirements.txt
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet -r bench/requirements.txt
	touch $@

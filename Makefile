# Two entry points; both bootstrap .venv from requirements.lock on a fresh machine.
#   make check  - every claim on the quick profile: a table on screen, a report in reports/quick
#   make test   - the test suite (pytest + hypothesis)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= quick
OUT ?= reports/$(PROFILE)

.PHONY: check test bench clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

check: $(STAMP)
	$(BIN)/proofs-check run --profile $(PROFILE) --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/kernel_gram.py

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis

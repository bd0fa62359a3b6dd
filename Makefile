# Two entry points; both bootstrap a virtual environment from requirements.lock on a fresh machine.
#   make check     - every claim on the quick profile: a table on screen, a report in reports/quick
#   make test      - the test suite (pytest + hypothesis), in parallel over the cores
#   make test-all  - the test suite under every supported Python found on this machine, one venv each
#   make bench     - the benchmarks
# The interpreter: PYTHON=... when given; else python3 when it is a supported version; else the newest
# supported python3.X on PATH. An unsupported one stops make with one line before anything is installed.
SUPPORTED_PYTHONS := 3.11 3.12 3.13
comma := ,
python_version = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
is_supported = $(filter $(SUPPORTED_PYTHONS),$(call python_version,$(1)))
ifeq ($(origin PYTHON),undefined)
  PYTHON := $(firstword $(foreach p,python3 python3.13 python3.12 python3.11,$(if $(call is_supported,$(p)),$(p))))
endif
PYTHON_VERSION := $(call python_version,$(PYTHON))
ifneq ($(filter-out clean test-all,$(or $(MAKECMDGOALS),check)),)
  ifeq ($(PYTHON),)
    $(error no supported Python found: recon-ntk needs Python $(subst $() $(),$(comma) ,$(SUPPORTED_PYTHONS)); install one or pass PYTHON=/path/to/python3.X)
  endif
  ifeq ($(filter $(SUPPORTED_PYTHONS),$(PYTHON_VERSION)),)
    $(error PYTHON=$(PYTHON) is $(if $(PYTHON_VERSION),Python $(PYTHON_VERSION),not a working Python); recon-ntk needs Python $(subst $() $(),$(comma) ,$(SUPPORTED_PYTHONS)): pass PYTHON=/path/to/python3.X)
  endif
endif
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(PYTHON_VERSION)
PROFILE ?= quick
OUT ?= reports/$(PROFILE)
# JAX's persistent compilation cache for `make check`: programs compiled by one run are read back by the next
# (all nine claims, side by side on 2 cores: 231 s cold, 184 s warm); keyed by the program, so a code change compiles
# afresh. make clean removes it.
JAX_CACHE ?= .jax-cache

.DEFAULT_GOAL := check
.PHONY: check test test-all bench clean

# The lock is complete, so nothing is resolved (--no-deps: it pins tensorflow-cpu where neural-tangents asks for tensorflow),
# and no wheel is kept in pip's cache: the environment is about 2.4 GB on disk, with no second copy of the downloads.
PIP_FLAGS := --quiet --disable-pip-version-check --no-deps --no-cache-dir
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -r requirements.lock
	$(BIN)/python -m pip install $(PIP_FLAGS) --no-build-isolation -e .
	touch $(STAMP)

check: $(STAMP)
	JAX_COMPILATION_CACHE_DIR=$(abspath $(JAX_CACHE)) JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0.05 \
	  $(BIN)/proofs-check run --profile $(PROFILE) --out $(OUT)

# -n auto: pytest-xdist, one worker per core up to 4 (tests/conftest.py); plain pytest runs serially
test: $(STAMP)
	$(BIN)/python -m pytest -n auto

# One fresh environment per supported interpreter found (.venv-3.11, ...); a missing interpreter is named, and
# the run fails when none at all is found.
test-all:
	@found=0; for v in $(SUPPORTED_PYTHONS); do \
	  p=$$(.ci/find-python $$v) || { echo "test-all: Python $$v not found on this machine: not tested"; continue; }; \
	  found=1; start=$$(date +%s); \
	  $(MAKE) --no-print-directory test PYTHON=$$p VENV=.venv-$$v || { echo "test-all: FAILED under Python $$v"; exit 1; }; \
	  echo "test-all: Python $$v passed in $$(( $$(date +%s) - start )) s (environment included)"; \
	done; [ $$found = 1 ] || { echo "test-all: no supported Python found"; exit 1; }

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .venv-3.* reports .pytest_cache .hypothesis $(JAX_CACHE)

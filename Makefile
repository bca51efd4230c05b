# The two set-up commands: `make demo` and `make test`.
# Each creates .venv with the system's Python 3.11+ and installs the pinned
# dependencies (requirements.lock) before it runs; nothing else is needed first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test temp folders go to tmpfs when the machine has one: the concurrency tests make
# 40,000 single durable writes, and fsync on a disk makes them minutes slower. What
# they check (exactly-once, chain, last acknowledged write) does not depend on it.
PYTEST_ARGS ?= $(if $(wildcard /dev/shm/.),--basetemp=/dev/shm/consentgate-pytest-$(shell id -u),)

.PHONY: demo test test-fast venv lint typecheck bench clean lock docs

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "consentgate needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[dev]"
	# An editable install is not byte-compiled, and where PYTHONDONTWRITEBYTECODE is set no
	# process writes the cache either: each of a build's processes would compile every module
	# it imports (0.06-0.1 CPU-s each). Compiled once here, as pip does for installed packages.
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/consentgate demo

typecheck: $(STAMP)
	$(BIN)/python -m mypy

test: $(STAMP) typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS) --durations=15

# The quick loop for development: everything but the slow reliability checks
# (8x5000 concurrent writers, SIGKILL trials, 50 MB text), which `make test` and CI run.
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "not slow"

bench: $(STAMP)
	@echo "Benchmarks live in bench/; see docs/benchmarks.md for each command."

docs: $(STAMP)
	$(BIN)/python -m consentgate.cli.reference > docs/cli-reference.md

lock:
	$(BIN)/python -m pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) demo-out demo-data .pytest_cache .mypy_cache

# The two set-up commands in README.md are `make demo` and `make test`.
# `make demo ARGS=--serve` goes on as the daemon after the demo.
# Each creates .venv and installs the project (with its test extras) on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/feedback-agendas demo $(ARGS)

test: $(VENV)/.installed
	$(BIN)/pytest

# The quick local loop: everything but the tests marked `slow` (the kill -9
# crash run, the three PostgreSQL replicas, the wheel builds). CI runs `make test`.
test-fast: $(VENV)/.installed
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p feedback_agendas

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

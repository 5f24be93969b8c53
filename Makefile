# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## breast-cancer logistic regression over lambda in [1e-2, 1e3]
	$(BIN)/wbbgen demo --out demo-output

test: $(STAMP)  ## the default suite (< 10 min on 2 cores)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)  ## statistical and reference checks
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check wbbgen tests
	$(BIN)/ruff format --check wbbgen tests

clean:
	rm -rf $(VENV) demo-output .pytest_cache

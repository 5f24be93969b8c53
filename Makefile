# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
# The suite is compile-bound (XLA compiles on one thread): two workers use both CI cores;
# --dist loadfile keeps each module's shared fixtures in one worker.
WORKERS ?= 2
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow lint bench notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## breast-cancer logistic regression over lambda in [1e-2, 1e3]
	$(BIN)/wbbgen demo --out demo-output

test: $(STAMP)  ## the default suite (< 10 min on 2 cores)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile

test-slow: $(STAMP)  ## statistical and reference checks
	$(BIN)/python -m pytest -q -m slow -n $(WORKERS) --dist loadfile

bench: $(STAMP)  ## performance targets (P1, P3, P6) at full size -> bench-output/
	$(BIN)/wbbgen bench perf --out bench-output

notebooks: $(STAMP)  ## run notebooks/*.py at full size (~5 min) into notebooks/_build/
	$(BIN)/python benchmarks/run_notebooks.py --out notebooks/_build

lint: $(STAMP)  ## ruff lint and format check (run by CI)
	$(BIN)/ruff check wbbgen tests benchmarks notebooks
	$(BIN)/ruff format --check wbbgen tests benchmarks notebooks

clean:
	rm -rf $(VENV) demo-output .pytest_cache

# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
# The suite is compile-bound (XLA compiles on one thread): two workers use both CI cores;
# --dist loadfile keeps each module's shared fixtures in one worker.
WORKERS ?= 2
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-pipeline test-slow test-py312 lint bench bench-hpo bench-hpo-smoke bench-smoke notebooks docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## breast-cancer logistic regression over lambda in [1e-2, 1e3]
	$(BIN)/wbbgen demo --out demo-output

test: $(STAMP)  ## the default suite (< 10 min on 2 cores)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile

test-pipeline: $(STAMP)  ## end-to-end runs: the README example, the demo, the how-to examples (CI)
	$(BIN)/python -m pytest -q -m pipeline -n $(WORKERS) --dist loadfile

test-slow: $(STAMP)  ## statistical and reference checks
	$(BIN)/python -m pytest -q -m slow -n $(WORKERS) --dist loadfile

bench: $(STAMP)  ## performance targets (P1, P2, P3, P5, P6) at full size -> bench-output/
	$(BIN)/wbbgen bench perf --out bench-output

notebooks: $(STAMP)  ## run notebooks/*.py at full size (~5 min) into notebooks/_build/
	$(BIN)/python benchmarks/run_notebooks.py --out notebooks/_build

bench-hpo: $(STAMP)  ## the tuning comparison, every task and method at full size -> bench-output/hpo/
	$(BIN)/wbbgen bench hpo --task all --methods all --out bench-output/hpo

# Smoke runs compile far longer than they run: XLA's lowest backend optimisation level (read
# once, when JAX starts its backend) halves the training step's compilation.
bench-hpo-smoke: $(STAMP)  ## the same at smoke size (under a minute per task on 2 cores)
	XLA_FLAGS="$$XLA_FLAGS --xla_backend_optimization_level=0" \
		$(BIN)/wbbgen bench hpo --task all --methods all --smoke --out bench-output/hpo-smoke

bench-smoke: bench-hpo-smoke  ## the hpo, perf, hyper-training and tuning-reference benchmarks at smoke size (CI)
	$(BIN)/wbbgen bench perf --smoke --out bench-output/perf-smoke
	$(BIN)/wbbgen bench hypertrain --smoke --out bench-output/hypertrain-smoke
	$(BIN)/wbbgen bench tuning-reference --smoke --out bench-output/tuning-smoke
	$(BIN)/wbbgen bench hierarchical --smoke --out bench-output/hierarchical-smoke
	$(BIN)/wbbgen bench posteriordb --smoke --out bench-output/posteriordb-smoke

docs: $(STAMP)  ## the documentation site, warnings as errors -> docs/_build/html/
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

lint: $(STAMP)  ## ruff lint and format check (run by CI)
	$(BIN)/ruff check wbbgen tests benchmarks notebooks
	$(BIN)/ruff format --check wbbgen tests benchmarks notebooks

# The ArviZ 1.x / jax >= 0.11 leg: needs a Python >= 3.12 interpreter; a no-op (with a
# message) where none exists.
# The first interpreter that actually runs and is >= 3.12 (a pyenv shim for a version that is
# not selected exits non-zero, so `command -v` alone is not enough).
PY312 ?= $(shell for p in python3.12 python3.13 $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3; do \
	$$p -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1 && command -v $$p && break; done)
VENV312 := .venv312
STAMP312 := $(VENV312)/.installed

# h5netcdf >= 1.8 no longer pulls in h5py (arviz 0.x did; arviz 1.x does not): without it
# idata.to_netcdf fails, hence "h5netcdf[h5py]".
$(STAMP312): pyproject.toml
	$(PY312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install --quiet --upgrade pip
	$(VENV312)/bin/python -m pip install --quiet -e ".[test,hpo]" "arviz>=1.0" "jax>=0.11" "h5netcdf[h5py]"
	touch $(STAMP312)

ifeq ($(PY312),)
test-py312:  ## the suite on Python >= 3.12 with arviz 1.x and jax >= 0.11
	@echo "test-py312: no working Python >= 3.12 interpreter found; skipping the ArviZ 1.x leg"
else
test-py312: $(STAMP312)  ## the suite on Python >= 3.12 with arviz 1.x and jax >= 0.11
	$(VENV312)/bin/python -m pytest -q -n $(WORKERS) --dist loadfile
endif

clean:
	rm -rf $(VENV) $(VENV312) demo-output .pytest_cache docs/_build

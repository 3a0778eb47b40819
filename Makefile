# The only two commands a new user needs: `make demo` and `make test`. Both build .venv first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/python -m pip --disable-pip-version-check
CONSTRAINTS := -c requirements/constraints.txt
REQUIREMENTS := requirements/constraints.txt requirements/build.txt requirements/deepmd.txt requirements/base.txt requirements/test.txt pyproject.toml
# The stamp's name is a hash of everything the environment is built from: edit a pin and `make env` rebuilds.
STAMP := $(VENV)/.env-$(shell cat $(REQUIREMENTS) | sha256sum | cut -c1-16)
CORES ?= $(shell nproc)
SNAKEMAKE := $(VENV)/bin/snakemake
# Tests and recipes call snakemake from .venv (jobs find `liquidscale` without it: workflow/bin/liquidscale).
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: env demo test test-fast lint bench validate clean-env help

help:
	@echo "make demo   set up .venv and run the whole embedded campaign (config/config.yaml)"
	@echo "make test   set up .venv and run the test suite"
	@echo "make env    only build .venv (idempotent; seconds when nothing changed)"
	@echo "make lint   snakemake --lint"
	@echo "make bench  run the benchmarks in bench/ (prints ratios)"
	@echo "make validate  full-size verification campaigns with known answers (PeTS vs FeOs), tables printed"

env: $(STAMP)

$(STAMP): $(REQUIREMENTS)
	@echo ">> building $(VENV) (torch 2.13.0 held by requirements/constraints.txt)"
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	rm -f $(VENV)/.env-*
	$(PIP) install -q -r requirements/constraints.txt
	$(PIP) install -q $(CONSTRAINTS) -r requirements/build.txt
	DP_ENABLE_TENSORFLOW=0 DP_ENABLE_PYTORCH=1 DP_VARIANT=cpu \
	  $(PIP) install -q $(CONSTRAINTS) --no-build-isolation --no-binary deepmd-kit -r requirements/deepmd.txt
	$(PIP) install -q $(CONSTRAINTS) -r requirements/base.txt -r requirements/test.txt
	$(PIP) install -q $(CONSTRAINTS) --no-deps --no-build-isolation -e .
	$(VENV)/bin/python -c "import torch, deepmd.pt, pyscf, snakemake; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

# The water/CO2 campaign (every stage real, physics rough), then the LJ fluid's reduced campaign beside it in
# results/lj/, whose binodal a new user can hold against the published one (results/lj/analysis/reference.png).
LJ_DEMO := --configfile config/lj.yaml config/lj_demo.yaml
demo: env
	$(SNAKEMAKE) --profile profiles/local --cores $(CORES)
	$(SNAKEMAKE) --profile profiles/local --cores $(CORES) --report results/report.zip
	$(SNAKEMAKE) --profile profiles/local --cores $(CORES) $(LJ_DEMO)
	$(SNAKEMAKE) --profile profiles/local --cores $(CORES) $(LJ_DEMO) --report results/lj/report.zip

# one pytest worker per core, each test file whole on one (its module fixtures train once), in collection order
# (tests/conftest.py puts the longest files first): most slow tests use one thread
test: env
	$(VENV)/bin/python -m pytest -q --timeout 2400 --durations 25 -n $(CORES) --dist loadfile --no-loadscope-reorder

test-fast: env
	$(VENV)/bin/python -m pytest -q -m "not slow and not slurm and not workflow"

lint: env
	$(SNAKEMAKE) --lint

bench: env
	for b in bench/bench_*.py; do $(VENV)/bin/python $$b; done

# Full-size verification: the PeTS campaign (exact and MD-like noisy profiles, mu hidden) in its own
# working directories (a --configfile stands on the schema defaults, the demo is not read), then the
# comparison tables with FeOs side by side.
VALIDATE := $(SNAKEMAKE) --snakefile $(CURDIR)/Snakefile --cores $(CORES)
validate: env
	$(VALIDATE) --directory validation/pets --configfile $(CURDIR)/config/pets.yaml
	$(VALIDATE) --directory validation/pets_noisy --configfile $(CURDIR)/config/pets.yaml $(CURDIR)/config/pets_noisy.yaml
	$(VENV)/bin/python bench/pets_validation.py validation/pets validation/pets_noisy

clean-env:
	rm -rf $(VENV)

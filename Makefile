# ciq: raw files -> contract checks -> typed Parquet -> dbt on DuckDB -> causal-ready data.
# `make all` then `make test` on a fresh machine; `make help` lists everything.

.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

DATASET ?= events
TARGET ?=
MODE ?= replace
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CIQ := $(BIN)/ciq
DBT := $(BIN)/dbt
DBT_FLAGS := --project-dir dbt_project --profiles-dir .
export CIQ_HOME := $(CURDIR)


.PHONY: help setup all init land validate stage status load generate build summary report doctor publish test lint format docs bench sample clean snapshot clean-dry clean-archive clean-hard clean-landing

help: ## list the targets (DATASET=<name> picks the dataset, default events)
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed ## create .venv (if missing) and install ciq with its test tools

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

all: setup ## land data/raw/DATASET (the bundled sample for events), validate, stage, dbt build, report; TARGET=postgres also publishes
	$(CIQ) init $(DATASET)
	$(CIQ) land $(DATASET) data/raw/$(DATASET)
	$(CIQ) validate $(DATASET)
	$(CIQ) stage $(DATASET)
	$(CIQ) build $(DATASET) --report
	$(if $(filter postgres,$(TARGET)),$(CIQ) publish $(DATASET) --no-build --mode $(MODE))

init: setup ## copy the bundled sample into data/raw/DATASET/ when that folder is empty
	$(CIQ) init $(DATASET)

land: setup ## land SRC (files or a drop folder) as a batch of DATASET: make land SRC=~/drop [RUN_DATE=YYYYMMDD]
	$(CIQ) land $(DATASET) $(SRC) $(if $(RUN_DATE),--run-date $(RUN_DATE))

validate: setup ## check every landed batch: manifests present, parts present and intact
	$(CIQ) validate

stage: setup ## stage the latest landed batch of each run date (BATCH=all|<id>, RUN_DATE=YYYYMMDD)
	$(CIQ) stage $(DATASET) --batch $(or $(BATCH),latest) $(if $(RUN_DATE),--run-date $(RUN_DATE))

status: setup ## staged batches of DATASET: rows, rejects, state, schema check, issues
	$(CIQ) status $(DATASET)

load: setup ## check data/raw/DATASET/ against contracts/DATASET.yml and stage it as Parquet
	$(CIQ) load $(DATASET)

generate: setup ## write the dbt sources, docs and tests of DATASET from its contract
	$(CIQ) generate $(DATASET)

build: setup ## generate, then `dbt build` DATASET on DuckDB and print the diagnostics (TARGET=postgres: on PostgreSQL)
	$(CIQ) build $(DATASET) $(if $(TARGET),--target $(TARGET))

snapshot: setup ## copy the built tables of DATASET to data/snapshots/<today>/DATASET/ (ciq restore <date> brings them back)
	$(CIQ) snapshot $(DATASET)

clean-dry: setup ## list what retention would compress or remove for DATASET; changes nothing
	$(CIQ) clean $(DATASET) --dry-run

clean-archive: setup ## retention: compress old landing parts, move old batches to data/archive/
	$(CIQ) clean $(DATASET) --archive

clean-hard: setup ## retention: compress old landing parts, delete old landing and staged batches
	$(CIQ) clean $(DATASET) --hard

clean-landing: setup ## retention on the landing zone only: compress old parts, delete old batches
	$(CIQ) clean $(DATASET) --hard --landing-only

summary: setup ## print the overlap and balance results of the last build
	$(CIQ) summary $(DATASET)

report: setup ## write artifacts/DATASET/report.html (self-contained) and report.md from the last build
	$(CIQ) report $(DATASET)

doctor: setup ## check Python, dbt, DuckDB, disk space, the warehouse and PostgreSQL; say what to fix
	$(CIQ) doctor

publish: setup ## build DATASET on DuckDB, then publish it to PostgreSQL and test it there (MODE=upsert)
	$(CIQ) publish $(DATASET) --mode $(MODE)

test: setup lint ## run the test suite (real dbt, DuckDB files, every rule) after the linters
	$(BIN)/pytest -q

lint: setup ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: setup ## generate the dbt docs of DATASET and serve them on http://localhost:8080
	$(CIQ) generate $(DATASET)
	$(DBT) docs generate $(DBT_FLAGS)
	$(DBT) docs serve $(DBT_FLAGS) --port 8080 --no-browser

bench: setup ## benchmarks: loader vs DuckDB COPY, propensity + diagnostics per 1M rows, publish vs psql \copy
	$(BIN)/python bench/run.py

sample: setup ## regenerate the small tracked sample in data/samples/events/
	$(BIN)/python -c "from pathlib import Path; from loaders.sample_data import write_sample; print(write_sample(Path('data/samples/events')))"

clean: ## remove staged data, rejects, the warehouse, reports and dbt's target/ (raw files stay)
	rm -rf data/staged data/rejects artifacts warehouse/*.duckdb warehouse/*.wal warehouse/publish dbt_project/target dbt_project/logs logs

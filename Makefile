# rltrain: `make run` and `make test` set everything up from nothing (a venv in .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev,atari,plot,sweep,llm,export,mlflow,wandb

.PHONY: help install run test test-slow lint type bench board docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install rltrain with its dev, atari, plot, sweep, llm, export, mlflow and wandb extras

run: $(STAMP)  ## train the default job (PPO on CartPole) and evaluate it
	$(BIN)/rltrain

test: $(STAMP)  ## the default test suite (unit, smoke, CLI; no slow learning tests)
	$(BIN)/python -m pytest -n 2 -q tests

test-slow: $(STAMP)  ## learning tests that reach thresholds (minutes)
	$(BIN)/python -m pytest -q -m slow tests

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check rltrain tests scripts

type: $(STAMP)  ## mypy
	$(BIN)/mypy rltrain

bench: $(STAMP)  ## rltrain vs Stable-Baselines3, side by side (installs the bench extra)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python scripts/bench.py

board: $(STAMP)  ## TensorBoard on ./runs
	$(BIN)/rltrain board runs

docs: $(STAMP)  ## regenerate docs/config.md's config reference from the schemas
	$(BIN)/python scripts/config_reference.py --write docs/config.md

clean:  ## remove run outputs and caches (keeps .venv)
	rm -rf runs multirun outputs .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info

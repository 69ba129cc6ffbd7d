# SyncroBoard gateway: every command a developer or CI needs.
#   make run    the gateway on this machine (emulator, Redis, Kafka broker, demo services)
#   make test   every check: format, lint, types, template checks, sam build, pytest

SHELL := /bin/bash
PYTHON_VERSION ?= 3.12
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
REGION ?= us-east-1
export PYENV_VERSION ?= $(shell pyenv versions --bare 2>/dev/null | grep -E '^$(PYTHON_VERSION)(\.|$$)' | tail -n1)

.PHONY: run test check lint format typecheck template build pytest bench clean

$(PY): pyproject.toml
	python$(PYTHON_VERSION) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[dev]'
	touch $(PY)

$(SAM):
	python$(PYTHON_VERSION) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli>=1.140,<2'

run: $(PY)
	$(PY) -m devstack

test: lint typecheck template pytest

lint: $(PY)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(PY)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(PY)
	$(VENV)/bin/mypy

template: $(PY) $(SAM)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SAM="$(SAM)" REGION=$(REGION) scripts/check_template.sh

build: $(SAM)
	$(SAM) build --parallel

pytest: $(PY)
	$(PY) -m pytest

bench: $(PY)
	$(PY) -m bench

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache

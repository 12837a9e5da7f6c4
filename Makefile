# BEAMFlow — the two front-door commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
GEN    := beamflowd/api/gen

.PHONY: help venv test demo proto proto-check lint typecheck clean

help:
	@echo "make test    create $(VENV) if missing, install, run the whole suite"
	@echo "make demo    create $(VENV), start a local 3-node cluster with demo load and the dashboard"
	@echo "make proto   regenerate the committed gRPC stubs in $(GEN)"
	@echo "make lint    ruff + mypy --strict + import contracts (lint-imports)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: venv
	$(BIN)/python -m beamctl.demo

proto: venv
	rm -rf $(GEN)/beamflow
	mkdir -p $(GEN)/beamflow/v1
	$(BIN)/python -m grpc_tools.protoc -I proto \
		--python_out=$(GEN) --pyi_out=$(GEN) --grpc_python_out=$(GEN) \
		proto/beamflow/v1/*.proto
	touch $(GEN)/beamflow/__init__.py $(GEN)/beamflow/v1/__init__.py
	# protoc writes `from beamflow.v1 import x_pb2`; our stubs live in a subpackage. Only anchored import lines.
	sed -i -E 's/^from beamflow\.v1 import /from beamflowd.api.gen.beamflow.v1 import /' $(GEN)/beamflow/v1/*.py $(GEN)/beamflow/v1/*.pyi

# Fails when the committed stubs differ from a fresh `make proto`.
proto-check: proto
	git diff --exit-code -- $(GEN) || (echo "generated stubs are stale: run 'make proto' and commit" >&2; exit 1)
	test -z "$$(git status --porcelain -- $(GEN))" || (echo "untracked generated files: run 'make proto' and commit" >&2; exit 1)

lint: venv
	$(BIN)/ruff check beamflowd beamctl tests
	$(BIN)/ruff format --check beamflowd beamctl tests
	$(BIN)/mypy beamflowd beamctl
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis

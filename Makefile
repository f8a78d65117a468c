# Every target builds .venv from nothing when it is missing, so a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
PROTOS := $(shell find rpc raftcore kvapi kvserver clerk examples -name '*.proto' 2>/dev/null | sort)

.PHONY: run test lint proto bench clean torture

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

## run: a 3-node cluster on 127.0.0.1 (raftCoreRun); Ctrl-C stops every node
run: $(STAMP)
	$(PY) -m cli.run -n 3 -f test.conf

## test: lint, type-check and the whole default test suite
test: lint
	$(PY) -m pytest

## torture: real network faults, each node in its own network namespace (root; installs nft)
##   TORTURE_SECONDS=600 lengthens the random campaign; TORTURE_SEED=S replays one;
##   TORTURE_ARGS passes pytest options (e.g. -k lease)
TORTURE_SECONDS ?= 20
TORTURE_ARGS ?=
torture: $(STAMP)
	command -v nft >/dev/null || (apt-get update -q && apt-get install -y -q nftables) \
		|| echo "nftables not installable: the torture tests will skip"
	TORTURE_SECONDS=$(TORTURE_SECONDS) $(PY) -m pytest -m torture tests/torture $(TORTURE_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## proto: regenerate the committed *_pb2.py / *_pb2.pyi from the .proto sources
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. $(PROTOS)

bench: $(BENCH_STAMP)
	$(PY) -m bench.rpc

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

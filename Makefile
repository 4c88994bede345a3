# Shokai: `make run` plays it locally, `make test` proves it. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint browser clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Shokai needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@ $(VENV)/.run-installed

## run: embedded Redis + the bot + the LINE simulator console on http://127.0.0.1:8080/
run: $(VENV)/.run-installed
	$(BIN)/python -m bot dev

## browser: Debian's Chromium for the console tests (skipped with a reason where it cannot be installed)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium for the browser tests…"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk) >/dev/null 2>&1 \
	      || echo "Chromium could not be installed: the browser tests will be skipped"; \
	  else echo "no Chromium and no root apt-get: the browser tests will be skipped"; fi; }

## lint: ruff and mypy
lint: $(VENV)/.test-installed
	$(BIN)/ruff check bot handlers rewards linesim tests benchmarks
	$(BIN)/mypy

## test: the whole suite against a real Redis (embedded, or REDIS_URL), then its cluster part on a real Redis Cluster
test: $(VENV)/.test-installed browser
	$(BIN)/ruff check bot handlers rewards linesim tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q
	@echo "the cluster-marked tests again, on a three-master Redis Cluster started for them:"
	SHOKAI_TEST_CLUSTER=1 $(BIN)/python -m pytest -q -m cluster -p no:cacheprovider

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

## bench: the benchmarks (the ledger's throughput and memory per member, then the webhook against the SDK's echo) against a real Redis (embedded, or REDIS_URL: an empty database, which they flush); results in benchmarks/results/
.PHONY: bench bench-ledger bench-webhook
bench: bench-ledger bench-webhook

bench-ledger: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks.ledger

## bench-webhook: signed events at rising rates into `python -m bot serve`, the SDK echo baseline, fsync always vs everysec, 1 vs 2 workers
bench-webhook: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks.webhook

## bench-broadcast: one broadcast to 100,000 members through the LINE stand-in at a set rate (about 1½ minutes); results in benchmarks/results/
.PHONY: bench-broadcast
bench-broadcast: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks.broadcast

## screens: pictures of the main cards as the simulator console draws them, ja and en, into docs/screens/ (needs Chromium: `make browser`)
.PHONY: screens
screens: $(VENV)/.test-installed browser
	$(BIN)/python -m linesim.screens

# Shokai: `make run` plays it locally, `make test` proves it. Both build .venv themselves, from the lock files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The exact versions (with their hashes) of everything installed, written by `make lock` from pyproject.toml's
# ranges: the runtime's, and the runtime's plus the test extra's (the same versions in both).
LOCK := requirements.lock
TEST_LOCK := requirements-test.lock

.PHONY: run test lint browser clean lock test-latest

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Shokai needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

# From the lock only: then the project itself, with no dependency resolved again (--no-deps) and built by the
# locked setuptools (--no-build-isolation); `pip check` stops a lock that no longer fits pyproject.toml.
# A stamp is older than a changed lock or pyproject.toml, so the next run installs again.
define install_locked
	$(BIN)/pip install -q -r $(1)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@$(BIN)/pip check || { echo "the lock does not fit pyproject.toml: \`make lock LOCK_UPGRADE=\` re-locks it"; exit 1; }
endef

$(VENV)/.run-installed: pyproject.toml $(LOCK) | $(BIN)/python
	$(call install_locked,$(LOCK))
	@touch $@

$(VENV)/.test-installed: pyproject.toml $(TEST_LOCK) | $(BIN)/python
	$(call install_locked,$(TEST_LOCK))
	@touch $@ $(VENV)/.run-installed

## run: embedded Redis + the bot + the LINE simulator console on http://127.0.0.1:8080/
run: $(VENV)/.run-installed
	$(BIN)/python -m bot dev

## browser: Debian's Chromium for the console tests (skipped with a reason where it cannot be installed), with
##          Japanese and colour emoji fonts so screenshots show text, not boxes
EMOJI_FONT := /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
browser:
	@{ command -v chromium >/dev/null 2>&1 && [ -e $(EMOJI_FONT) ]; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium for the browser tests…"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk fonts-noto-color-emoji) >/dev/null 2>&1 \
	      || echo "Chromium could not be installed: the browser tests will be skipped"; \
	  else echo "no Chromium and no root apt-get: the browser tests will be skipped"; fi; }

## lint: ruff and mypy
lint: $(VENV)/.test-installed
	$(BIN)/ruff check bot handlers rewards linesim tests benchmarks
	$(BIN)/mypy

## test: the whole suite against a real Redis (embedded, or REDIS_URL) and, beside it, its cluster part on a real
##       Redis Cluster started for it (its output kept in var/ and printed after). The suite runs in two processes
##       (pytest-xdist, each with its own embedded Redis) but for the timing-bound fault tests (marked `serial`:
##       leases, SIGKILLs, floods), which run after on their own; one process when REDIS_URL is shared.
TEST_WORKERS = $(if $(REDIS_URL),0,2)
test: $(VENV)/.test-installed browser
	$(BIN)/ruff check bot handlers rewards linesim tests benchmarks
	$(BIN)/mypy
	@mkdir -p var
	@SHOKAI_TEST_CLUSTER=1 $(BIN)/python -m pytest -q -m cluster -p no:cacheprovider >var/cluster-tests.log 2>&1 & \
	  cluster=$$!; \
	  $(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not serial"; single=$$?; \
	  $(BIN)/python -m pytest -q -m serial; serial=$$?; \
	  wait $$cluster; clustered=$$?; \
	  echo "the cluster-marked tests again, run beside them on a three-master Redis Cluster:"; \
	  cat var/cluster-tests.log; \
	  [ $$single -eq 0 ] && [ $$serial -eq 0 ] && [ $$clustered -eq 0 ]

## lock: upgrade the lock files, deliberately, to the newest versions pyproject.toml allows (pip-tools, in .venv-lock);
##       review the diff and run `make test`. LOCK_UPGRADE="-P redis" moves one package; LOCK_UPGRADE= only
##       re-locks after pyproject.toml changed, keeping every other pin.
LOCK_VENV := .venv-lock
LOCK_UPGRADE ?= --upgrade
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile -q $(LOCK_UPGRADE) --generate-hashes \
	--allow-unsafe --all-build-deps --strip-extras --no-emit-index-url --no-emit-find-links pyproject.toml
lock: | $(LOCK_VENV)/bin/pip-compile
	$(PIP_COMPILE) --extra test -o $(TEST_LOCK)
	$(PIP_COMPILE) -c $(TEST_LOCK) -o $(LOCK)

$(LOCK_VENV)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q 'pip==26.3' 'pip-tools==7.7.0'

## test-latest: what `make test` checks, in .venv-latest built afresh with the newest versions pyproject.toml allows
##              (not the lock), after listing how they differ from it: is that upgrade one to take with `make lock`?
LATEST_VENV := .venv-latest
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install -q --upgrade pip
	$(LATEST_VENV)/bin/pip install -q -e '.[test]'
	@touch $(LATEST_VENV)/.test-installed $(LATEST_VENV)/.run-installed
	$(LATEST_VENV)/bin/python .ci/lock_diff.py $(TEST_LOCK)
	$(MAKE) test VENV=$(LATEST_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) $(LATEST_VENV) var .pytest_cache .mypy_cache .ruff_cache

## bench: the benchmarks (the ledger's throughput and memory per member, then the webhook against the SDK's echo) against a real Redis (embedded, or REDIS_URL: an empty database, which they flush); results in benchmarks/results/
.PHONY: bench bench-ledger bench-webhook
bench: bench-ledger bench-webhook

bench-ledger: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks.ledger

## bench-webhook: signed events at rising rates into `python -m bot serve`, the SDK echo baseline, fsync always vs everysec, 1 vs 2 workers
bench-webhook: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks.webhook

## bench-takeover: SIGKILL a worker and time until its users' next event is answered, by a survivor and by the process restarted under its platform name (about 1 minute); results in benchmarks/results/
.PHONY: bench-takeover
bench-takeover: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks.takeover

## bench-broadcast: one broadcast to 100,000 members through the LINE stand-in at a set rate (about 1½ minutes); results in benchmarks/results/
.PHONY: bench-broadcast
bench-broadcast: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks.broadcast

## screens: pictures of the main cards as the simulator console draws them, ja and en, into docs/screens/ (needs Chromium: `make browser`)
.PHONY: screens
screens: $(VENV)/.test-installed browser
	$(BIN)/python -m linesim.screens

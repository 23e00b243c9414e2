PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install run test bench lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@echo "Installing helpdesk and its dependencies into $(VENV) (first time: a minute or two)…"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test]'
	@# The browser tests use the system Chromium when there is one (Debian: `chromium`).
	command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
		$(BIN)/playwright install chromium
	touch $(STAMP)
	@echo "Installed."

run: install
	$(BIN)/helpdesk run $(ARGS)

# Two processes (pytest-xdist), each on state of its own (tests/conftest.py); a test file
# runs whole in one of them. TEST_PROCESSES=0 runs everything in this one.
TEST_PROCESSES ?= 2

test: install
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_PROCESSES)),,-n $(TEST_PROCESSES) --dist loadfile) $(ARGS)

# The spine (webhooks, drain, latencies), queue/next at 10k-1M tickets, metrics at 1M facts,
# urgency judgement on the held-out half of the labelled set; routing throughput and the batch
# of one; a burst of 1,000 raw emails and SQLite under 8 senders (bench.burst); one vs two web
# processes and workers, webhook -> socket at half load (bench.scaling).
bench: install
	$(BIN)/python -m bench $(ARGS)
	$(BIN)/python -m bench.queue
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.burst
	$(BIN)/python -m bench.scaling
	$(BIN)/python -m bench.metrics
	$(BIN)/python -m bench.urgency

lint: install
	$(BIN)/ruff check helpdesk workers tests bench

clean:
	rm -rf $(VENV) instance .pytest_cache

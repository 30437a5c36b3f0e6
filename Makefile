# Two commands for a new user: `make demo` and `make test`. Both create .venv and install rlxf
# with the CPU build of PyTorch first (an unpinned torch would pull the multi-GB CUDA build),
# then every other package at the version in requirements/lock.txt: the versions the test suite
# last passed on, so a new machine gets what CI passed. pyproject.toml keeps ranges (rlxf as a
# library). The lock holds transformers at 5.23.0, where bench/results/ were measured: on newer
# releases TRL's GRPOTrainer, the benchmark's peer, is over 2x slower (requirements/holds.txt).
# `make test-latest` runs the suite on the newest releases instead; `make lock` regenerates the lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
LOCK := requirements/lock.txt

.PHONY: install demo examples test bench lock test-latest clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[test]'
	touch $@

demo: install
	$(BIN)/rlxf run examples/quickstart.toml --out runs/quickstart
	@echo "Open runs/quickstart/report/index.html (also report.md and report.json)."

# Every example of examples/findings.toml over SEEDS training seeds (hours on 2 cores: the
# quickstart first, the others reuse its stages); rewrites examples/results/ and the headers.
SEEDS ?= 3
examples: install
	$(BIN)/python examples/make_examples.py --seeds $(SEEDS)

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/run.py

# A fresh venv (.venv-lock) at the newest versions but requirements/holds.txt; writes $(LOCK)
# only if the suite passes there.
lock:
	PYTHON=$(PYTHON) TORCH=$(TORCH) requirements/lock.sh

# The suite on the newest transformers, TRL, peft, accelerate (.venv-latest/, Python 3.11 and
# 3.12 where installed); prints the versions against the lock and what broke.
test-latest:
	TORCH=$(TORCH) requirements/test_latest.sh

clean:
	rm -rf $(VENV) .venv-lock .venv-latest runs .pytest_cache

# Two commands for a new user: `make demo` and `make test`. Both create .venv and install rlxf
# with the CPU build of PyTorch first (an unpinned torch would pull the multi-GB CUDA build).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/rlxf run examples/quickstart.toml --out runs/quickstart
	@echo "Open runs/quickstart/report/index.html (also report.md and report.json)."

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) runs .pytest_cache

# The two commands of the project are `make run` and `make test`; both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODELS ?= models

.PHONY: run test lint bench smoke zoo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $@

# Serve the bundled models; with none bundled, train and export the smoke preset first.
run: $(VENV)/.installed
	@if ! ls $(MODELS)/*/manifest.json >/dev/null 2>&1; then \
		$(BIN)/disentangle-train fit --preset smoke --export-dir $(MODELS)/smoke; fi
	$(BIN)/disentangle-serve --model-dir $(MODELS)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs test-artifacts

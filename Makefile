# The two commands of the project are `make run` and `make test`; both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODELS ?= models
# The service's default model: the dSprites beta-TCVAE when it is bundled, else the first by name.
DEFAULT_MODEL ?= $(if $(wildcard $(MODELS)/dsprites_beta_tcvae/manifest.json),dsprites_beta_tcvae,)

.PHONY: run test lint bench zoo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $@

# Serve the bundled models; with none bundled, train and export the smoke preset first.
run: $(VENV)/.installed
	@if ! ls $(MODELS)/*/manifest.json >/dev/null 2>&1; then \
		$(BIN)/disentangle-train fit --preset smoke --export-dir $(MODELS)/smoke; fi
	$(if $(DEFAULT_MODEL),DISENTANGLE_DEFAULT_MODEL=$(DEFAULT_MODEL)) $(BIN)/disentangle-serve --model-dir $(MODELS)

# The browser tests need Debian's Chromium; the container tests prepare podman themselves.
test: $(VENV)/.installed
	@if [ -x scripts/install-browser.sh ]; then scripts/install-browser.sh; fi
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python bench/train_throughput.py
	@if [ -f bench/serve_load.py ]; then $(BIN)/python bench/serve_load.py; fi

# Retrain, export and evaluate every model of the zoo (hours on a CPU; see README, "Model zoo").
zoo: $(VENV)/.installed
	$(BIN)/disentangle-train zoo configs/zoo/*.toml --models $(MODELS)
	$(BIN)/disentangle-train eval $(MODELS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs test-artifacts

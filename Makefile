# The two commands of the project are `make run` and `make test`; each sets up its own venv on first use:
# `make run` a serve-only one (.venv-serve: the base install, no torch), `make test` the full one (.venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVE_VENV := .venv-serve
MODELS ?= models
# The service's default model: the dSprites beta-TCVAE when it is bundled, else the first by name.
DEFAULT_MODEL ?= $(if $(wildcard $(MODELS)/dsprites_beta_tcvae/manifest.json),dsprites_beta_tcvae,)

.PHONY: run models-present test lint bench zoo clean clean-runs

# The training extra's torch. TORCH=cpu (the default on a machine without an NVIDIA driver) takes the CPU build
# from PyTorch's CPU index (a 190 MB wheel, 750 MB installed); TORCH=cuda takes PyPI's default Linux build, which
# brings about 3 GB of CUDA wheels. torch is installed first and from that index alone, so that an unreachable
# CPU index fails here instead of letting PyPI serve the CUDA build.
TORCH ?= $(if $(shell command -v nvidia-smi 2>/dev/null),cuda,cpu)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
ifeq ($(TORCH),cpu)
	$(BIN)/python docker/requirements.py pyproject.toml --extra train --only torch > $(VENV)/torch.txt
	$(BIN)/pip install --quiet --retries 1 --index-url $(TORCH_CPU_INDEX) -r $(VENV)/torch.txt
endif
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $@

# Serving needs only the base dependencies (onnxruntime, FastAPI): no torch, no browser.
$(SERVE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/pip install --quiet -e .
	touch $@

# Serve the models under $(MODELS) (the bundled zoo by default; `make run MODELS=models-local` for your own).
# Checked before anything is installed; serving never trains, so it never needs torch.
run: models-present $(SERVE_VENV)/.installed
	$(if $(DEFAULT_MODEL),DISENTANGLE_DEFAULT_MODEL=$(DEFAULT_MODEL)) $(SERVE_VENV)/bin/disentangle-serve --model-dir $(MODELS)

models-present:
	@if ! ls $(MODELS)/*/manifest.json >/dev/null 2>&1; then \
		echo "make run: no model under $(MODELS)/ (a folder holding manifest.json)." >&2; \
		echo "  The zoo is committed under models/: restore it with 'git checkout -- models'," >&2; \
		echo "  or train one (README, Train) and serve it with 'make run MODELS=models-local'." >&2; \
		exit 1; fi

# The browser tests need Debian's Chromium and the benchmark tests wrk (scripts/install-test-tools.sh); the container tests use Docker, or podman (tests/test_container.py).
test: $(VENV)/.installed
	@scripts/install-test-tools.sh
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/serve_load.py
	$(BIN)/python bench/uvicorn_floor.py

# Retrain, export and evaluate every model of the zoo (hours on a CPU; see README, "Model zoo"). This is the one
# command meant to rewrite the committed models/, hence --overwrite (`disentangle-train zoo` alone refuses to).
zoo: $(VENV)/.installed
	$(BIN)/disentangle-train zoo configs/zoo/*.toml --models $(MODELS) --overwrite
	$(BIN)/disentangle-train eval $(MODELS)

# runs/ holds the training checkpoints, which hours of work went into: `make clean` keeps it, `make clean-runs`
# removes it.
clean:
	rm -rf $(VENV) $(SERVE_VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts

clean-runs:
	rm -rf runs

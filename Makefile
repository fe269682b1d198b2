# Two set-up commands for a new user: `make demo` and `make test`. Both bootstrap .venv idempotently.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-all lint typecheck bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first: the pinned CPU build installs in seconds here; any other version downloads gigabytes.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0
	# the package with every extra the demo and the tests use (train, plot, experiments, dev);
	# `pip install softloc` alone is enough to detect and evaluate.
	$(BIN)/pip install -e '.[train,plot,experiments,dev]'
	# SoundFont renderer for the built-in drum/piano generators; --no-deps because its only
	# dependency (pyaudio, for live playback) needs a C toolchain and PortAudio, and is never used.
	$(BIN)/pip install --no-deps 'tinysoundfont>=0.3'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/softloc demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check softloc tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy softloc

test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slow" -q

test-all: $(STAMP) lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/count_loss.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache .mypy_cache

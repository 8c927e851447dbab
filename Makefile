# The README's commands. Each target creates .venv if absent and installs the package into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test train train-edge train-edge-shares train-power train-sfl bench install clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the pinned version is a local CPU build; a bare `torch` would pull CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/gnnalloc demo

test: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest

# Each family's shipped model: at most 15 minutes each on 2 CPU cores.
train: train-edge train-power train-sfl

train-power: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/gnnalloc fit --config training/configs/power.yaml
	$(BIN)/gnnalloc export "$$(ls -t checkpoints/power-best-*.ckpt | head -n 1)" --out checkpoints/power.ckpt

# The edge family's gnn (price model); the share-head baseline (gnn-shares) is train-edge-shares.
# One thread: then the run reproduced the shipped checkpoint's weights bit for bit on the 2-core
# AMD EPYC it was trained on, labels included (another CPU or torch build may round differently;
# two threads sum in another order and train a different model).
train-edge: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m gnnalloc.families.edge.training.prices --config training/configs/edge-prices.yaml

train-sfl: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/gnnalloc fit --config training/configs/sfl.yaml
	$(BIN)/gnnalloc export "$$(ls -t checkpoints/sfl-run/best-*.ckpt | head -n 1)" --out checkpoints/sfl.ckpt

train-edge-shares: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/gnnalloc fit --config training/configs/default.yaml
	$(BIN)/gnnalloc export "$$(ls -t checkpoints/best-*.ckpt | head -n 1)" --out checkpoints/default.ckpt

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

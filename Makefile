# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# torch is installed first, pinned, so pip takes the local CPU wheel instead of a multi-GB CUDA build;
# pyproject.toml keeps the open range torch>=2.4 for users elsewhere.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
DEMO_OUT ?= gengen-demo

.PHONY: setup demo test lint bench clean

$(BIN)/gengen: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(BIN)/gengen

setup: $(BIN)/gengen

demo: setup
	$(BIN)/gengen demo -o $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/vae_tybalt.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache

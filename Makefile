# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install bench clean

$(BIN)/ferkit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the CPU build on this machine's disk (never a CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/ferkit

demo: install
	$(BIN)/ferkit demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

# the speed benchmarks, each with the peer measured beside ferkit in the same run (the others take
# arguments or hours: benchmarks/*.py say how to run them; bench_avx2.py needs valgrind)
bench: install
	$(BIN)/pip install -q -e '.[bench]'
	for f in models predict paths detect; do $(BIN)/python benchmarks/bench_$$f.py || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info

# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ragtune-setup
export DS_BUILD_SHM_COMM := 1
export DS_BUILD_CPU_ADAM := 1

.PHONY: setup test test-all demo lint bench clean

setup: $(STAMP)

# torch first (the pinned CPU wheel), then DeepSpeed built against it with its C++ ops compiled at
# install time so the first training run does not stall compiling, then the project itself.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel ninja
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/python -c "import deepspeed" 2>/dev/null || \
		$(BIN)/pip install -q --no-build-isolation deepspeed==0.19.8
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ''

demo: setup
	$(BIN)/ragtune demo configs/demo.yaml

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info

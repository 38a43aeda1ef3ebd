#!/usr/bin/env bash
# Install ragtune on a Ray node from its wheel. The one install path of every node: the container
# image (Dockerfile), the cluster launcher's setup_commands and the tests' second node run it.
#
#   install-ragtune.sh WHEEL [EXTRAS]
#
# WHEEL: a wheel file from `make dist` (checked against WHEEL.sha256 when that file lies beside
# it) or an http(s) URL; EXTRAS: e.g. gpu. PYTHON: the interpreter to install into (default
# python3). RAGTUNE_PIP_ARGS: more pip arguments (e.g. --no-deps where the dependencies are in
# place already).
set -euo pipefail

wheel=${1:?usage: install-ragtune.sh WHEEL [EXTRAS]}
extras=${2:-}
python=${PYTHON:-python3}

case "$wheel" in
  http://* | https://*) requirement="ragtune${extras:+[$extras]} @ $wheel" ;;
  *)
    [ -f "$wheel" ] || { echo "install-ragtune: no wheel at $wheel (build one with: make dist)" >&2; exit 2; }
    if [ -f "$wheel.sha256" ]; then
      (cd "$(dirname "$wheel")" && sha256sum --check --quiet "$(basename "$wheel").sha256") \
        || { echo "install-ragtune: $wheel does not match $wheel.sha256" >&2; exit 2; }
    fi
    requirement="$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")${extras:+[$extras]}"
    ;;
esac

# shellcheck disable=SC2086  # RAGTUNE_PIP_ARGS holds several arguments
"$python" -m pip install --quiet --no-cache-dir ${RAGTUNE_PIP_ARGS:-} "$requirement"
"$python" -m ragtune version

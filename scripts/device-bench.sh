#!/usr/bin/env bash
# On a lent GPU machine (see scripts/prepare-device-bench.sh): install the carried wheels beside the
# image's torch, put the checkout's packages on the path, and run the full GPU benchmark into $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/server:$PWD/client" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    TRANSFORMERS_VERBOSITY=error PYTHONUNBUFFERED=1
mkdir -p "${OUT:-bench-results}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m rerank_server.bench --device cuda --model-dir .bench-model --out "${OUT:-bench-results}" "$@" 2>&1 \
    | tee "${OUT:-bench-results}/log.txt"

#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: make .venv, install the project with its server and
# test extras (torch pinned to the CPU build by constraints.txt), then run pytest. Extra arguments
# go to pytest, e.g. ./scripts/test.sh -k batcher
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[server,test]' 2>&1 | grep -v "is ignored: it is neither" || true
# Tests never reach a model hub: everything they load is built or bundled locally.
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"

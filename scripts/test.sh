#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: install the project with its server and test extras
# into .venv and the load testers the tests drive into .venv-tools, then run pytest. Extra arguments
# go to pytest, e.g. ./scripts/test.sh -k batcher
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh server,test
./scripts/install-tools.sh
# Tests never reach a model hub: everything they load is built at test time or bundled.
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"

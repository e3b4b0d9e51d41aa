#!/usr/bin/env bash
# Make .venv (if missing) and install this project into it with the given extras, e.g.
#   ./scripts/install.sh server        ./scripts/install.sh server,test
# torch is pinned by constraints.txt to the CPU build (an unpinned torch pulls a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-server}"
if [ ! -x .venv/bin/python ]; then
    echo "install: creating .venv" >&2
    "${PYTHON:-python3}" -m venv .venv
fi
# Say what the (quiet) install is doing: a first install takes a few minutes (torch's CPU build and
# sentence-transformers), later ones seconds.
echo "install: rerank-grpc[${EXTRAS}] into .venv (torch pinned by constraints.txt; the first time takes a few minutes)" >&2
# This machine's pip warns once per missing local index directory: filter that out; failures still stop us.
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[${EXTRAS}]" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

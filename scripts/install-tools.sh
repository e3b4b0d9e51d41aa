#!/usr/bin/env bash
# Make .venv-tools (if missing) with the load testers the tests drive as their users run them: NVIDIA's
# AIPerf. It gets a venv of its own because it pins its dependencies tightly (rich, pillow, psutil,
# huggingface-hub 1.x) and would otherwise move the server's own; the version is pinned because its CLI
# changes between releases.
set -euo pipefail
cd "$(dirname "$0")/.."
AIPERF_VERSION=0.13.0
if [ ! -x .venv-tools/bin/aiperf ] || ! .venv-tools/bin/python -m pip show aiperf 2>/dev/null | grep -qx "Version: ${AIPERF_VERSION}"; then
    echo "install: AIPerf ${AIPERF_VERSION} into .venv-tools (its own venv: the first time takes a few minutes)" >&2
    [ -x .venv-tools/bin/python ] || "${PYTHON:-python3}" -m venv .venv-tools
    .venv-tools/bin/python -m pip install --quiet "aiperf==${AIPERF_VERSION}" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi

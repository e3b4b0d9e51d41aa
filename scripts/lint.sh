#!/usr/bin/env bash
# Static checks: ruff (pyflakes, bugbear, pyupgrade) and mypy over both packages. Run after
# ./scripts/test.sh (which installs the tools into .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check client server tests scripts
.venv/bin/mypy

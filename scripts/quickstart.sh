#!/usr/bin/env bash
# Install, start rerank-server on the bundled all-MiniLM-L6-v2 model (offline), and rank some
# documents with the rerank CLI. The server then keeps running until Ctrl-C.
#   ./scripts/quickstart.sh            # serve on 127.0.0.1:50051 (PORT=... to change)
#   ./scripts/quickstart.sh --check    # stop the server after the call (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-50051}"
TARGET="127.0.0.1:${PORT}"
./scripts/install.sh server
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false

.venv/bin/rerank-server --model all-MiniLM-L6-v2 --port "$PORT" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
.venv/bin/rerank health --target "$TARGET" --wait 180 >/dev/null

echo
echo "\$ rerank --target $TARGET \"how do plants make energy from light?\" ..."
.venv/bin/rerank --target "$TARGET" "how do plants make energy from light?" \
    "The stock market fell sharply on Tuesday after the central bank raised rates." \
    "Photosynthesis converts light energy into chemical energy stored in glucose." \
    "Chlorophyll in the leaves absorbs mostly blue and red light." \
    "A recipe for sourdough bread needs flour, water, salt and a starter."
echo
if [ "${1:-}" = "--check" ]; then
    exit 0
fi
echo "rerank-server is serving all-MiniLM-L6-v2 on $TARGET; try: .venv/bin/rerank --help   (Ctrl-C stops it)"
wait "$SERVER"

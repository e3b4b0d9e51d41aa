#!/usr/bin/env bash
# Prepare what the GPU benchmark needs on a lent device machine, which has torch, sentence-transformers
# and transformers but older grpcio/protobuf, no grpcio-health-checking/-reflection and no bundled model,
# and reaches no network. Run here, after ./scripts/install.sh server; then run the device with
#   carry: [".whl", ".bench-model"]   command: bash scripts/device-bench.sh
# .whl/         cp312 wheels of the gRPC stack at this checkout's versions (about 7 MB)
# .bench-model/ the benchmark cross-encoder (MiniLM-L6 shape, fitted head) saved in float16 (about 45 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
for name in grpcio protobuf grpcio-health-checking grpcio-reflection; do
    version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")
    .venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl "$name==$version" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
done
HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error .venv/bin/python - <<'PY'
import shutil
from pathlib import Path

import torch
from sentence_transformers import CrossEncoder

from rerank_server.bench.model import build_minilm_cross_encoder, fit_head_to_bi_encoder
from rerank_server.bench.workload import pairs_of, requests

work = Path(".bench-model")
fresh = not (work / "minilm-l6-cross-encoder" / "config.json").is_file()
model_dir = build_minilm_cross_encoder(work)
if fresh:
    print(f"head fitted: Spearman {fit_head_to_bi_encoder(model_dir, pairs_of(requests(80, (10, 20), seed=99))):.3f}")
    model = CrossEncoder(str(model_dir), device="cpu", activation_fn=torch.nn.Identity())
    model.model.half()  # half the bytes to carry; the benchmark loads each precision from it
    model.save_pretrained(str(model_dir))
shutil.rmtree(work / "minilm-l6-hf", ignore_errors=True)  # the intermediate copy: not worth carrying
PY
du -sh .whl .bench-model

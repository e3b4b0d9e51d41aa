"""Regenerate the Python code for protos/ into protos/rerank_proto/, the package client and server share.

Run from anywhere: ``python scripts/gen_protos.py``. Needs grpcio-tools and mypy-protobuf
(``pip install -e '.[dev]'``). The output is committed; tests/client/test_generated_code.py proves it
is current by regenerating into a temporary directory and comparing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT_PACKAGE = ROOT / "protos" / "rerank_proto"
# Absolute imports protoc writes ("from rerank.v1 import rerank_pb2") would need protos/ on sys.path;
# rewrite them to relative ones so the generated code lives in a package of its own.
_ABSOLUTE_IMPORT = re.compile(r"^from rerank\.v1 import (\w+)", re.MULTILINE)
_INIT_DOC = '"""Generated protobuf and gRPC code for rerank.v1 (do not edit; see scripts/gen_protos.py)."""\n'


def generate(out_dir: Path) -> None:
    """Write the generated modules for every .proto under protos/ into ``out_dir``."""
    from grpc_tools import protoc  # imported here: only developers need grpcio-tools

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as raw:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={raw}",
            f"--grpc_python_out={raw}",
            f"--mypy_out={raw}",
            f"--mypy_grpc_out={raw}",
            *protos,
        ]
        bin_dir = Path(sys.executable).parent
        # protoc finds the mypy plugins on PATH; make the running interpreter's scripts visible.
        import os

        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {protos}")
        out_dir.mkdir(parents=True, exist_ok=True)
        for src in sorted(Path(raw, "rerank", "v1").iterdir()):
            text = _ABSOLUTE_IMPORT.sub(r"from . import \1", src.read_text())
            (out_dir / src.name).write_text(text)
        (out_dir / "__init__.py").write_text(_INIT_DOC)
        (out_dir / "py.typed").write_text("")


def main() -> None:
    """Command-line entry point: regenerate into the package, or into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_PACKAGE, help="directory to write (default: the package)")
    args = parser.parse_args()
    if args.out == OUT_PACKAGE and OUT_PACKAGE.exists():
        shutil.rmtree(OUT_PACKAGE)
    generate(args.out)
    print(f"wrote {sorted(p.name for p in args.out.iterdir())} to {args.out}")


if __name__ == "__main__":
    main()

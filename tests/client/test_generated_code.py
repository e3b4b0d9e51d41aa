"""The committed stubs in rerank_proto are exactly what protos/ generates today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "protos" / "rerank_proto"


def test_regenerating_from_protos_changes_nothing(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    generated = {p.name: p.read_text() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_text() for p in PACKAGE.iterdir() if p.is_file()}
    assert set(generated) == set(committed)
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"{stale} are stale: run python scripts/gen_protos.py and commit the result"
    assert any(name.endswith(".pyi") for name in committed)


def test_the_client_imports_without_torch() -> None:
    code = (
        "import sys, rerank_client, rerank_client.cli;"
        "bad = [m for m in ('torch', 'sentence_transformers', 'numpy') if m in sys.modules];"
        "sys.exit(f'client imported {bad}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

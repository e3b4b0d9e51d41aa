"""Shared pytest configuration: async tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """grpc.aio runs on asyncio only."""
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT cross-encoder that returns raw logits (as ms-marco models do), saved to disk."""
    from tests.models_for_tests import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce"))


@pytest.fixture(scope="session")
def tiny_sigmoid_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cross-encoder saved with sentence-transformers' default sigmoid activation."""
    from tests.models_for_tests import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce-sigmoid"), seed=1, activation="sigmoid")


@pytest.fixture(scope="session")
def cross_scorer(tiny_cross_encoder: Path) -> Any:
    """The tiny cross-encoder, loaded through the server's own loading path."""
    from rerank_server.models import load_scorer, parse_model_arg

    return load_scorer(parse_model_arg(f"tiny-ce={tiny_cross_encoder}"), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def sigmoid_scorer(tiny_sigmoid_cross_encoder: Path) -> Any:
    """The tiny cross-encoder saved with a sigmoid activation."""
    from rerank_server.models import load_scorer, parse_model_arg

    return load_scorer(parse_model_arg(f"tiny-sigmoid={tiny_sigmoid_cross_encoder}"), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def bi_scorer() -> Any:
    """The bundled all-MiniLM-L6-v2 bi-encoder (real weights, checked against their SHA-256)."""
    from rerank_server.models import load_scorer, parse_model_arg

    return load_scorer(parse_model_arg("all-MiniLM-L6-v2"), device="cpu", dtype="float32")

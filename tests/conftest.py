"""Shared pytest configuration: async tests run on asyncio through anyio's pytest plugin, and the
benchmark's smoke run goes in the background for the whole session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The smoke run's test goes last: it only waits for the run, which then has had the whole session."""
    from tests.server.bench import test_bench_smoke

    items.sort(key=lambda item: item.nodeid == test_bench_smoke.NODE)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the benchmark's smoke run in the background when it is among the tests to run: it spends
    minutes starting servers, one core at a time, and the other tests run meanwhile."""
    from tests.server.bench import test_bench_smoke

    if not session.config.option.collectonly and any(item.nodeid == test_bench_smoke.NODE for item in session.items):
        test_bench_smoke.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the smoke run if the session ended before its test waited for it."""
    from tests.server.bench import test_bench_smoke

    test_bench_smoke.stop()


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

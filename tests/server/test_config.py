"""rerank-server's flags and their RERANK_<FLAG> environment variables."""

from __future__ import annotations

import pytest

from rerank_server.cli import config_from_args, env_name


def test_environment_sets_defaults_and_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANK_PORT", "6000")
    monkeypatch.setenv("RERANK_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("RERANK_MAX_WAIT_MS", "2.5")
    monkeypatch.setenv("RERANK_TRUST_REMOTE_CODE", "true")
    monkeypatch.setenv("RERANK_BACKEND", "onnx")
    config = config_from_args(["--model", "bundled"])
    assert (config.port, config.batching.max_batch_size, config.batching.max_wait_ms) == (6000, 8, 2.5)
    assert config.trust_remote_code is True and config.backend == "onnx"
    assert config_from_args(["--model", "bundled", "--port", "7000"]).port == 7000


def test_models_list_from_the_environment_gives_way_to_model_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANK_MODELS", "a=bundled, b=bi-encoder:bundled")
    assert [m.name for m in config_from_args([]).models] == ["a", "b"]
    assert [m.name for m in config_from_args(["--model", "c=bundled"]).models] == ["c"]


def test_zero_means_no_limit_for_optional_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANK_MAX_REQUEST_TIME", "0")
    monkeypatch.setenv("RERANK_MAX_CONCURRENT_RPCS", "0")
    config = config_from_args(["--model", "bundled", "--max-connection-age", "0"])
    assert (config.admission.max_request_time_s, config.admission.max_concurrent, config.connections.max_connection_age_s) == (None, None, None)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RERANK_PORT", "abc", "argument --port: invalid int value: 'abc'"),
        ("RERANK_DTYPE", "fp8", "RERANK_DTYPE='fp8': choose from auto, float32"),
    ],
)
def test_bad_environment_values_are_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        config_from_args(["--model", "bundled"])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_env_name() -> None:
    assert env_name("max_batch_size") == "RERANK_MAX_BATCH_SIZE"
    assert env_name("models") == "RERANK_MODELS"


def test_aliases_name_a_served_model_and_bad_ones_name_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    config = config_from_args(["--model", "ms=bundled", "--alias", "rerank-v3.5=ms", "--alias", "rerank-english-v3.0 = ms"])
    assert config.aliases == (("rerank-v3.5", "ms"), ("rerank-english-v3.0", "ms"))
    for bad in ("rerank-v3.5", "x=other", "ms=ms"):
        with pytest.raises(SystemExit):
            config_from_args(["--model", "ms=bundled", "--alias", bad])
        assert "--alias" in capsys.readouterr().err

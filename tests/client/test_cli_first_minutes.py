"""What a new user touches first on the command line: mistyped commands, --version, bad flags, ports."""

from __future__ import annotations

from typing import Any

import pytest

from rerank_client.channel import target_of, with_port
from rerank_client.cli import main
from tests.processes import run_cli
from tests.server_harness import ServerThread


@pytest.mark.parametrize("word,suggestion", [("model", "models"), ("helth", "health"), ("loadtst", "loadtest")])
def test_a_mistyped_command_is_refused_with_a_suggestion_not_ranked(word: str, suggestion: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([word, "some", "documents"]) == 2
    assert f"did you mean {suggestion!r}" in capsys.readouterr().err


def test_every_command_has_version() -> None:
    for args in (["rerank", "--version"], ["rerank", "loadtest", "--version"], ["rerank", "compare", "--version"], ["rerank-server", "--version"], ["rerank-bench", "--version"]):
        done = run_cli(*args)
        assert done.returncode == 0 and "rerank-grpc" in done.stdout, (args, done.stderr)


def test_negative_top_k_is_refused_before_any_call(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="--top-k must be 0"):
        main(["rank", "--target", "127.0.0.1:1", "--top-k", "-1", "q", "doc"])


def test_a_target_without_a_port_means_the_servers_default_port(cross_scorer: Any) -> None:
    assert with_port("localhost") == "localhost:50051" and with_port("[::1]") == "[::1]:50051"
    assert with_port("host:7") == "host:7" and with_port("dns:///rerank.svc") == "dns:///rerank.svc"
    assert target_of(["10.0.0.1", "10.0.0.2:9"]) == "ipv4:10.0.0.1:50051,10.0.0.2:9"
    with ServerThread([cross_scorer], port=50051) as running:  # what a new user gets without flags
        assert running.target.endswith(":50051")
        assert main(["rank", "--target", "127.0.0.1", "q", "a document"]) == 0


def test_rerank_server_without_the_server_extra_names_the_extra_not_a_traceback() -> None:
    import subprocess
    import sys

    # torch hidden as on a client-only install
    code = "import sys; sys.modules['torch'] = None; import runpy; runpy.run_module('rerank_server', run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "pip install '.[server]'" in done.stderr


def test_plot_without_matplotlib_fails_before_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    # The target answers nothing: the plot check must come first, not after a run.
    with pytest.raises(SystemExit, match=r"--plot needs matplotlib: pip install '\.\[plot\]'"):
        main(["loadtest", "--target", "127.0.0.1:1", "--requests", "1", "--plot", "out.png"])



def test_options_may_come_before_the_query_or_the_command(cross_scorer: Any) -> None:
    import io

    ranked, models = io.StringIO(), io.StringIO()
    with ServerThread([cross_scorer]) as running:
        assert main(["--target", running.target, "--model", "tiny-ce", "where is the cat", "a cat", "stocks"], out=ranked) == 0
        assert "a cat" in ranked.getvalue()
        assert main(["--target", running.target, "models"], out=models) == 0
        listing = models.getvalue()
    # The models listing says how requests are admitted, not only a pair count.
    assert "tiny-ce" in listing and "by its deadline (default 300 s" in listing


def test_a_url_for_a_target_names_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rank", "--target", "http://localhost:50051", "q", "d"]) == 2
    err = capsys.readouterr().err
    assert "without a scheme: localhost:50051" in err and "Traceback" not in err


def test_server_start_up_errors_are_one_line_naming_the_fix() -> None:
    import socket

    mistyped = run_cli("rerank-server", "--modle", "bundled")
    assert mistyped.returncode == 2 and "did you mean --model?" in mistyped.stderr
    assert len(mistyped.stderr.strip().splitlines()) == 1, mistyped.stderr  # not 40 lines of usage
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = run_cli("rerank-server", "--model", "bundled", "--port", str(port))
    assert busy.returncode == 2 and "pick another --port" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1, busy.stderr  # no gRPC core line, no traceback

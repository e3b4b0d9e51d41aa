"""``rerank batch``: real jobs against real servers on loopback and in-process, killed and resumed."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rerank_client import RerankClient
from rerank_client.cli import main as rerank_main
from rerank_server.models import load_scorer, parse_model_arg
from tests.processes import command, offline_env
from tests.server_harness import ServerThread

WORDS = "plants light energy market bread river cat engine garden bike chain tyre moon star".split()


def _records(count: int, documents: int = 4) -> list[dict[str, Any]]:
    return [
        {"id": f"r{i}", "query": f"{WORDS[i % len(WORDS)]} question {i}", "documents": [f"{WORDS[(i + j) % len(WORDS)]} answer {i}-{j}" for j in range(documents)], "label": i % 2}
        for i in range(count)
    ]


def _write(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _batch(*argv: str) -> tuple[int, dict[str, Any] | None]:
    out = io.StringIO()
    code = rerank_main(["batch", *argv, "--quiet"], out=out)
    return code, (json.loads(out.getvalue()) if out.getvalue() else None)


@pytest.fixture(scope="module")
def slow_server(tiny_cross_encoder: Path) -> Any:
    """The tiny model on a simulated device whose batches take 40 ms: a job lasts long enough to be killed."""
    scorer = load_scorer(parse_model_arg(f"tiny={tiny_cross_encoder}"), device="sim:40,0")
    with ServerThread([scorer]) as running:
        yield running


@pytest.fixture(scope="module")
def servers(cross_scorer: Any) -> Any:
    with ServerThread([cross_scorer]) as one, ServerThread([cross_scorer]) as two:
        yield one, two


def test_a_fleet_job_scores_every_record_once_as_the_server_would(servers: Any, tmp_path: Path) -> None:
    records = _records(40)
    source = _write(tmp_path / "in.jsonl", records)
    output = tmp_path / "out.jsonl"
    code, summary = _batch(source, "-o", str(output), "--target", servers[0].target, "--target", servers[1].target)
    assert code == 0 and summary is not None
    assert summary["written"] == 40 and summary["pairs"] == 160 and summary["complete"]
    lines = {line["id"]: line for line in _lines(output)}
    assert sorted(lines) == sorted(r["id"] for r in records)
    with RerankClient(servers[0].target) as client:
        for record in records[:5]:
            expected = client.rerank(record["query"], record["documents"])
            line = lines[record["id"]]
            assert [line["scores"][r.index] for r in expected.results] == pytest.approx([r.score for r in expected.results], abs=1e-6)
            assert [line["ranks"][r.index] for r in expected.results] == list(range(4))
            assert line["label"] == record["label"] and line["usage"]["pairs"] == 4  # other fields carried through
    # Run again: nothing is left to do, and nothing is written twice.
    code, again = _batch(source, "-o", str(output), "--target", servers[0].target)
    assert code == 0 and again is not None and again["written"] == 0 and again["already"] == 40
    assert len(_lines(output)) == 40


def test_one_pair_a_line_and_parquet_in_and_out(servers: Any, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pairs = [{"query": f"question {i}", "document": f"answer {i}"} for i in range(150)]
    source = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(pairs), source)
    output = tmp_path / "scored.parquet"
    code, summary = _batch(str(source), "-o", str(output), "--target", servers[0].target)
    assert code == 0 and summary is not None and summary["written"] == 150
    table = pq.read_table(output).to_pylist()
    assert sorted(int(row["id"]) for row in table) == list(range(1, 151))  # ids: row numbers
    assert not (tmp_path / "scored.parquet.journal.jsonl").exists()
    with RerankClient(servers[0].target) as client:
        expected = client.score([(p["query"], p["document"]) for p in pairs]).scores
    by_id = {int(row["id"]): row["score"] for row in table}
    assert [by_id[i + 1] for i in range(150)] == pytest.approx(expected, abs=1e-6)


def test_bad_records_stop_the_job_with_their_line_or_are_skipped_and_reported(servers: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _records(3)
    text = json.dumps(good[0]) + "\n" + "{not json\n" + json.dumps({"id": "e", "query": "q", "documents": ["", "x"]}) + "\n" + json.dumps(good[1]) + "\n"
    source = tmp_path / "bad.jsonl"
    source.write_text(text)
    output = tmp_path / "out.jsonl"
    code, _ = _batch(str(source), "-o", str(output), "--target", servers[0].target)
    assert code == 1 and "bad.jsonl:2: not JSON" in capsys.readouterr().err
    assert not output.exists()
    code, summary = _batch(str(source), "-o", str(output), "--target", servers[0].target, "--on-error", "skip")
    err = capsys.readouterr().err
    assert code == 0 and summary is not None and summary["skipped"] == 2 and summary["written"] == 2
    assert "skipped bad.jsonl:2: not JSON" in err and "skipped bad.jsonl:3: documents at index 0 are not non-empty strings" in err
    duplicated = _write(tmp_path / "dup.jsonl", [good[0], good[0]])
    with pytest.raises(SystemExit, match=r"1 record ids appear more than once \(e.g. 'r0'\)"):
        _batch(duplicated, "-o", str(tmp_path / "dup-out.jsonl"), "--target", servers[0].target)


def test_a_resume_refuses_another_input_or_model_and_a_file_it_did_not_write(servers: Any, slow_server: Any, tmp_path: Path) -> None:
    source = _write(tmp_path / "in.jsonl", _records(5))
    output = tmp_path / "out.jsonl"
    assert _batch(source, "-o", str(output), "--target", servers[0].target)[0] == 0
    other = _write(tmp_path / "other.jsonl", _records(6))
    with pytest.raises(SystemExit, match="holds results from a different input"):
        _batch(other, "-o", str(output), "--target", servers[0].target)
    with pytest.raises(SystemExit, match="holds results from a different options"):
        _batch(source, "-o", str(output), "--target", servers[0].target, "--normalization", "sigmoid")
    stranger = tmp_path / "mine.jsonl"
    stranger.write_text("{}\n")
    with pytest.raises(SystemExit, match="was not written by rerank batch"):
        _batch(source, "-o", str(stranger), "--target", servers[0].target)


def _start(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([command("rerank"), "batch", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=offline_env())


def _wait_for_lines(path: Path, count: int, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().count("\n") >= count):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the job never got that far"
        time.sleep(0.01)  # polls for a condition; no ordering rests on it


def test_a_job_killed_at_any_point_resumes_to_each_record_exactly_once(slow_server: Any, tmp_path: Path) -> None:
    records = _records(120)
    source = _write(tmp_path / "in.jsonl", records)
    output = tmp_path / "out.jsonl"
    job = _start(source, "-o", str(output), "--target", slow_server.target, "--concurrency", "4")
    _wait_for_lines(output, 10, job)
    job.kill()  # SIGKILL: no clean-up at all
    job.wait(timeout=30)
    with output.open("a") as handle:  # what a kill in the middle of a write leaves
        handle.write('{"id": "r119", "query": "half a li')
    written = len(output.read_text().splitlines()) - 1  # complete lines before the cut one
    assert 10 <= written < 120
    code, summary = _batch(source, "-o", str(output), "--target", slow_server.target, "--concurrency", "8")
    assert code == 0 and summary is not None and summary["already"] == written and summary["written"] == 120 - written
    ids = [line["id"] for line in _lines(output)]
    assert sorted(ids) == sorted(r["id"] for r in records) and len(ids) == len(set(ids))


def test_ctrl_c_finishes_what_is_in_flight_and_says_how_to_resume(slow_server: Any, tmp_path: Path) -> None:
    source = _write(tmp_path / "in.jsonl", _records(120))
    output = tmp_path / "out.jsonl"
    job = _start(source, "-o", str(output), "--target", slow_server.target, "--concurrency", "4")
    _wait_for_lines(output, 5, job)
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130
    assert "interrupted: finishing" in err and "run the same command again to resume" in err
    lines = _lines(output)  # every line complete: in-flight records were finished, not cut
    assert 5 <= len(lines) < 120
    code, summary = _batch(source, "-o", str(output), "--target", slow_server.target)
    assert code == 0 and summary is not None and summary["already"] + summary["written"] == 120
    assert len({line["id"] for line in _lines(output)}) == len(_lines(output)) == 120


def test_a_local_job_runs_the_servers_engine_in_process(tiny_cross_encoder: Path, servers: Any, tmp_path: Path) -> None:
    records = _records(12)
    source = _write(tmp_path / "in.jsonl", records)
    output = tmp_path / "out.jsonl"
    code, summary = _batch(source, "-o", str(output), "--local", str(tiny_cross_encoder), "--dtype", "float32")
    assert code == 0 and summary is not None and summary["written"] == 12
    lines = {line["id"]: line for line in _lines(output)}
    with RerankClient(servers[0].target) as client:  # the server serves the same checkpoint
        for record in records[:3]:
            expected = client.rerank(record["query"], record["documents"])
            assert [lines[record["id"]]["scores"][r.index] for r in expected.results] == pytest.approx([r.score for r in expected.results], abs=1e-5)
    assert os.path.exists(str(output) + ".rerank-batch.json")


def test_a_fleet_routes_around_a_lost_server_and_a_lost_fleet_stops_the_job_resumably(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    scorer = load_scorer(parse_model_arg(f"tiny={tiny_cross_encoder}"), device="sim:40,0")
    records = _records(120)
    source = _write(tmp_path / "in.jsonl", records)
    # One server of two goes away mid-job: its records are retried on the other and the job completes.
    output = tmp_path / "fleet.jsonl"
    with ServerThread([scorer]) as stays:
        with ServerThread([scorer]) as goes:
            job = _start(source, "-o", str(output), "--target", goes.target, "--target", stays.target, "--concurrency", "4")
            _wait_for_lines(output, 10, job)
        out, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert json.loads(out)["written"] == 120
    assert sorted(line["id"] for line in _lines(output)) == sorted(r["id"] for r in records)
    # The only server goes away: after --retry-for the job stops and says how to resume; a server back on
    # the same address, and the same command scores only what is missing.
    output = tmp_path / "alone.jsonl"
    with ServerThread([scorer]) as only:
        port = only.target.rsplit(":", 1)[1]
        job = _start(source, "-o", str(output), "--target", only.target, "--concurrency", "4", "--retry-for", "1")
        _wait_for_lines(output, 10, job)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 1
    assert "the fleet kept failing for 1 s (UNAVAILABLE" in err and "run the same command again to resume" in err
    written = len(_lines(output))
    assert 10 <= written < 120
    with ServerThread([scorer], port=int(port)) as back:
        code, summary = _batch(source, "-o", str(output), "--target", back.target, "--concurrency", "4", "--retry-for", "1")
    assert code == 0 and summary is not None and summary["already"] == written and summary["written"] == 120 - written
    ids = [line["id"] for line in _lines(output)]
    assert sorted(ids) == sorted(r["id"] for r in records) and len(ids) == len(set(ids))


def test_the_readme_walk_through_runs_as_written_with_the_bundled_model(tmp_path: Path) -> None:
    """README's in-process line (the bundled model, the shipped example set), its output put in tmp_path."""
    import shlex

    root = Path(__file__).resolve().parents[2]
    lines = [line.split("  #")[0].strip() for line in (root / "README.md").read_text().splitlines() if line.startswith("rerank batch examples/")]
    assert len(lines) == 1, lines
    argv = shlex.split(lines[0])[2:]  # after "rerank batch"
    argv[argv.index("-o") + 1] = str(tmp_path / "scored.jsonl")
    code, summary = _batch(*[str(root / a) if a.startswith("examples/") else a for a in argv])
    assert code == 0 and summary is not None and summary["written"] == 40 and summary["model"] == "all-MiniLM-L6-v2"
    for line in _lines(tmp_path / "scored.jsonl"):
        assert len(line["scores"]) == len(line["documents"]) == len(line["labels"])
        best = line["ranks"].index(0)
        assert line["scores"][best] == max(line["scores"])


def test_progress_draws_plain_lines_off_a_terminal_and_one_redrawn_line_on_one() -> None:
    from rerank_client.batch.runner import Progress

    plain = io.StringIO()
    progress = Progress(records=100, pairs=400, stream=plain)
    for _ in range(100):
        progress.add(1, 4)
    lines = plain.getvalue().splitlines()
    assert len(lines) == 11 and "\r" not in plain.getvalue()  # one line a tenth (and the first record)
    assert lines[-1].startswith("records 100/100 (100%),") and "pairs/s, ETA 0m00s" in lines[-1]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    progress = Progress(records=10, pairs=10, stream=tty)
    progress.add(1, 1)
    progress.close()
    assert tty.getvalue().startswith("\rrecords 1/10 (10%)") and tty.getvalue().endswith("\n")


def test_the_same_job_started_twice_is_refused_while_the_first_writes(slow_server: Any, tmp_path: Path) -> None:
    records = _records(60)
    source = _write(tmp_path / "in.jsonl", records)
    output = tmp_path / "out.jsonl"
    first = _start(source, "-o", str(output), "--target", slow_server.target, "--concurrency", "2")
    _wait_for_lines(output, 3, first)
    with pytest.raises(SystemExit, match=rf"another rerank batch \(pid {first.pid}\) is writing .*out.jsonl; let it finish or stop it"):
        _batch(source, "-o", str(output), "--target", slow_server.target)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    ids = [line["id"] for line in _lines(output)]
    assert sorted(ids) == sorted(r["id"] for r in records)  # each once: the second job wrote nothing
    assert not (tmp_path / "out.jsonl.rerank-batch.lock").exists()  # a finished job removes its lock
    stranger = tmp_path / "theirs.jsonl"
    stranger.write_text("{}\n")
    with pytest.raises(SystemExit, match="was not written by rerank batch"):
        _batch(source, "-o", str(stranger), "--target", slow_server.target)
    assert not (tmp_path / "theirs.jsonl.rerank-batch.lock").exists()

"""Where a bulk job's results go, so that a job killed at any point resumes exactly.

Results are appended to a journal, one JSON line a record, each batch of lines in one ``write`` as it
completes: a kill (even SIGKILL) can only leave a partial last line, which the next run cuts off before
it reads which ids are done. For JSONL output the journal is the output itself; for Parquet, a
``.journal.jsonl`` beside it that becomes the Parquet file (written to a temporary name and renamed)
when every record is in. A sidecar (``OUTPUT.rerank-batch.json``) names the input, the model and the
options the results came from; a resumed job with another input, model or options is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .records import id_hash, is_parquet, pyarrow_parquet

SIDECAR_SUFFIX = ".rerank-batch.json"
FORMAT = "rerank-batch/1"
_PARQUET_CHUNK = 10_000  # journal lines per Parquet row group


@dataclass(frozen=True)
class JobIdentity:
    """What a job's results depend on; a resume must match it exactly."""

    input_name: str
    input_sha256: str
    model_name: str
    model_fingerprint: str
    options: dict[str, Any]


class Journal:
    """The results of one job: which records are done, and appending more."""

    def __init__(self, output: str | Path, identity: JobIdentity) -> None:
        self.output = Path(output)
        self.identity = identity
        self.parquet = is_parquet(self.output)
        self.path = self.output.with_name(self.output.name + ".journal.jsonl") if self.parquet else self.output
        self.sidecar = self.output.with_name(self.output.name + SIDECAR_SUFFIX)
        self._fd: int | None = None

    def open(self) -> np.ndarray:
        """Check that existing results are this job's, cut a partial last line, and return the sorted id
        hashes of the records already done (empty for a new job). Raises ValueError naming the fix."""
        if self.sidecar.is_file():
            self._check_sidecar()
        elif self.output.exists() or self.path.exists():
            raise ValueError(
                f"{self.output} exists and was not written by rerank batch (no {self.sidecar.name}); "
                "give another -o, or remove it to start over"
            )
        if self.parquet and self.output.exists() and not self.path.exists():
            done = self._parquet_ids()
        else:
            done = self._journal_ids()
        self._write_sidecar()
        return done

    def _check_sidecar(self) -> None:
        try:
            written = json.loads(self.sidecar.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{self.sidecar} is damaged ({exc}); remove it and {self.output} to start over") from None
        mine = asdict(self.identity)
        theirs = written.get("job", {})
        for key, what in (("input_sha256", "input"), ("model_fingerprint", "model"), ("options", "options")):
            if theirs.get(key) != mine[key]:
                shown = {"input_sha256": theirs.get("input_name"), "model_fingerprint": theirs.get("model_name"), "options": theirs.get("options")}[key]
                raise ValueError(
                    f"{self.output} holds results from a different {what} ({shown}); resuming would mix them. Give another "
                    f"-o, or remove {self.output} and {self.sidecar.name} to start over"
                )

    def _write_sidecar(self) -> None:
        temporary = self.sidecar.with_name(self.sidecar.name + ".tmp")
        temporary.write_text(json.dumps({"format": FORMAT, "job": asdict(self.identity)}, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.sidecar)

    def _journal_ids(self) -> np.ndarray:
        """Hashes of the ids in the journal, after cutting off a line a kill left unfinished."""
        if not self.path.exists():
            return np.empty(0, dtype=np.int64)
        hashes: list[int] = []
        good = 0  # bytes of complete lines
        with self.path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                try:
                    hashes.append(id_hash(str(json.loads(line)["id"])))
                except (ValueError, KeyError, TypeError):
                    break
                good += len(line)
        if good < self.path.stat().st_size:
            with self.path.open("r+b") as handle:
                handle.truncate(good)
        return np.sort(np.asarray(hashes, dtype=np.int64))

    def _parquet_ids(self) -> np.ndarray:
        parquet = pyarrow_parquet()
        ids = parquet.read_table(str(self.output), columns=["id"]).column("id").to_pylist()
        return np.sort(np.asarray([id_hash(str(i)) for i in ids], dtype=np.int64))

    def append(self, lines: list[dict[str, Any]]) -> None:
        """Append results as complete lines, in one write (a kill leaves at most a partial last line)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        data = b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        """Flush the journal to disk and close it."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def finish(self) -> None:
        """Every record is in: for Parquet output, turn the journal into the Parquet file."""
        self.close()
        if not self.parquet or not self.path.exists():
            return
        parquet = pyarrow_parquet()
        import pyarrow as pa
        temporary = self.output.with_name(self.output.name + ".tmp")
        writer = None
        try:
            for rows in _chunks(self.path):
                table = pa.Table.from_pylist(rows)
                if writer is None:
                    writer = parquet.ParquetWriter(str(temporary), table.schema)
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
        os.replace(temporary, self.output)
        self.path.unlink()


def _chunks(path: Path) -> Iterator[list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if len(rows) == _PARQUET_CHUNK:
                yield rows
                rows = []
    if rows:
        yield rows


"""Where a bulk job's results go, so that a job killed at any point resumes exactly.

Results are appended to a journal, one JSON line a record, each batch of lines in one ``write`` as it
completes: a kill (even SIGKILL) can only leave a partial last line, which the next run cuts off before
it reads which ids are done. For JSONL output the journal is the output itself; for Parquet, a
``.journal.jsonl`` beside it that becomes the Parquet file (written to a temporary name and renamed)
when every record is in. A sidecar (``OUTPUT.rerank-batch.json``) names the input, the model and the
options the results came from; a resumed job with another input, model or options is refused. A job
holds a lock (``OUTPUT.rerank-batch.lock``, released by the kernel however the job ends) for as long as it
writes, so the same command started twice cannot write one record twice.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .records import id_hash, is_parquet, pyarrow_parquet

SIDECAR_SUFFIX = ".rerank-batch.json"
LOCK_SUFFIX = ".rerank-batch.lock"
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
        self.lock = self.output.with_name(self.output.name + LOCK_SUFFIX)
        self._fd: int | None = None
        self._lock_fd: int | None = None

    def open(self) -> np.ndarray:
        """Check that existing results are this job's, cut a partial last line, and return the sorted id
        hashes of the records already done (empty for a new job). Raises ValueError naming the fix."""
        first = not self.lock.exists()
        self._take_lock()
        try:
            if self.sidecar.is_file():
                self._check_sidecar()
            elif self.output.exists() or self.path.exists():
                raise ValueError(
                    f"{self.output} exists and was not written by rerank batch (no {self.sidecar.name}); "
                    "give another -o, or remove it to start over"
                )
        except ValueError:
            self._unlock(remove=first)  # a refused job leaves nothing of its own behind
            raise
        if self.parquet and self.output.exists() and not self.path.exists():
            done = self._parquet_ids()
        else:
            done = self._journal_ids()
        self._write_sidecar()
        return done

    def _take_lock(self) -> None:
        """Hold ``OUTPUT.rerank-batch.lock`` for the job's life, or refuse: another job is writing."""
        while True:
            fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ValueError(
                    f"another rerank batch (pid {holder}) is writing {self.output}; let it finish or stop it, then run this "
                    "command again to resume"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file that a finishing job removed after this one opened it
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _unlock(self, remove: bool) -> None:
        if self._lock_fd is not None:
            if remove:
                self.lock.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

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
        """Flush the journal to disk, close it, and let another job take over the output."""
        self._flush()
        self._unlock(remove=False)

    def _flush(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def finish(self) -> None:
        """Every record is in: for Parquet output, turn the journal into the Parquet file; then drop the lock."""
        self._flush()
        if self.parquet and self.path.exists():
            self._to_parquet()
        self._unlock(remove=True)

    def _to_parquet(self) -> None:
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


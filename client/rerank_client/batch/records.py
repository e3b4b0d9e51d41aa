"""The records of a bulk job, streamed from JSONL or Parquet, each with the line (or row) it came from.

A record is one query with its documents (``{"id", "query", "documents": [...]}``) or one pair
(``{"id", "query", "document"}``); a record without an id is keyed by its line number, which is stable
for an unchanged input. Nothing is held in memory but what is being read: a first pass
(:func:`survey`) counts the records, checks that ids are unique (as 64-bit hashes, 8 bytes a record),
and hashes the file, so that a resumed job can tell its own input from another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PARQUET_BATCH = 1024  # rows read from a Parquet file at a time


class RecordError(ValueError):
    """A record that cannot be scored, with where it is: ``input.jsonl:12: ...``."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class Record:
    """One unit of work: a query and its documents, or one pair (``pair``: the input line had ``document``)."""

    id: str
    query: str
    documents: list[str]
    pair: bool
    where: str  # file:line, for messages
    extra: dict[str, Any]  # the record's other fields (labels, metadata), carried to its result

    @property
    def pairs(self) -> int:
        """(query, document) pairs it scores."""
        return len(self.documents)


def id_hash(record_id: str) -> int:
    """A record id as a signed 64-bit number: what the duplicate check and the resume set hold."""
    return int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=8).digest(), "little", signed=True)


def is_parquet(path: str | Path) -> bool:
    """Whether ``path`` names Parquet (by its suffix) rather than JSONL."""
    return Path(path).suffix.lower() in (".parquet", ".pq")


def _record(fields: dict[str, Any], default_id: str, where: str) -> Record:
    """A Record from a parsed line or row, or a :class:`RecordError` saying what is wrong with it."""
    query = fields.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RecordError(where, "'query' must be a non-empty string")
    raw_id = fields.get("id")
    if raw_id is None:
        record_id = default_id
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id):
        record_id = str(raw_id)
    else:
        raise RecordError(where, f"'id' must be a string or an integer, got {raw_id!r}")
    if "documents" in fields and fields["documents"] is not None:
        documents = fields["documents"]
        if not isinstance(documents, (list, tuple, np.ndarray)) or len(documents) == 0:
            raise RecordError(where, "'documents' must be a non-empty list of strings")
        documents = list(documents)
        bad = [i for i, d in enumerate(documents) if not isinstance(d, str) or not d.strip()]
        if bad:
            raise RecordError(where, f"documents at index {', '.join(map(str, bad[:5]))} are not non-empty strings")
        return Record(record_id, query, documents, False, where, _extra(fields))
    document = fields.get("document")
    if not isinstance(document, str) or not document.strip():
        raise RecordError(where, "give 'documents' (a list) or 'document' (one pair a line)")
    return Record(record_id, query, [document], True, where, _extra(fields))


_OWN = {"id", "query", "documents", "document"}


def _extra(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in _OWN}


def _jsonl(path: Path) -> Iterator[tuple[int, Record | RecordError]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                fields = json.loads(raw)
            except ValueError as exc:
                yield number, RecordError(where, f"not JSON ({exc})")
                continue
            if not isinstance(fields, dict):
                yield number, RecordError(where, "each line must be a JSON object")
                continue
            try:
                yield number, _record(fields, str(number), where)
            except RecordError as exc:
                yield number, exc


def _parquet(path: Path) -> Iterator[tuple[int, Record | RecordError]]:
    parquet = pyarrow_parquet()
    row = 0
    for batch in parquet.ParquetFile(str(path)).iter_batches(batch_size=PARQUET_BATCH):
        for fields in batch.to_pylist():
            row += 1
            try:
                yield row, _record(fields, str(row), f"{path.name}:row {row}")
            except RecordError as exc:
                yield row, exc


def pyarrow_parquet() -> Any:
    """``pyarrow.parquet``, or a ValueError naming the extra that installs it."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise ValueError("Parquet needs pyarrow: pip install '.[batch]' in the rerank-grpc checkout") from None
    return parquet


def read_records(path: str | Path) -> Iterator[tuple[int, Record | RecordError]]:
    """Every record of ``path`` in order with its line (row) number; a malformed one as its error."""
    source = Path(path)
    return _parquet(source) if is_parquet(source) else _jsonl(source)


@dataclass(frozen=True)
class Survey:
    """What the first pass over an input found."""

    records: int
    pairs: int
    sha256: str
    errors: list[RecordError]  # malformed records, in order (at most ``max_errors`` kept)


def survey(path: str | Path, max_errors: int = 20) -> Survey:
    """Count ``path``'s records and pairs, hash it, and refuse duplicate ids up front (a resumed job keys
    its results by id, so two records with one id could not both be kept exactly once)."""
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"no such input file: {source}")
    digest = hashlib.sha256()
    with source.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    hashes = np.empty(1 << 16, dtype=np.int64)
    count = pairs = 0
    errors: list[RecordError] = []
    for _, item in read_records(source):
        if isinstance(item, RecordError):
            if len(errors) < max_errors:
                errors.append(item)
            continue
        if count == len(hashes):
            hashes = np.resize(hashes, 2 * len(hashes))
        hashes[count] = id_hash(item.id)
        count += 1
        pairs += item.pairs
    seen = np.sort(hashes[:count])
    repeated = seen[1:][seen[1:] == seen[:-1]]
    if len(repeated):
        twice = {int(h) for h in repeated[:5]}
        examples = [item.id for _, item in read_records(source) if isinstance(item, Record) and id_hash(item.id) in twice]
        raise ValueError(
            f"{source.name}: {len(repeated)} record ids appear more than once (e.g. {', '.join(repr(i) for i in dict.fromkeys(examples))}); "
            "results are kept by id, so give every record its own id"
        )
    return Survey(count, pairs, "sha256:" + digest.hexdigest(), errors)

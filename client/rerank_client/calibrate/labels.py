"""Labelled (query, document) pairs for ``rerank calibrate``, read from JSONL, TSV or qrels with a corpus.

Every problem is reported with the file and line it is on; nothing is skipped silently.

- JSONL, one pair a line: ``{"query": ..., "document": ..., "label": 1}``, or one query a line:
  ``{"query": ..., "documents": [...], "labels": [...]}``.
- TSV: ``query<TAB>document<TAB>label``; a first line ``query document label`` is a header.
- qrels (``--qrels``): TREC (``qid 0 docid label``) or BEIR (``query-id<TAB>corpus-id<TAB>score`` with a
  header), with ``--queries`` and ``--corpus`` as BEIR's JSONL (``{"_id", "text"}``, a corpus entry's
  ``title`` put before its text) or TSV (``id<TAB>text``).

Labels are binary (0/1) or graded (0-3, as TREC's): a pair is relevant at or above ``relevant_from``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class LabelError(ValueError):
    """Labelled data that cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class LabelledPairs:
    """Pairs with their labels, and what identifies the data they came from.

    Attributes:
        pairs: (query, document) in file order.
        labels: each pair's label (0/1, or graded).
        sha256: of the files read, in order, so a calibration names the exact data it was fitted on.
        name: the file name(s), for the report.
    """

    pairs: list[tuple[str, str]]
    labels: list[float]
    sha256: str
    name: str

    def relevant(self, relevant_from: float) -> list[int]:
        """1 for each pair labelled at or above ``relevant_from``, else 0."""
        return [int(label >= relevant_from) for label in self.labels]

    @property
    def graded(self) -> bool:
        """Whether any label is above 1 (graded relevance, as TREC's 0-3)."""
        return any(label > 1 for label in self.labels)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LabelError(f"{path} is not UTF-8 text") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield number, line


def _label(value: Any, where: str) -> float:
    """A label as a number, or an error naming where it is."""
    if isinstance(value, bool) or value is None:
        raise LabelError(f"{where}: the label {value!r} is not a number; use 0/1, or 0-3 for graded relevance")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LabelError(f"{where}: the label {value!r} is not a number; use 0/1, or 0-3 for graded relevance") from None
    if not math.isfinite(number) or number < 0:
        raise LabelError(f"{where}: the label {value!r} must be 0 or more (0/1, or 0-3 for graded relevance)")
    return number


def _text(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LabelError(f"{where}: {field!r} must be a non-empty string")
    return value


def _jsonl(path: Path) -> tuple[list[tuple[str, str]], list[float]]:
    pairs: list[tuple[str, str]] = []
    labels: list[float] = []
    for number, line in _lines(path):
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise LabelError(f"{where}: each line must be a JSON object")
        query = _text(record.get("query"), "query", where)
        if "documents" in record:
            documents, grades = record["documents"], record.get("labels")
            if not isinstance(documents, list) or not isinstance(grades, list) or len(documents) != len(grades):
                raise LabelError(f"{where}: 'documents' and 'labels' must be lists of the same length")
            for document, grade in zip(documents, grades):
                pairs.append((query, _text(document, "documents[]", where)))
                labels.append(_label(grade, where))
        else:
            pairs.append((query, _text(record.get("document"), "document", where)))
            labels.append(_label(record.get("label"), where))
    return pairs, labels


def _tsv(path: Path) -> tuple[list[tuple[str, str]], list[float]]:
    pairs: list[tuple[str, str]] = []
    labels: list[float] = []
    for number, line in _lines(path):
        fields = line.rstrip("\r\n").split("\t")
        if number == 1 and [f.strip().lower() for f in fields] == ["query", "document", "label"]:
            continue
        where = f"{path}:{number}"
        if len(fields) != 3:
            raise LabelError(f"{where}: expected query<TAB>document<TAB>label, found {len(fields)} fields")
        pairs.append((_text(fields[0], "query", where), _text(fields[1], "document", where)))
        labels.append(_label(fields[2].strip(), where))
    return pairs, labels


def _texts(path: Path) -> dict[str, str]:
    """Texts by id from BEIR JSONL (``_id``, ``text``, optional ``title``) or TSV (``id<TAB>text``)."""
    texts: dict[str, str] = {}
    for number, line in _lines(path):
        where = f"{path}:{number}"
        if path.suffix == ".jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabelError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict) or "_id" not in record:
                raise LabelError(f"{where}: each line must be an object with '_id' and 'text'")
            text = _text(record.get("text"), "text", where)
            title = record.get("title")
            texts[str(record["_id"])] = f"{title}. {text}" if isinstance(title, str) and title.strip() else text
        else:
            key, sep, text = line.partition("\t")
            if not sep:
                raise LabelError(f"{where}: expected id<TAB>text")
            texts[key.strip()] = _text(text, "text", where)
    return texts


def _qrels(path: Path, queries: Path, corpus: Path) -> tuple[list[tuple[str, str]], list[float]]:
    query_texts, documents = _texts(queries), _texts(corpus)
    pairs: list[tuple[str, str]] = []
    labels: list[float] = []
    for number, line in _lines(path):
        fields = line.split()
        where = f"{path}:{number}"
        if number == 1 and fields and not fields[-1].lstrip("-").isdigit():
            continue  # BEIR's header: query-id corpus-id score
        if len(fields) == 4:  # TREC: qid iteration docid label
            qid, docid, grade = fields[0], fields[2], fields[3]
        elif len(fields) == 3:
            qid, docid, grade = fields
        else:
            raise LabelError(f"{where}: expected 'qid 0 docid label' (TREC) or 'query-id<TAB>corpus-id<TAB>score' (BEIR)")
        if qid not in query_texts:
            raise LabelError(f"{where}: query {qid!r} is not in {queries}")
        if docid not in documents:
            raise LabelError(f"{where}: document {docid!r} is not in {corpus}")
        pairs.append((query_texts[qid], documents[docid]))
        labels.append(_label(grade, where))
    return pairs, labels


def read_labelled(path: str, queries: str | None = None, corpus: str | None = None) -> LabelledPairs:
    """The labelled pairs in ``path`` (JSONL or TSV by its suffix; qrels when ``queries`` and ``corpus``
    are given). Raises :class:`LabelError` for anything that cannot be read as labelled pairs."""
    main = Path(path)
    if (queries is None) != (corpus is None):
        raise LabelError("qrels need both --queries and --corpus (the texts their ids name)")
    files = [main] if queries is None else [main, Path(queries), Path(corpus or "")]
    if queries is not None:
        pairs, labels = _qrels(main, Path(queries), Path(corpus or ""))
    elif main.suffix in (".tsv", ".txt"):
        pairs, labels = _tsv(main)
    elif main.suffix in (".jsonl", ".json", ".ndjson"):
        pairs, labels = _jsonl(main)
    else:
        raise LabelError(f"{main}: give labelled pairs as .jsonl or .tsv (or qrels with --queries and --corpus)")
    if not pairs:
        raise LabelError(f"{main} holds no labelled pairs")
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return LabelledPairs(pairs, labels, "sha256:" + digest.hexdigest(), " + ".join(f.name for f in files))

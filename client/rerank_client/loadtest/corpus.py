"""Documents to send: real English text of mixed length, built in or read from a file."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# Words per token for English prose under BERT-style WordPiece: a document of N words is ~1.3 N tokens.
TOKENS_PER_WORD = 1.3
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Corpus:
    """A source of documents.

    A built-in corpus is a list of sentences from a few dozen paragraphs on unrelated topics; a document
    is a run of consecutive sentences cut to a length drawn log-uniformly between ``min_tokens`` and
    ``max_tokens``, so lengths are mixed the way real retrieval candidates are. A file corpus is used as
    it is: one document per line.
    """

    sentences: tuple[str, ...]
    whole_lines: bool  # True for a file corpus: lines are documents, not material to cut

    @classmethod
    def builtin(cls) -> Corpus:
        """The English text shipped with the client (rerank_client/data/english.txt)."""
        text = resources.files("rerank_client").joinpath("data/english.txt").read_text(encoding="utf-8")
        sentences = [s.strip() for line in text.splitlines() for s in _SENTENCE_END.split(line) if s.strip()]
        return cls(tuple(sentences), whole_lines=False)

    @classmethod
    def from_file(cls, path: str | Path) -> Corpus:
        """One document per non-empty line of ``path``."""
        lines = tuple(line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
        if not lines:
            raise ValueError(f"corpus {path} has no non-empty lines")
        return cls(lines, whole_lines=True)

    def document(self, rng: random.Random, min_tokens: int = 20, max_tokens: int = 400) -> str:
        """One document: a random line, or for the built-in corpus a run of sentences of random length."""
        if self.whole_lines:
            return rng.choice(self.sentences)
        target_words = math.exp(rng.uniform(math.log(min_tokens), math.log(max_tokens))) / TOKENS_PER_WORD
        start = rng.randrange(len(self.sentences))
        words: list[str] = []
        i = start
        while len(words) < target_words:
            words.extend(self.sentences[i % len(self.sentences)].split())
            i += 1
        return " ".join(words[: max(1, round(target_words))])

    def query(self, rng: random.Random) -> str:
        """A short query: the first words of a random sentence."""
        words = rng.choice(self.sentences).split()
        return " ".join(words[: rng.randint(4, 10)])

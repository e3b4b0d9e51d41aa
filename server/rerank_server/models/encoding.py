"""Tokenizing once: texts become token ids when a request is admitted, and model inputs are built from them.

The model's fast tokenizer (its Rust backend) turns each text into ids without special tokens or
truncation, once; everything after that works on ids: token costs for batching, truncation and its
report, long-document windows, and the padded tensors a batch runs on. The special tokens and token
types a pair or a single text gets are learnt from the tokenizer itself at load time
(:class:`SpecialTokens`), and pairs are truncated longest-first exactly as the tokenizer does, so the
model reads exactly what ``CrossEncoder.predict`` would give it (tests compare the two).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Ids = npt.NDArray[np.int32]

# Characters read per token wanted when a long text is tokenized only in part: English averages about
# 4.5 a token under WordPiece; 16 leaves room for long words, numbers and URLs.
CHARS_PER_TOKEN = 16
# Characters a token is taken to cover when a request's work is estimated before tokenizing (admission):
# a little under English's average, so the estimate errs long.
ESTIMATE_CHARS_PER_TOKEN = 4


@dataclass(slots=True, eq=False)
class Encoded:
    """One model input, ready to pad into a batch: ids with special tokens, their token types.

    Not frozen (read-only by convention): the engine makes one per pair it receives, and a frozen
    dataclass's ``__init__`` cost four times as much (0.42 against 0.11 us, measured here).

    ``types`` is None for models without token types (RoBERTa, XLM-R); ``truncated`` says whether the
    text or pair was longer than the model reads. ``shared`` is how many leading ids every item of its
    request has in common (a decoder reranker's template, instruction and query; 0: none), which a
    decoder computes once for them all (see ``models.decoder``).
    """

    ids: Ids
    types: npt.NDArray[np.int8] | None
    truncated: bool
    shared: int = 0

    @property
    def cost(self) -> int:
        """Tokens the model reads for it: what a batch is padded in."""
        return len(self.ids)


@dataclass(frozen=True)
class _Segments:
    """Where a tokenizer puts its special tokens: around one text (``a``) or a pair (``a``, ``b``)."""

    prefix: list[int]
    middle: list[int]  # between the two texts of a pair; empty for a single text
    suffix: list[int]
    prefix_types: list[int]
    middle_types: list[int]
    suffix_types: list[int]
    a_type: int
    b_type: int


class SpecialTokens:
    """The special tokens and token types a tokenizer adds, learnt by encoding two one-token probes.

    BERT gives ``[CLS] a [SEP] b [SEP]`` with types 0 then 1; XLM-R ``<s> a </s></s> b </s>`` without
    types. Learning the layout from the tokenizer (rather than hard-coding it) serves both and any
    other template-based tokenizer.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.has_types = "token_type_ids" in tokenizer("a", "b")
        self.pair = self._learn(tokenizer, pair=True)
        self.single = self._learn(tokenizer, pair=False)

    def _learn(self, tokenizer: Any, pair: bool) -> _Segments:
        backend = tokenizer.backend_tokenizer
        for a, b in (("a", "b"), ("x", "y"), ("hello", "world")):
            a_ids = backend.encode(a, add_special_tokens=False).ids
            b_ids = backend.encode(b, add_special_tokens=False).ids
            if len(a_ids) != 1 or len(b_ids) != 1 or a_ids == b_ids:
                continue
            encoded = tokenizer(a, b) if pair else tokenizer(a)
            ids = list(encoded["input_ids"])
            types = list(encoded.get("token_type_ids") or [0] * len(ids))
            if a_ids[0] not in ids:
                continue
            i = ids.index(a_ids[0])
            if not pair:
                return _Segments(ids[:i], [], ids[i + 1 :], types[:i], [], types[i + 1 :], types[i], types[i])
            if b_ids[0] not in ids[i + 1 :]:
                continue
            j = ids.index(b_ids[0], i + 1)
            return _Segments(ids[:i], ids[i + 1 : j], ids[j + 1 :], types[:i], types[i + 1 : j], types[j + 1 :], types[i], types[j])
        raise ValueError("cannot learn where this tokenizer puts its special tokens (no one-token probe text found)")

    def count(self, pair: bool) -> int:
        """How many special tokens a pair (or a single text) gets."""
        s = self.pair if pair else self.single
        return len(s.prefix) + len(s.middle) + len(s.suffix)


def longest_first(a: int, b: int, room: int) -> tuple[int, int]:
    """How many tokens of each text of a pair to keep when together they may have ``room``.

    The rule of the tokenizers library's ``longest_first`` truncation (what sentence-transformers asks
    for): the shorter text is kept whole when the longer one can absorb the cut, otherwise both are cut
    to half the room, the odd token going to the longer text.
    """
    if a + b <= room:
        return a, b
    swap = a > b
    short, long = (b, a) if swap else (a, b)
    long = short if short > room else max(short, room - short)
    if short + long > room:
        short, long = room // 2, room // 2 + room % 2
    return (long, short) if swap else (short, long)


class TextEncoder:
    """Tokenizes texts once and builds model inputs (pairs or single texts) from their ids.

    :meth:`ids` may run on many threads at once: it uses its own copy of the tokenizer's Rust backend
    with truncation and padding off, never changes it, and the backend releases the GIL while it
    encodes, so a pool of threads tokenizes in parallel.
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self._backend = copy.deepcopy(tokenizer.backend_tokenizer)
        self._backend.no_truncation()
        self._backend.no_padding()
        self.specials = SpecialTokens(tokenizer)
        self.max_length = max_length
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.pair_specials = self.specials.count(pair=True)
        self.single_specials = self.specials.count(pair=False)

    def estimate(self, chars: int, pair: bool = True) -> int:
        """About how many tokens the model reads for a pair (or one text) of ``chars`` characters, without
        tokenizing: what admission weighs a request by before its texts are tokenized."""
        specials = self.pair_specials if pair else self.single_specials
        return min(self.max_length, chars // ESTIMATE_CHARS_PER_TOKEN + specials)

    def ids(self, texts: Sequence[str], limit: int | None = None) -> list[Ids]:
        """Each text's token ids, without special tokens or truncation.

        With ``limit``, at most ``limit + 1`` ids are kept per text, and a long text is tokenized only
        as far as needed for them: its first ``limit * CHARS_PER_TOKEN`` characters or so, cut where words
        part (see :func:`head`, so the ids are those the whole text starts with). The one id past the
        limit marks the text as longer than what can be read. A text whose head gives too few ids that way
        (tokens of dozens of characters) is read four times further, and so on. Documents of megabytes,
        with or without spaces, then cost what the model reads of them, not their size.
        """
        if not texts:
            return []
        if limit is None:
            return self._encode(texts)
        chars = limit * CHARS_PER_TOKEN
        heads = [head(t, chars) for t in texts]
        out = self._encode(heads)
        for i, (text, start) in enumerate(zip(texts, heads)):
            reach = chars
            while start is not text and len(out[i]) <= limit:  # cut, yet not enough ids (very long tokens): read further
                reach *= 4
                start = head(text, reach)
                out[i] = self._encode([start])[0]
            out[i] = out[i][: limit + 1]
        return out

    def encode(self, texts: Sequence[str]) -> list[Ids]:
        """Each text's ids, whole, without special tokens (a chat template writes its own)."""
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> list[Ids]:
        encodings = self._backend.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int32) for e in encodings]

    def pair(self, a: Ids, b: Ids) -> Encoded:
        """The model input for the pair (``a``, ``b``): truncated longest-first, with special tokens."""
        s = self.specials.pair
        keep_a, keep_b = longest_first(len(a), len(b), self.max_length - self.pair_specials)
        ids = np.concatenate((s.prefix, a[:keep_a], s.middle, b[:keep_b], s.suffix)).astype(np.int32)
        types = None
        if self.specials.has_types:
            types = np.concatenate(
                (s.prefix_types, np.full(keep_a, s.a_type), s.middle_types, np.full(keep_b, s.b_type), s.suffix_types)
            ).astype(np.int8)
        return Encoded(ids, types, keep_a < len(a) or keep_b < len(b))

    def single(self, a: Ids) -> Encoded:
        """The model input for one text: truncated to the model's length, with special tokens."""
        s = self.specials.single
        keep = min(len(a), self.max_length - self.single_specials)
        ids = np.concatenate((s.prefix, a[:keep], s.suffix)).astype(np.int32)
        types = None
        if self.specials.has_types:
            types = np.concatenate((s.prefix_types, np.full(keep, s.a_type), s.suffix_types)).astype(np.int8)
        return Encoded(ids, types, keep < len(a))


def head(text: str, chars: int) -> str:
    """``text`` cut within its first ``chars`` characters (past half of them), or whole when short.

    The cut goes where tokenizers split words anyway, so the ids of what is kept are those the whole text
    starts with: after the last space; failing that, after the last character that is neither a letter
    nor a digit (punctuation is a token of its own); failing that (a single "word" of thousands of
    characters), at ``chars`` itself: such a run is read as one or a few unknown tokens either way, and a
    text must never be tokenized whole because it has no space (megabytes of ``,,,,`` took 15 s).
    """
    if len(text) <= chars:
        return text
    cut = text.rfind(" ", chars // 2, chars)
    if cut >= 0:
        return text[:cut]
    window = text[chars // 2 : chars]
    for at in range(len(window) - 1, -1, -1):
        if not window[at].isalnum():
            return text[: chars // 2 + at + 1]
    return text[:chars]


@dataclass(frozen=True)
class PaddedBatch:
    """A batch of inputs padded to its longest, as numpy arrays (int64, as the models take them);
    ``shared``: each row's :attr:`Encoded.shared` (None when no row shares ids)."""

    input_ids: npt.NDArray[np.int64]
    attention_mask: npt.NDArray[np.int64]
    token_type_ids: npt.NDArray[np.int64] | None
    shared: npt.NDArray[np.int64] | None = None

    def arrays(self) -> dict[str, npt.NDArray[np.int64]]:
        """The model's keyword inputs."""
        out = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.token_type_ids is not None:
            out["token_type_ids"] = self.token_type_ids
        return out


def pad(items: Sequence[Encoded], pad_id: int) -> PaddedBatch:
    """Pad ``items`` on the right to the longest of them, as the tokenizer's ``padding=True`` does.

    One vectorised scatter instead of a row at a time: at GPU batch sizes (thousands of pairs) this runs
    on the collate thread while the device runs the previous batch, and must stay well under it.
    """
    lengths = np.fromiter((item.cost for item in items), dtype=np.int64, count=len(items))
    width = int(lengths.max())
    mask = np.arange(width) < lengths[:, None]
    ids = np.full((len(items), width), pad_id, dtype=np.int64)
    ids[mask] = np.concatenate([item.ids for item in items])
    types = None
    if items[0].types is not None:
        types = np.zeros((len(items), width), dtype=np.int64)
        types[mask] = np.concatenate([item.types for item in items if item.types is not None])
    shared = np.fromiter((item.shared for item in items), dtype=np.int64, count=len(items))
    return PaddedBatch(ids, mask.astype(np.int64), types, shared if shared.any() else None)

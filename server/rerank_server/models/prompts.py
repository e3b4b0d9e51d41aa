"""Instructions and chat templates: the inputs an instruction-following reranker expects, built exactly as
sentence-transformers builds them.

Decoder rerankers (Qwen3-Reranker, bge-reranker-v2-gemma, mxbai-rerank-v2) read one prompt holding the
instruction, the query and the document, rendered by the chat template saved with the model: the pair
becomes the messages ``[system: instruction] + [query: q, document: d]`` and the rendered text is
tokenized whole. When it is longer than the model reads, the text is cut on the right and the
template's tail (the closing turn and the assistant's prefix, whose last position the model is read
at) is written back over its last tokens; so the document is cut, never the template, and the query
only when it alone fills the model. :class:`ChatFormat` reproduces this on token ids, and finds the
ids every document of a request shares (template, instruction, query): the engine computes those
once per request (see ``models.decoder``).

Models saved with prompts (``prompts`` / ``default_prompt_name``) get their default prompt when a
request gives no instruction; a model without a chat template gets its instruction prepended to the
query, as sentence-transformers does for text pairs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import ScoringPlan
from .encoding import CHARS_PER_TOKEN, Encoded, Ids, head
from .windows import UnscorableInput, Windowing, per_document, split_documents, window_size

# Distinct fillers that tokenize differently: what the two renders share at their ends is template.
_FILLERS = ("0", "1 2 3 4")
_SENTINEL = "\x00rerank-document\x00"
_CACHED_ENDS = 64  # (query, instruction) pairs whose template ends are kept: a request's documents, or a Score request's pairs


@dataclass(frozen=True)
class Instructions:
    """The instructions a model takes: the prompts it was saved with and the one used by default.

    ``accepts`` is False for a model that was neither trained with instructions (no chat template) nor
    saved with prompts: an instruction sent to it is refused rather than silently changing its input.
    """

    accepts: bool
    prompts: Mapping[str, str] = field(default_factory=dict)
    default: str | None = None

    @classmethod
    def of(cls, model: Any, chat: bool) -> Instructions:
        """What ``model`` (a sentence-transformers CrossEncoder) takes; ``chat``: it has a chat template."""
        prompts = dict(getattr(model, "prompts", None) or {})
        name = getattr(model, "default_prompt_name", None)
        default = prompts.get(name) if name else None
        return cls(accepts=chat or bool(prompts), prompts=prompts, default=default or None)

    def resolve(self, instruction: str, model_name: str) -> str | None:
        """The instruction a request is scored with: its own, else the model's default (None: none).

        An instruction may also name one of the model's saved prompts (``query``, ``web_search``...).
        """
        if not instruction:
            return self.default
        if not self.accepts:
            raise UnscorableInput(
                f"model {model_name!r} takes no instruction (it has no chat template and no saved prompts); "
                "send the request without one, or serve an instruction-following reranker such as Qwen3-Reranker"
            )
        return self.prompts.get(instruction, instruction)


class ChatFormat:
    """Pairs rendered by a model's chat template and tokenized whole, as sentence-transformers does.

    ``encode`` tokenizes texts without special tokens (the template writes its own). Rendering is done
    once per request (query and instruction fixed) and each document is put in its place: templates that
    change the document's text (trimming it, say) are detected at load time and rendered per document.
    """

    def __init__(self, tokenizer: Any, template_kwargs: Mapping[str, Any], max_length: int, encode: Any) -> None:
        self._tokenizer = tokenizer
        self._kwargs = {k: v for k, v in template_kwargs.items() if k not in ("restore_suffix", "truncation", "max_length", "padding")}
        self.max_length = max_length
        self._encode = encode
        self._left = getattr(tokenizer, "truncation_side", "right") == "left"
        self._ends: dict[tuple[str, str | None], tuple[Ids, Ids]] = {}
        self._lock = threading.Lock()
        shown = self._render("query-probe", "document-probe", None)
        if "query-probe" not in shown or "document-probe" not in shown:
            raise ValueError(
                "its chat template does not render a query and a document (it is a chat model's template, not a "
                "reranker's); serve the revision published with sentence-transformers' files (e.g. hf download "
                "Qwen/Qwen3-Reranker-0.6B --revision refs/pr/11 --local-dir DIR) or save the reranker's template "
                "beside the model as chat_template.jinja"
            )
        probe = self._render("q", "d", None)
        self._splices = self._render("q", _SENTINEL, None).count(_SENTINEL) == 1 and probe == self._splice("q", None).format("d")
        self.overhead = sum(len(end) for end in self.ends("", None))

    def _messages(self, query: str, document: str, instruction: str | None) -> list[dict[str, str]]:
        system = [{"role": "system", "content": instruction}] if instruction else []
        return [*system, {"role": "query", "content": query}, {"role": "document", "content": document}]

    def _render(self, query: str, document: str, instruction: str | None) -> str:
        return str(self._tokenizer.apply_chat_template(self._messages(query, document, instruction), tokenize=False, **self._kwargs))

    def _splice(self, query: str, instruction: str | None) -> str:
        """The rendered text with ``{}`` where the document goes (braces of the text itself escaped)."""
        before, after = self._render(query, _SENTINEL, instruction).split(_SENTINEL)
        return before.replace("{", "{{").replace("}", "}}") + "{}" + after.replace("{", "{{").replace("}", "}}")

    def texts(self, query: str, documents: Sequence[str], instruction: str | None, whole: bool) -> tuple[list[str], list[bool]]:
        """Each pair's rendered text, and whether its document was cut first: unless ``whole``
        (windowing), a long document is cut within what the model can read of it (``encoding.head``),
        so megabytes cost what is read. See :func:`needs_whole` for cuts that fell short."""
        limit = self.max_length * CHARS_PER_TOKEN
        docs = documents if whole else [head(d, limit) for d in documents]
        cut = [d is not whole_doc for d, whole_doc in zip(docs, documents)]
        if self._splices:
            shape = self._splice(query, instruction)
            return [shape.format(d) for d in docs], cut
        return [self._render(query, d, instruction) for d in docs], cut

    def ends(self, query: str, instruction: str | None) -> tuple[Ids, Ids]:
        """The ids every pair of this query and instruction starts with (template, instruction, query) and
        ends with (the template's tail): the two fillers' renders share exactly those."""
        key = (query, instruction)
        found = self._ends.get(key)
        if found is None:
            first, second = (np.asarray(self._encode([self._render(query, f, instruction)])[0]) for f in _FILLERS)
            start = _common_prefix(first, second)
            end = _common_prefix(first[::-1], second[::-1])
            found = (first[:start].copy(), first[len(first) - end :].copy())
            with self._lock:  # pool threads plan at once
                if len(self._ends) >= _CACHED_ENDS:
                    self._ends.pop(next(iter(self._ends)))
                self._ends[key] = found
        return found

    def plan(
        self, query: str, instruction: str | None, rendered: Sequence[Ids], cut: Sequence[bool], windowing: Windowing | None,
        max_document_tokens: int | None = None,
    ) -> ScoringPlan:
        """Items for one query's rendered pairs (their full ids): truncated as sentence-transformers
        truncates (each document first to ``max_document_tokens``, when given), or split into windows of
        the document with the template and query around each.

        Every item carries how many leading ids all items of the request share (``Encoded.shared``).
        """
        start_ids, tail = self.ends(query, instruction)
        starts = [_common_prefix(ids, start_ids) for ids in rendered]
        shared = min(starts, default=0)
        if windowing is not None:
            room = window_size(self.max_length, shared, len(tail))
            spans = [ids[s : len(ids) - len(tail)] for ids, s in zip(rendered, starts)]
            pieces = split_documents(spans, room, windowing)
            items = [
                Encoded(np.concatenate((ids[:s], piece, tail)).astype(np.int32), None, False, shared)
                for ids, s, ps in zip(rendered, starts, pieces)
                for piece in ps
            ]
            return per_document(ScoringPlan.one_per_pair(items), [len(ps) for ps in pieces], windowing.aggregation)
        items = []
        for ids, start, was_cut in zip(rendered, starts, cut):
            if max_document_tokens and len(ids) - len(tail) - start > max_document_tokens:
                ids, was_cut = np.concatenate((ids[: start + max_document_tokens], tail)).astype(np.int32), True
            over = len(ids) > self.max_length
            if over:
                keep = ids[len(ids) - self.max_length :] if self._left else ids[: self.max_length - len(tail)]
                ids = np.concatenate((keep[: len(keep) - len(tail)] if self._left else keep, tail)).astype(np.int32)
            items.append(Encoded(ids, None, over or was_cut, min(shared, len(ids) - 1)))
        return ScoringPlan.one_per_pair(items)


def _common_prefix(a: Ids, b: Ids) -> int:
    """How many leading ids ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def chat_format(model: Any, encode: Any, max_length: int) -> ChatFormat | None:
    """The chat format of a sentence-transformers CrossEncoder that renders pairs as messages, else None."""
    transformer = model[0]
    modalities = getattr(transformer, "modality_config", None) or {}
    tokenizer = getattr(model, "tokenizer", None)
    if "message" not in modalities or getattr(tokenizer, "chat_template", None) is None:
        return None
    kwargs = dict((getattr(transformer, "processing_kwargs", None) or {}).get("chat_template") or {})
    return ChatFormat(tokenizer, kwargs, max_length, encode)


def needs_whole(rendered: Sequence[Ids], cut: Sequence[bool], max_length: int) -> list[int]:
    """The pairs to render again with their whole document: cut at its head, the pair still fits the
    model (tokens of dozens of characters), so the model would read less of it than it can."""
    return [i for i, (ids, c) in enumerate(zip(rendered, cut)) if c and len(ids) <= max_length]

"""The engine: each served model's scoring pipeline, the one facade every transport calls.

    rerank(query, documents, options)
      admit (room in the queue checked before any work)  ->  tokenize once, on the tokenizer pool
      ->  plan items from the ids (pairs or texts, windows, costs, truncation)  ->  the batcher
      (length-grouped batches through collate / forward / fetch)  ->  combine windows, normalize,
      rank, usage and timing  ->  a plain result the transport encodes.

Transports (gRPC, the CLI's local mode) never touch a batcher or a model directly, so they share
every behaviour.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..batching import NO_CLAIM, Batcher, Claim, Completed, Reservation, SpeedEstimate, create_batcher
from ..models import ModelInfo, ModelKind, Normalization, Scorer, ScoringPlan
from ..models.encoding import CHARS_PER_TOKEN, Ids, head
from ..models.prompts import needs_whole
from ..models.windows import UnscorableInput, Windowing
from .pool import TokenizerPool
from .results import EmbedResult, Options, RankedDocument, RerankResult, ScoreResult, Timing, Usage
from .settings import BatchingConfig, RequestLimits

_SHOWN = 5  # offending items listed in one message

T = TypeVar("T")


class UnknownModel(LookupError):
    """A request named a model this server does not serve."""


def ranked_indices(scores: np.ndarray, top_k: int) -> list[int]:
    """Indices of ``scores`` best first, equal scores in input order; the first ``top_k`` (0: all)."""
    # A stable sort on the negated scores keeps ties in input order.
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    if top_k:
        order = order[:top_k]
    return [int(i) for i in order]


def listing(indexes: Sequence[int]) -> str:
    """``0, 3, 7 and 12 more``: the first few offending positions for an error message."""
    shown = ", ".join(str(i) for i in indexes[:_SHOWN])
    return shown + (f" and {len(indexes) - _SHOWN} more" if len(indexes) > _SHOWN else "")


@dataclass
class ServedModel:
    """A loaded model with its batcher and the tokenizer pool it shares with the other models."""

    scorer: Scorer
    batcher: Batcher
    limits: BatchingConfig
    pool: TokenizerPool
    requests: RequestLimits = RequestLimits()

    @property
    def info(self) -> ModelInfo:
        """The scorer's description."""
        return self.scorer.info

    @classmethod
    def create(
        cls,
        scorer: Scorer | Sequence[Scorer],
        limits: BatchingConfig,
        pool: TokenizerPool,
        requests: RequestLimits = RequestLimits(),
        tokens_per_s: float | None = None,
    ) -> ServedModel:
        """Give ``scorer`` a batcher of its own (batches of different models never mix); ``tokens_per_s``,
        the model's speed measured at start-up, seeds the running estimate deadlines are admitted by.
        Several scorers are the model on several devices: one queue feeds them all, and the first plans
        the requests."""
        lanes = list(scorer) if isinstance(scorer, Sequence) else [scorer]
        scorer = lanes[0]
        batcher = create_batcher(
            limits.strategy,
            lanes,
            limits.policy(),
            max_queued=limits.max_queued_pairs,
            name=scorer.info.name,
            pipeline_depth=limits.pipeline_depth,
            share=limits.share,
            tenant_share=limits.tenant_queue_share,
            speed=SpeedEstimate(tokens_per_s, seed_tokens=limits.max_batch_tokens),
        )
        return cls(scorer, batcher, limits, pool, requests)

    async def rerank(self, query: str, documents: Sequence[str], options: Options = Options(), claim: Claim = NO_CLAIM) -> RerankResult:
        """Score ``documents`` against ``query`` and rank them, best first; ``claim`` is the request's
        deadline, priority and caller."""
        accepted = time.monotonic()
        self._check_normalization(options)
        self._refuse_oversized([query], "the query")
        self._refuse_oversized(documents, "documents")
        self._refuse_oversized([options.instruction], "the instruction")
        instruction = self._instruction(options)
        if instruction and self.scorer.chat is None:
            query = instruction + query  # a text-pair model takes its prompt before the query, as predict does
        # Admitted (or refused) before any work: each document is at least one queued item, one more for
        # a bi-encoder's query. The reservation holds that room while the texts are tokenized.
        encoder = self.scorer.encoder
        if self.info.kind is ModelKind.BI_ENCODER:
            count, cost = len(documents) + 1, sum(encoder.estimate(len(t), pair=False) for t in (query, *documents))
        else:
            extra = len(query) + len(instruction or "")
            count, cost = len(documents), sum(encoder.estimate(extra + len(d)) for d in documents)
        with await self.batcher.admit(count, claim, cost) as reservation:
            windowing = options.windowing
            if windowing is not None:
                windowing = dataclasses.replace(windowing, max_windows=self.requests.max_request_pairs)
            if self.scorer.chat is not None:
                plan = await self._plan_chat(query, documents, instruction, windowing, options.max_document_tokens)
            else:
                most = options.max_document_tokens if windowing is None else None

                def plan_rerank(query_ids: list[Ids], document_ids: list[Ids]) -> ScoringPlan:
                    if most:
                        document_ids = [ids[:most] for ids in document_ids]
                    return self.scorer.plan_rerank(query_ids[0], document_ids, windowing)

                plan = await self._tokenized([query], documents, windowing is not None, plan_rerank)
            raw, scores, completed = await self._score(plan, options, reservation, "documents")
        truncated, windows = plan.truncated, plan.windows or [1] * len(documents)
        # Ranked by the raw scores: every normalization is monotone in them, and they keep apart documents
        # that a saturated sigmoid or a flat step of a calibration would tie.
        order = ranked_indices(raw, 0)
        dropped = 0
        if options.min_score is not None:
            kept = [i for i in order if scores[i] >= options.min_score]
            order, dropped = kept, len(order) - len(kept)
        if options.top_k:
            order = order[: options.top_k]
        ranked = [
            RankedDocument(index=i, score=float(scores[i]), rank=rank, truncated=truncated[i], windows=windows[i]) for rank, i in enumerate(order)
        ]
        return RerankResult(self.info.name, ranked, _usage(plan), _timing(accepted, completed), dropped)

    def _check_normalization(self, options: Options) -> None:
        """Refuse CALIBRATED scores from a model served without a calibration, before any work."""
        if options.normalization is Normalization.CALIBRATED and self.scorer.calibration is None:
            raise UnscorableInput(
                f"model {self.info.name!r} has no calibration, so it has no calibrated scores; fit one with "
                f"rerank calibrate and serve it with --calibration {self.info.name}=FILE, or ask for raw or sigmoid scores"
            )

    def _instruction(self, options: Options) -> str | None:
        """The instruction this request is scored with (its own or the model's default), or refused."""
        return self.scorer.instructions.resolve(options.instruction, self.info.name)

    async def _plan_chat(
        self, query: str, documents: Sequence[str], instruction: str | None, windowing: Windowing | None, max_document_tokens: int | None = None
    ) -> ScoringPlan:
        """A chat-template reranker's plan: each pair rendered and tokenized whole on the pool, then cut or
        split into windows as sentence-transformers would (see ``models.prompts``)."""
        chat = self.scorer.chat
        assert chat is not None
        if max_document_tokens and windowing is None:
            documents = [head(d, max_document_tokens * CHARS_PER_TOKEN) for d in documents]
        texts, cut = chat.texts(query, documents, instruction, whole=windowing is not None)
        rendered = await self.pool.ids(self.scorer.encoder, texts)
        again = needs_whole(rendered, cut, chat.max_length)
        if again:
            whole, _ = chat.texts(query, [documents[i] for i in again], instruction, whole=True)
            for i, ids in zip(again, await self.pool.ids(self.scorer.encoder, whole)):
                rendered[i], cut[i] = ids, False
        return await self.pool.run(chat.plan, query, instruction, rendered, cut, windowing, max_document_tokens)

    async def score(self, pairs: Sequence[tuple[str, str]], options: Options = Options(), claim: Claim = NO_CLAIM) -> ScoreResult:
        """Score independent (query, document) pairs, in input order."""
        accepted = time.monotonic()
        self._check_normalization(options)
        self._refuse_oversized([t for pair in pairs for t in pair], "pairs", per_item=2)
        self._refuse_oversized([options.instruction], "the instruction")
        instruction = self._instruction(options)
        if instruction and self.scorer.chat is None:
            pairs = [(instruction + q, d) for q, d in pairs]
        encoder, cross = self.scorer.encoder, self.info.kind is ModelKind.CROSS_ENCODER
        cost = sum(encoder.estimate(len(q) + len(d)) if cross else encoder.estimate(len(q), False) + encoder.estimate(len(d), False) for q, d in pairs)
        with await self.batcher.admit(len(pairs) if cross else 1, claim, cost) as reservation:
            if self.scorer.chat is not None:
                plan = await self._plan_chat_pairs(pairs, instruction)
            else:
                queries = list(dict.fromkeys(q for q, _ in pairs))  # each distinct text is tokenized once
                seen = set(queries)
                documents = list(dict.fromkeys(d for _, d in pairs if d not in seen))

                def plan_pairs(query_ids: list[Ids], document_ids: list[Ids]) -> ScoringPlan:
                    return self.scorer.plan_pairs(pairs, dict(zip(queries + documents, query_ids + document_ids)))

                plan = await self._tokenized(queries, documents, False, plan_pairs)
            _, scores, completed = await self._score(plan, options, reservation, "pairs")
        return ScoreResult(self.info.name, [float(s) for s in scores], list(plan.truncated), _usage(plan), _timing(accepted, completed))

    async def _plan_chat_pairs(self, pairs: Sequence[tuple[str, str]], instruction: str | None) -> ScoringPlan:
        """Independent pairs for a chat-template reranker: planned per distinct query (pairs of one query
        share its prefix), put back in input order."""
        by_query: dict[str, list[int]] = {}
        for i, (q, _) in enumerate(pairs):
            by_query.setdefault(q, []).append(i)
        plans = await asyncio.gather(*(self._plan_chat(q, [pairs[i][1] for i in at], instruction, None) for q, at in by_query.items()))
        items: list[Any] = [None] * len(pairs)
        for at, plan in zip(by_query.values(), plans):
            for i, item in zip(at, plan.items):
                items[i] = item
        return ScoringPlan.one_per_pair(items)

    async def embed(self, texts: Sequence[str], claim: Claim = NO_CLAIM, error_on_truncation: bool = False) -> EmbedResult:
        """Each text's unit-length embedding, in input order (a bi-encoder only: a cross-encoder reads
        pairs and has none). Admitted, tokenized and batched as a rerank request's texts are."""
        if self.info.kind is not ModelKind.BI_ENCODER:
            raise UnscorableInput(
                f"model {self.info.name!r} is a cross-encoder: it scores (query, document) pairs and has no embeddings; "
                "name a bi-encoder served here (see GET /v1/models)"
            )
        accepted = time.monotonic()
        self._refuse_oversized(texts, "inputs")
        encoder = self.scorer.encoder
        with await self.batcher.admit(len(texts), claim, sum(encoder.estimate(len(t), pair=False) for t in texts)) as reservation:
            items = await self._tokenized([], texts, False, lambda _, ids: [encoder.single(i) for i in ids])
            truncated = [item.truncated for item in items]
            if error_on_truncation and any(truncated):
                raise UnscorableInput(
                    f"inputs at index {listing([i for i, t in enumerate(truncated) if t])} exceed the model's max sequence length of "
                    f"{self.info.max_seq_length} tokens; shorten or split them, or allow truncation to embed their beginning"
                )
            costs = [item.cost for item in items]
            completed = await self.batcher.submit(items, costs, reservation=reservation)
        embeddings = np.asarray(completed.results, dtype=np.float32).reshape(len(texts), -1)
        usage = Usage(pairs=len(texts), tokens=sum(costs), truncated_documents=sum(truncated))
        return EmbedResult(self.info.name, embeddings, usage, _timing(accepted, completed))

    def _refuse_oversized(self, texts: Sequence[str], what: str, per_item: int = 1) -> None:
        """Refuse texts over ``max_document_bytes``, naming where they are, before any work on them."""
        limit = self.requests.max_document_bytes
        # A character is 1-4 UTF-8 bytes: only texts that could be over the limit are measured.
        over = [i for i, t in enumerate(texts) if len(t) * 4 > limit and (len(t) > limit or len(t.encode("utf-8")) > limit)]
        if over:
            subject = f"{what} exceeds" if what.startswith("the ") else f"{what} at index {listing(sorted({i // per_item for i in over}))} exceed"
            raise UnscorableInput(
                f"{subject} the limit of {limit} UTF-8 bytes a text (--max-document-bytes); "
                "split long documents before sending them"
            )

    async def _tokenized(self, queries: Sequence[str], documents: Sequence[str], whole: bool, then: Callable[[list[Ids], list[Ids]], T]) -> T:
        """``then(query ids, document ids)``, the texts tokenized on the pool (a small request's
        tokenizing and ``then`` in one job: see :meth:`TokenizerPool.tokenized`). A document is tokenized
        only as far as the model can read it unless it is ``whole`` (windowed); a bi-encoder reads every
        text so."""
        encoder, limit = self.scorer.encoder, self.scorer.encoder.max_length
        query_limit = limit if self.info.kind is ModelKind.BI_ENCODER else None
        return await self.pool.tokenized(encoder, [(queries, query_limit), (documents, None if whole else limit)], then)

    async def _score(
        self, plan: ScoringPlan, options: Options, reservation: Reservation, what: str
    ) -> tuple[np.ndarray, np.ndarray, Completed[object]]:
        """Run ``plan``'s items: the raw scores (one a pair), the scores ``options`` asks for, and how it went."""
        if options.error_on_truncation and any(plan.truncated):
            over = [i for i, t in enumerate(plan.truncated) if t]
            raise UnscorableInput(
                f"{what} at index {listing(over)} exceed the model's max sequence length of {self.info.max_seq_length} "
                f"tokens with the query, and {options.truncation_switch[0]}; shorten or split them, or "
                f"{options.truncation_switch[1]} to score their beginning"
            )
        completed = await self.batcher.submit(plan.items, plan.costs, reservation=reservation)
        raw = plan.combine(completed.results)
        return raw, self._report(raw, options.normalization), completed

    def _report(self, raw: np.ndarray, normalization: Normalization) -> np.ndarray:
        """The scores ``normalization`` reports for ``raw``: CALIBRATED maps what RAW reports (the model's
        own output, which ``rerank calibrate`` fitted on) through the model's calibration."""
        if normalization is Normalization.CALIBRATED:
            assert self.scorer.calibration is not None  # refused before any work otherwise
            return self.scorer.calibration.apply(self.scorer.normalize(raw, Normalization.RAW))
        return self.scorer.normalize(raw, normalization)


def _usage(plan: ScoringPlan) -> Usage:
    return Usage(pairs=len(plan.truncated), tokens=sum(plan.pair_tokens), truncated_documents=sum(plan.truncated))


def _timing(accepted: float, completed: Completed[object]) -> Timing:
    total = time.monotonic() - accepted
    inference = completed.inference_s
    return Timing(queue_ms=max(0.0, total - inference) * 1000.0, inference_ms=inference * 1000.0, total_ms=total * 1000.0)


class ModelRegistry:
    """Served models by name; the first one added is the default."""

    def __init__(self, models: Iterable[ServedModel] = ()) -> None:
        self._models: dict[str, ServedModel] = {}
        self._aliases: dict[str, str] = {}
        for model in models:
            self.add(model)

    def alias(self, alias: str, name: str) -> None:
        """Let requests name the model ``name`` as ``alias`` too (a hosted model's name a client has built in)."""
        if name not in self._models:
            raise ValueError(f"--alias {alias}={name}: no model is named {name!r}")
        self._aliases[alias] = name

    def add(self, model: ServedModel) -> None:
        """Serve ``model`` under its name."""
        if model.info.name in self._models:
            raise ValueError(f"two models are named {model.info.name!r}")
        self._models[model.info.name] = model

    @property
    def default_name(self) -> str:
        """The model requests with an empty name go to."""
        return next(iter(self._models))

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def embedder(self, name: str) -> ServedModel:
        """The model an embedding request names; with no name, the first bi-encoder served (the default
        model is often a cross-encoder, which has no embeddings)."""
        if not name:
            return next((m for m in self._models.values() if m.info.kind is ModelKind.BI_ENCODER), self.get(""))
        return self.get(name)

    def get(self, name: str) -> ServedModel:
        """The model called ``name`` (empty: the default), or by an alias of it; with one model served, any
        name reaches it (as TEI ignores the name). Raises :class:`UnknownModel`."""
        if not name:
            return self._models[self.default_name]
        try:
            return self._models[self._aliases.get(name, name)]
        except KeyError:
            if len(self._models) == 1:
                return self._models[self.default_name]
            shown = name if len(name) <= 80 else name[:77] + "..."  # a caller's junk is not echoed whole
            raise UnknownModel(
                f"model {shown!r} is not served here; served models: {', '.join(self._models)} (see ListModels)"
            ) from None

    async def aclose(self, drain: bool = True) -> None:
        """Stop every batcher, finishing queued work first when ``drain``."""
        for model in self._models.values():
            await model.batcher.aclose(drain=drain)

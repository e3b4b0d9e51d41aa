"""Where the two models' scores come from: a running server, or the models loaded in this process."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from ..client import RerankClient


@dataclass(frozen=True)
class Scored:
    """One query's documents scored by both models, with what the cross-encoder read of each pair."""

    cross: list[float]
    embed: list[float]
    tokens: list[int]  # tokens of (query, document) for the cross-encoder, capped at its max length
    truncated: list[bool]
    max_length: int
    cross_probabilities: list[float] | None = None  # calibrated, when both models have a calibration
    embed_probabilities: list[float] | None = None


class Source(Protocol):
    """Scores a query's documents with both models."""

    def score(self, query: str, documents: list[str]) -> Scored:
        """Both models' raw scores for every document."""
        ...

    def close(self) -> None:
        """Release what the source holds (a channel, loaded models)."""
        ...


def load_examples(path: str | None) -> list[dict[str, Any]]:
    """Queries with their documents: from ``path`` (JSON like the example) or the shipped example set."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("rerank_client").joinpath("data/compare-example.json").read_text(encoding="utf-8")
    queries = json.loads(text)["queries"]
    for q in queries:
        if not q.get("query") or not q.get("documents"):
            raise ValueError("every entry needs a 'query' and a non-empty 'documents' list")
    return queries


class ServerSource:
    """Both models served by one rerank-server (``--model ce=... --model all-MiniLM-L6-v2``)."""

    def __init__(self, client: RerankClient, cross_model: str, embed_model: str) -> None:
        self.client = client
        models = {m.name: m for m in client.list_models().models}
        for name, kind in ((cross_model, "cross-encoder"), (embed_model, "bi-encoder")):
            if name not in models:
                raise ValueError(f"the server does not serve {name!r}; it serves {', '.join(models)}")
            if models[name].kind != kind:
                raise ValueError(f"{name!r} is a {models[name].kind}, not a {kind}")
        self.cross_model, self.embed_model = cross_model, embed_model
        self.max_length = models[cross_model].max_seq_length
        self.calibrated = bool(models[cross_model].calibration and models[embed_model].calibration)

    def score(self, query: str, documents: list[str]) -> Scored:
        """One Score call per pair, so each pair's tokens come back in its own usage."""
        cross, tokens, truncated = [], [], []
        for doc in documents:
            result = self.client.score([(query, doc)], model=self.cross_model)
            cross.append(result.scores[0])
            tokens.append(result.usage.tokens)
            truncated.append(result.truncated[0])
        pairs = [(query, d) for d in documents]
        embed = self.client.score(pairs, model=self.embed_model).scores
        if not self.calibrated:
            return Scored(cross, list(embed), tokens, truncated, self.max_length)
        p_cross = self.client.score(pairs, model=self.cross_model, normalization="calibrated").scores
        p_embed = self.client.score(pairs, model=self.embed_model, normalization="calibrated").scores
        return Scored(cross, list(embed), tokens, truncated, self.max_length, list(p_cross), list(p_embed))

    def close(self) -> None:
        """Close the client's channel."""
        self.client.close()


class LocalSource:
    """Both models loaded in this process and scored by the server's engine (needs rerank-grpc[server])."""

    def __init__(self, cross_source: str, embed_source: str, device: str = "auto", calibrations: dict[str, str] | None = None) -> None:
        try:
            from rerank_server.local import LocalEngine
        except ImportError as exc:
            raise ValueError("--local needs the server's model layer: pip install '.[server]' in the rerank-grpc checkout") from exc
        try:
            self.engine = LocalEngine(
                [f"cross=cross-encoder:{cross_source}", f"embed=bi-encoder:{embed_source}"], device=device, dtype="float32", calibrations=calibrations
            )
        except RuntimeError as exc:  # the model cannot be loaded here (offline, not cached, not a model)
            reason = getattr(exc, "reason", str(exc))  # the why, without the server's own --model fix
            raise ValueError(
                f"cannot load the models in this process ({reason}); give local copies with --cross-encoder DIR "
                "(and --embedding DIR), or compare through a server with --target"
            ) from None

    def score(self, query: str, documents: list[str]) -> Scored:
        """Scores as the server would compute them, without the server: one Score per pair, as
        :class:`ServerSource` asks, so each pair's tokens come back in its own usage."""
        cross, tokens, truncated = [], [], []
        for doc in documents:
            result = self.engine.score("cross", [(query, doc)])
            cross.append(result.scores[0])
            tokens.append(result.usage.tokens)
            truncated.append(result.truncated[0])
        pairs = [(query, d) for d in documents]
        embed = self.engine.score("embed", pairs).scores
        scored = Scored(cross, embed, tokens, truncated, self.engine.info("cross").max_seq_length)
        if not self.engine.calibrated("cross") or not self.engine.calibrated("embed"):
            return scored
        from rerank_server.engine import Options
        from rerank_server.models import Normalization

        calibrated = Options(normalization=Normalization.CALIBRATED)
        p_cross, p_embed = (self.engine.score(name, pairs, calibrated).scores for name in ("cross", "embed"))
        return dataclasses.replace(scored, cross_probabilities=p_cross, embed_probabilities=p_embed)

    def close(self) -> None:
        """Release the models."""
        self.engine.close()

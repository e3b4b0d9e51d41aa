"""Printing a comparison as a terminal table, markdown, or JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from .analysis import QueryComparison, disagreements


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def as_table(comparisons: Sequence[QueryComparison], cross_name: str, embed_name: str, width: int = 44) -> str:
    """Side-by-side top lists per query, then the evidence for each difference."""
    lines = []
    for c in comparisons:
        k = min(c.top_k, len(c.documents))
        lines.append(f"Query: {c.query}")
        lines.append(f"  {'rank':<5}{'cross-encoder (' + cross_name + ')':<{width + 14}}{'embedding (' + embed_name + ')'}")
        for r in range(k):
            ci, ei = c.cross_order[r], c.embed_order[r]
            left = f"[{ci}] {_short(c.documents[ci], width)} ({c.cross_scores[ci]:.3f}{_p(c.cross_probabilities, ci)})"
            right = f"[{ei}] {_short(c.documents[ei], width)} ({c.embed_scores[ei]:.3f}{_p(c.embed_probabilities, ei)})"
            mark = " " if ci == ei else "*"
            lines.append(f"  {r + 1:<3}{mark} {left:<{width + 14}}{right}")
        lines.append(f"  Spearman {c.rank_correlation:+.2f} over all {len(c.documents)} documents; top-{k} overlap {c.top_overlap}/{k}")
        for d in c.differences:
            lines.append(f"  * rank {d.rank}: cross-encoder [{d.cross_pick.index}] vs embedding [{d.embed_pick.index}]")
            for ev in (d.cross_pick, d.embed_pick):
                fit = f"over {c.max_length}: truncated" if ev.truncated else f"fits in {c.max_length}"
                lines.append(
                    f"      [{ev.index}] query words shared {ev.lexical_overlap:.0%}, {ev.tokens} tokens ({fit}), "
                    f"cross-encoder {ev.cross_score:.3f}, cosine {ev.embed_score:.3f}"
                )
            lines.append(f"      margins: cross-encoder {d.cross_margin:+.3f}, cosine {d.embed_margin:+.3f}")
            for reason in d.reasons:
                lines.append(f"      - {reason}")
        lines.append("")
    lines += _disagreements(comparisons, cross_name, embed_name)
    return "\n".join(lines)


def _p(probabilities: list[float] | None, i: int) -> str:
    """``, p=0.93``: a document's calibrated probability, when the models have calibrations."""
    return "" if probabilities is None else f", p={probabilities[i]:.2f}"


def _disagreements(comparisons: Sequence[QueryComparison], cross_name: str, embed_name: str) -> list[str]:
    """The pairs whose calibrated probabilities differ most between the models (nothing without them)."""
    found = disagreements(list(comparisons))
    if not found:
        return []
    lines = [f"Calibrated P(relevant), where {cross_name} and {embed_name} disagree most:"]
    for d in found:
        lines.append(f"  {d.cross_probability:.2f} vs {d.embed_probability:.2f}  {_short(d.query, 40)!r} [{d.index}] {_short(d.document, 60)}")
    return lines + [""]


def as_markdown(comparisons: Sequence[QueryComparison], cross_name: str, embed_name: str) -> str:
    """One section per query: a table of both top lists and a list of explained differences."""
    out = []
    for c in comparisons:
        k = min(c.top_k, len(c.documents))
        out += [f"### {c.query}", "", f"| rank | cross-encoder ({cross_name}) | score | embedding ({embed_name}) | cosine |", "|---|---|---:|---|---:|"]
        for r in range(k):
            ci, ei = c.cross_order[r], c.embed_order[r]
            out.append(
                f"| {r + 1} | [{ci}] {_short(c.documents[ci], 60)} | {c.cross_scores[ci]:.3f} | [{ei}] {_short(c.documents[ei], 60)} | {c.embed_scores[ei]:.3f} |"
            )
        out += ["", f"Spearman {c.rank_correlation:+.2f}; top-{k} overlap {c.top_overlap}/{k}.", ""]
        for d in c.differences:
            out.append(f"- rank {d.rank}: cross-encoder picks [{d.cross_pick.index}], embedding picks [{d.embed_pick.index}]; margins {d.cross_margin:+.3f} / {d.embed_margin:+.3f}")
            out += [f"  - {reason}" for reason in d.reasons]
        out.append("")
    return "\n".join(out + _disagreements(comparisons, cross_name, embed_name))


def as_json(comparisons: Sequence[QueryComparison], cross_name: str, embed_name: str) -> str:
    """Everything, for scripts."""
    found = [dataclasses.asdict(d) for d in disagreements(list(comparisons))]
    document = {"cross_encoder": cross_name, "embedding": embed_name, "queries": [c.to_dict() for c in comparisons]}
    return json.dumps({**document, **({"disagreements": found} if found else {})}, indent=2)

"""Decoder rerankers in torch: read at each pair's last token, with the ids a request shares computed once.

A decoder reranker (Qwen3-Reranker and its kin) scores a pair from the hidden state at the pair's last
token: through two rows of its language-model head (``logit(yes) - logit(no)``, sentence-transformers'
``LogitScore``) or, in a sequence-classification conversion, through a one-row ``score`` layer. Both
are a small matrix (:class:`ScoreHead`) applied to that one hidden state, so the head never computes
the logits of the whole vocabulary.

Every document of a request starts with the same ids (template, instruction, query: often as long as
the document). Attention is causal, so those ids' keys and values do not depend on what follows them:
:class:`DecoderNetwork` runs each distinct prefix of a batch once, copies its key/value cache to the
rows that share it, and runs only the rows' own ids against it, at the positions they have in the
whole pair. Rows are padded on the right and read at their own last token, which is what a pair alone
would give (sentence-transformers pads on the left; with rotary positions only relative positions
count, so the scores agree to float rounding: the tests hold them to 1e-5).
"""

from __future__ import annotations

import enum
import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from .device import released_on_oom
from .encoding import PaddedBatch
from .network import TorchNetwork

# A prefix is reused only when it saves at least this share of a batch's tokens: the reuse costs a
# second forward call and a copy of the key/value cache per row.
REUSE_MIN_SAVING = 0.2


class PrefixReuse(enum.Enum):
    """When :class:`DecoderNetwork` computes a shared prefix once (``--prefix-reuse``)."""

    AUTO = "auto"  # when it saves at least REUSE_MIN_SAVING of a batch's tokens
    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True)
class ScoreSpec:
    """A decoder's score given on the command line (``--score-tokens``): the logit of ``true`` minus that
    of ``false`` (just ``true``'s without it), plus ``bias``; tokens by text or by id."""

    true: str
    false: str | None = None
    bias: float = 0.0

    @classmethod
    def parse(cls, value: str) -> ScoreSpec:
        """``TRUE[,FALSE][,bias=B]``, e.g. ``yes,no`` or ``1,0,bias=-2.5``."""
        parts = [p.strip() for p in value.split(",") if p.strip()]
        bias = 0.0
        tokens = []
        for part in parts:
            if part.startswith("bias="):
                bias = float(part[5:])
            else:
                tokens.append(part)
        if not 1 <= len(tokens) <= 2:
            raise ValueError(f"{value!r}: give TRUE_TOKEN[,FALSE_TOKEN][,bias=B], e.g. yes,no")
        return cls(tokens[0], tokens[1] if len(tokens) > 1 else None, bias)


class ScoreHead(torch.nn.Module):
    """The rows of a decoder's output layer its score reads, applied to last-token hidden states.

    ``weight`` holds one row (a score layer, or a single token's logit) or two (true, false: the score
    is their difference); ``softcap`` is the model's final-logit soft cap (Gemma 2), applied to each
    logit before the difference as the full head would; ``bias`` is added to the score.
    """

    def __init__(self, weight: torch.Tensor, row_bias: torch.Tensor | None, softcap: float | None, bias: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight.detach().float().clone(), requires_grad=False)
        self.row_bias = None if row_bias is None else torch.nn.Parameter(row_bias.detach().float().clone(), requires_grad=False)
        self.softcap = softcap
        self.bias = bias

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """One score per row of ``hidden`` (rows x width), as a (rows x 1) float32 tensor."""
        logits = hidden.float() @ self.weight.T
        if self.row_bias is not None:
            logits = logits + self.row_bias
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        score = logits[:, 0] - logits[:, 1] if logits.shape[1] == 2 else logits[:, 0]
        return (score + self.bias).unsqueeze(1)


def score_head(model: Any, spec: ScoreSpec | None) -> ScoreHead:
    """The :class:`ScoreHead` of a sentence-transformers CrossEncoder over a decoder: from ``spec``, else its
    ``LogitScore`` module, else its sequence-classification ``score`` layer. Raises ValueError naming the fix."""
    from sentence_transformers.cross_encoder.modules import LogitScore

    hf = model[0].model
    rest = list(model)[1:]
    if spec is not None or (len(rest) == 1 and isinstance(rest[0], LogitScore)):
        output = hf.get_output_embeddings()
        if output is None:
            raise ValueError("--score-tokens reads a language-model head; this model has none (it is a sequence-classification conversion: serve it without --score-tokens)")
        if spec is not None:
            true, false, bias = _token_id(model.tokenizer, spec.true), None if spec.false is None else _token_id(model.tokenizer, spec.false), spec.bias
        else:
            true, false, bias = rest[0].true_token_id, rest[0].false_token_id, 0.0
        rows = [true] if false is None else [true, false]
        row_bias = None if getattr(output, "bias", None) is None else output.bias[rows]
        softcap = getattr(hf.config, "final_logit_softcapping", None)
        return ScoreHead(output.weight[rows], row_bias, softcap, bias)
    score = getattr(hf, "score", None)
    if rest or not isinstance(score, torch.nn.Linear) or score.out_features != 1:
        raise ValueError(
            "its modules end in neither a LogitScore nor a one-label score layer; name the tokens its score reads: "
            "--score-tokens NAME=yes,no"
        )
    return ScoreHead(score.weight, score.bias, None, 0.0)


def _token_id(tokenizer: Any, token: str) -> int:
    if token.isdigit() and int(token) < len(tokenizer):
        return int(token)
    found = tokenizer.convert_tokens_to_ids(token)
    if found is None or found == tokenizer.unk_token_id:
        raise ValueError(f"--score-tokens: {token!r} is not one token of this model's vocabulary; give its id or its exact token text")
    return int(found)


# Model types of decoder families: their sequence-classification conversions read the last token too.
_DECODER_TYPES = (
    "qwen2", "qwen3", "gemma", "llama", "mistral", "mixtral", "phi", "olmo", "granite", "gpt", "falcon", "stablelm",
    "internlm", "deepseek", "exaone", "glm", "cohere", "starcoder", "smollm",
)


def is_decoder_config(config: dict[str, Any]) -> bool:
    """Whether a model's ``config.json`` describes a decoder reranker: a causal language model, or a
    sequence-classification conversion of one (encoders such as BERT have causal heads too: by type)."""
    architectures = config.get("architectures") or []
    if any(a.endswith("ForCausalLM") for a in architectures):
        return True
    model_type = str(config.get("model_type", ""))
    return any(a.endswith("ForSequenceClassification") for a in architectures) and model_type.startswith(_DECODER_TYPES)


@dataclass(frozen=True)
class _Prefixed:
    """A batch split into its distinct prefixes and each row's own ids (numpy, on the host)."""

    prefix_ids: npt.NDArray[np.int64]
    prefix_mask: npt.NDArray[np.int64]
    group: npt.NDArray[np.int64]
    suffix_ids: npt.NDArray[np.int64]
    suffix_mask: npt.NDArray[np.int64]
    positions: npt.NDArray[np.int64]
    last: npt.NDArray[np.int64]


def split_prefixes(batch: PaddedBatch, pad_id: int, reuse: PrefixReuse) -> _Prefixed | None:
    """``batch`` as distinct prefixes plus each row's ids after its prefix, or None when reuse does not
    pay (or is off): rows share a prefix when their first ``shared`` ids are the same."""
    shared = batch.shared
    if reuse is PrefixReuse.NEVER or shared is None or not shared.all():
        return None
    ids = batch.input_ids
    lengths = batch.attention_mask.sum(axis=1)
    keys: dict[bytes, int] = {}
    group = np.fromiter((keys.setdefault(ids[i, : shared[i]].tobytes(), len(keys)) for i in range(len(ids))), dtype=np.int64, count=len(ids))
    first = np.unique(group, return_index=True)[1]
    prefix_lengths = shared[first]
    if reuse is PrefixReuse.AUTO and shared.sum() - prefix_lengths.sum() < REUSE_MIN_SAVING * lengths.sum():
        return None
    width = int(prefix_lengths.max())
    prefix_mask = (np.arange(width) < prefix_lengths[:, None]).astype(np.int64)
    prefix_ids = np.where(prefix_mask == 1, ids[first, :width], pad_id)  # a prefix is shorter than its rows
    own = lengths - shared
    span = int(own.max())
    columns = np.minimum(shared[:, None] + np.arange(span), ids.shape[1] - 1)
    suffix_mask = (np.arange(span) < own[:, None]).astype(np.int64)
    suffix_ids = np.where(suffix_mask == 1, np.take_along_axis(ids, columns, axis=1), pad_id)
    return _Prefixed(prefix_ids, prefix_mask, group, suffix_ids, suffix_mask, shared[:, None] + np.arange(span), own - 1)


class DecoderNetwork(TorchNetwork):
    """A decoder reranker's base model and :class:`ScoreHead`; each batch runs whole, or as its distinct
    prefixes once and every row's own ids against their cached keys and values (``reuse``)."""

    def __init__(self, base: torch.nn.Module, head: ScoreHead, device: str, pad_id: int, reuse: PrefixReuse = PrefixReuse.AUTO) -> None:
        super().__init__(base, device, "scores")
        self._head = head.to(self._device)
        self._pad_id = pad_id
        self.reuse = reuse
        self._config: Any = base.config
        self._cache_kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    def collate(self, batch: PaddedBatch) -> dict[str, Any]:
        """The batch as tensors on the device: whole (right-padded, with each row's last position) or
        split at its shared prefixes (see :func:`split_prefixes`)."""
        split = split_prefixes(batch, self._pad_id, self.reuse)
        if split is None:
            arrays = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "last": batch.attention_mask.sum(axis=1) - 1}
        else:
            arrays = {name: getattr(split, name) for name in _Prefixed.__dataclass_fields__}
        tensors = {name: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)) for name, a in arrays.items()}
        if self._cuda:
            return {name: t.pin_memory().to(self._device, non_blocking=True) for name, t in tensors.items()}
        return {name: t.to(self._device) for name, t in tensors.items()} if self._device.type != "cpu" else tensors

    def forward(self, inputs: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        """Queue the network, the head and the copy of the scores to the host (see TorchNetwork.forward)."""
        with torch.inference_mode(), released_on_oom():
            if "prefix_ids" in inputs:
                hidden = self._prefixed(inputs)
            else:
                hidden = self._module(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False).last_hidden_state
            rows = torch.arange(len(hidden), device=hidden.device)
            out = self._head(hidden[rows, inputs["last"]])
            return self._to_host(out)

    def _prefixed(self, inputs: dict[str, Any]) -> torch.Tensor:
        from transformers import DynamicCache

        # The cache is made here and filled in place: its keyword is ``cache`` in recent transformers and
        # ``past_key_values`` before, and the output's attribute changed with it.
        cache = DynamicCache(config=self._config)
        self._module(input_ids=inputs["prefix_ids"], attention_mask=inputs["prefix_mask"], use_cache=True, **{self._cache_kw: cache})
        cache.batch_select_indices(inputs["group"])
        mask = torch.cat((inputs["prefix_mask"][inputs["group"]], inputs["suffix_mask"]), dim=1)
        out = self._module(
            input_ids=inputs["suffix_ids"], attention_mask=mask, position_ids=inputs["positions"], use_cache=True, **{self._cache_kw: cache}
        )
        return out.last_hidden_state

"""The benchmark model: ms-marco-MiniLM-L-6-v2's architecture, built offline from the bundled backbone.

ms-marco-MiniLM-L-6-v2 is a 6-layer, 384-wide BERT with a one-label classification head: exactly the
backbone of all-MiniLM-L6-v2 plus a head. Loading the bundled backbone into
BertForSequenceClassification with a fresh (seeded) head gives a model with the real model's cost;
its scores are not meaningful rankings, which no throughput figure depends on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models.bundled import bundled_model_dir

MAX_LENGTH = 512  # ms-marco-MiniLM-L-6-v2 reads up to 512 tokens
TINY_MAX_LENGTH = 128


def build_minilm_cross_encoder(directory: Path, seed: int = 0) -> Path:
    """Save the benchmark cross-encoder under ``directory`` (reused if already there) and return its path."""
    out = directory / "minilm-l6-cross-encoder"
    if (out / "config.json").is_file():
        return out
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    backbone = bundled_model_dir()
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights were newly initialized": the head, on purpose
    try:
        model = BertForSequenceClassification.from_pretrained(str(backbone), num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(str(backbone))
    tokenizer.model_max_length = MAX_LENGTH
    raw = directory / "minilm-l6-hf"
    model.save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    # Saved through sentence-transformers with raw logits, as the ms-marco models are.
    CrossEncoder(str(raw), activation_fn=torch.nn.Identity(), device="cpu").save_pretrained(str(out))
    return out


def build_truncated_bi_encoder(directory: Path, layers: int = 3) -> Path:
    """The bundled all-MiniLM-L6-v2 cut to its first ``layers`` layers, saved under ``directory`` (reused if
    there): a second, weaker model with scores on a scale of its own, for comparing models offline."""
    out = directory / f"all-MiniLM-L{layers}-cut"
    if (out / "config.json").is_file():
        return out
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    bert: Any = model[0].auto_model
    bert.encoder.layer = bert.encoder.layer[:layers]
    bert.config.num_hidden_layers = layers
    model.save_pretrained(str(out))
    return out


def flops_per_pair(tokens: int, layers: int = 6, hidden: int = 384, intermediate: int = 1536) -> float:
    # Defaults: ms-marco-MiniLM-L-6-v2 (and all-MiniLM-L6-v2).
    """Forward FLOPs of one BERT pass over ``tokens`` tokens (2 per multiply-add).

    Per layer: Q, K, V and output projections (4 h^2 per token), the feed-forward pair (2 h i per
    token), and attention scores plus their weighted sum (2 s h per token each).
    """
    per_token = layers * (2 * (4 * hidden * hidden + 2 * hidden * intermediate) + 2 * 2 * tokens * hidden)
    return float(per_token * tokens)


def fit_head_to_bi_encoder(model_dir: Path, pairs: list[tuple[str, str]]) -> float:
    """Fit the fresh head by least squares to the bundled bi-encoder's cosine scores on ``pairs``.

    A random head scores every pair about the same, so any rounding reorders its rankings and says
    nothing about how a trained reranker would fare in lower precision. Fitted to a trained model's
    judgement, the head ranks meaningfully while the model's cost stays exactly that of ms-marco-MiniLM-L-6-v2.
    Returns the Spearman correlation of the fitted scores with the targets.
    """
    import numpy as np
    import torch
    from scipy.stats import spearmanr
    from sentence_transformers import CrossEncoder, SentenceTransformer

    encoder = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    queries = encoder.encode([q for q, _ in pairs], normalize_embeddings=True, batch_size=32)
    documents = encoder.encode([d for _, d in pairs], normalize_embeddings=True, batch_size=32)
    targets = 10.0 * np.einsum("ij,ij->i", queries, documents)

    cross = CrossEncoder(str(model_dir), device="cpu")
    hf = cross.model
    pooled = []
    with torch.inference_mode():
        for start in range(0, len(pairs), 16):
            chunk = pairs[start : start + 16]
            features = cross.tokenizer(
                [q for q, _ in chunk], [d for _, d in chunk], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
            )
            pooled.append(hf.bert(**features).pooler_output.numpy())
    design = np.concatenate(pooled).astype(np.float64)
    design = np.hstack([design, np.ones((len(design), 1))])
    # Ridge, not plain least squares: with about as many pairs as features an exact fit has huge,
    # cancelling weights that turn any rounding (bf16, int8) into reordered rankings.
    ridge = 1e-2 * np.trace(design.T @ design) / design.shape[1]
    solution = np.linalg.solve(design.T @ design + ridge * np.eye(design.shape[1]), design.T @ targets)
    with torch.no_grad():
        hf.classifier.weight.copy_(torch.from_numpy(solution[:-1][None, :].astype(np.float32)))
        hf.classifier.bias.copy_(torch.tensor([solution[-1]], dtype=torch.float32))
    cross.save_pretrained(str(model_dir))
    return float(spearmanr(design @ solution, targets).statistic)


def build_tiny_cross_encoder(directory: Path, seed: int = 0, activation: str = "identity") -> Path:
    """Save a 2-layer BERT cross-encoder (one output label) to ``directory`` and return it: for tests and
    the benchmark's smoke run, where only the code path matters, not the cost.

    ``activation`` is what the model is saved with: "identity" like the ms-marco models (raw logits),
    or "sigmoid", sentence-transformers' default for a one-label model.
    """
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir(verify=False)))
    tokenizer.model_max_length = TINY_MAX_LENGTH
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,  # type: ignore[call-arg]  # a PretrainedConfig keyword
    )
    torch.manual_seed(seed)
    raw = directory / "hf"
    BertForSequenceClassification(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    act = torch.nn.Identity() if activation == "identity" else torch.nn.Sigmoid()
    model = CrossEncoder(str(raw), activation_fn=act, device="cpu")
    # Scale up the random head so that scores spread out and rankings are not ties of near-zero values.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.out_features == 1:
                module.weight.mul_(50.0)
    out = directory / "cross-encoder"
    model.save_pretrained(str(out))
    return out


def build_bert_base_cross_encoder(directory: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A BERT-base-shaped cross-encoder (12 layers x 768, the cost of bge-reranker-base) with random
    weights and the tokenizer saved in ``tokenizer_dir``: for speed figures only, its scores mean nothing."""
    out = directory / "bert-base-cross-encoder"
    if (out / "config.json").is_file():
        return out
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tokenizer.model_max_length = MAX_LENGTH
    config = BertConfig(vocab_size=tokenizer.vocab_size, num_labels=1)  # type: ignore[call-arg]  # BERT-base defaults
    torch.manual_seed(seed)
    raw = directory / "bert-base-hf"
    BertForSequenceClassification(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    CrossEncoder(str(raw), activation_fn=torch.nn.Identity(), device="cpu").save_pretrained(str(out))
    return out


# A Qwen3-Reranker-style template: the instruction as the system message (a default when there is none),
# the query and the document as messages of their own roles, the answer read after the assistant's prefix.
QWEN3_RERANKER_TEMPLATE = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n<Instruct>: '
    '{{ messages | selectattr("role", "eq", "system") | map(attribute="content") | first '
    '| default("Given a web search query, retrieve relevant passages that answer the query") }}\n'
    '<Query>: {{ messages | selectattr("role", "eq", "query") | map(attribute="content") | first }}\n'
    '<Document>: {{ messages | selectattr("role", "eq", "document") | map(attribute="content") | first }}<|im_end|>\n'
    "<|im_start|>assistant\n<think>\n\n</think>\n\n"
)
# A bge-reranker-v2-gemma-style template: query and passage first, the instruction after them, one
# "Yes" token read (no "No").
GEMMA_RERANKER_TEMPLATE = (
    '<bos>A: {{ messages | selectattr("role", "eq", "query") | map(attribute="content") | first }}\n'
    'B: {{ messages | selectattr("role", "eq", "document") | map(attribute="content") | first }}\n'
    '{{ messages | selectattr("role", "eq", "system") | map(attribute="content") | first | default("Given a query A and a '
    "passage B, determine whether the passage contains an answer to the query by providing a prediction of either 'Yes' or 'No'.\") }}"
)
_DECODER_WORDS = (
    "yes no Yes No the a of is and to in capital city planet red mars venus earth query document passage relevant answer "
    "search web retrieve given judge whether meets requirements based instruct provided note can only be prediction "
    "determine contains providing either which what how river mountain ocean science history music water light"
).split()


def _decoder_tokenizer(template: str, specials: list[str], max_length: int, vocab: int) -> object:
    """A byte-level BPE tokenizer of ``vocab`` tokens trained here (no download) on the client's English
    text and a few words, with ``template`` as its chat template and "yes"/"no"/"Yes"/"No" single tokens,
    as in the real rerankers' vocabularies."""
    from importlib import resources

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = _DECODER_WORDS
    corpus = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 20
    corpus += ["yes", "no", "Yes", "No"] * 200 + [template] * 20
    corpus += resources.files("rerank_client").joinpath("data/english.txt").read_text(encoding="utf-8").splitlines()
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # type: ignore[assignment]
    tokenizer.decoder = decoders.ByteLevel()  # type: ignore[assignment]
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # type: ignore[call-arg]
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=specials[0], eos_token=specials[-1], model_max_length=max_length)
    fast.chat_template = template
    return fast


def build_tiny_decoder_reranker(
    directory: Path,
    family: str = "qwen3",
    seed: int = 0,
    max_length: int = 192,
    layers: int = 2,
    hidden: int = 32,
    prompts: dict[str, str] | None = None,
    vocab: int = 1000,
) -> Path:
    """Save a decoder reranker with random weights under ``directory`` and return its path, laid out as the
    hub's are: a causal language model, its tokenizer and chat template, and sentence-transformers'
    ``LogitScore`` module (true/false tokens). ``family``: ``qwen3`` (Qwen3-Reranker: yes minus no, the
    instruction as the system message) or ``gemma`` (bge-reranker-v2-gemma: "Yes" alone, the instruction
    after the pair, a BOS token). ``prompts`` are saved with the model (the first is its default). The
    benchmark's decoder has MiniLM's compute (6 layers x 384, feed-forward 4x) and a 4,000-token vocabulary."""
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder.modules import LogitScore
    from sentence_transformers.base.modules import Transformer

    out = directory / f"{family}-reranker"
    if family == "qwen3":
        from transformers import Qwen3Config as Config, Qwen3ForCausalLM as Model

        tokenizer: Any = _decoder_tokenizer(QWEN3_RERANKER_TEMPLATE, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], max_length, vocab)
        true, false, kv_heads = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no"), 2
    elif family == "gemma":
        from transformers import GemmaConfig as Config, GemmaForCausalLM as Model  # type: ignore[assignment]

        tokenizer = _decoder_tokenizer(GEMMA_RERANKER_TEMPLATE, ["<pad>", "<bos>", "<eos>"], max_length, vocab)
        true, false, kv_heads = tokenizer.convert_tokens_to_ids("Yes"), None, 1
    else:
        raise ValueError(f"family {family!r}: qwen3 or gemma")
    config = Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=(4 if hidden >= 256 else 2) * hidden, num_hidden_layers=layers, num_attention_heads=max(4, hidden // 64),
        num_key_value_heads=kv_heads, head_dim=hidden // max(4, hidden // 64), max_position_embeddings=4 * max_length, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, architectures=[Model.__name__],
    )
    torch.manual_seed(seed)
    model = Model(config)
    with torch.no_grad():  # spread the random scores so that rankings are not ties of near-zero values
        model.get_output_embeddings().weight[[t for t in (true, false) if t is not None]] *= 40.0
    raw = directory / f"{family}-hf"
    model.save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    modules = [Transformer(str(raw), transformer_task="text-generation"), LogitScore(true_token_id=true, false_token_id=false)]
    default = next(iter(prompts)) if prompts else None
    cross = CrossEncoder(modules=modules, device="cpu", activation_fn=torch.nn.Identity(), prompts=prompts, default_prompt_name=default)
    cross.save_pretrained(str(out))
    return out


def build_sequence_classification_conversion(causal: Path, directory: Path) -> Path:
    """The sequence-classification conversion of the Qwen3 decoder reranker at ``causal``, made as the hub's
    ``*-seq-cls`` checkpoints are: a one-label ``score`` layer holding the "yes" row of the head minus the
    "no" row, so its output is the causal model's ``logit(yes) - logit(no)``."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    source = CrossEncoder(str(causal), device="cpu")
    score = source[1]
    lm = Qwen3ForCausalLM.from_pretrained(str(causal))
    config = lm.config
    config.num_labels = 1
    config.architectures = ["Qwen3ForSequenceClassification"]
    converted = Qwen3ForSequenceClassification(config)
    converted.model.load_state_dict(lm.model.state_dict())
    with torch.no_grad():
        head = lm.get_output_embeddings().weight
        converted.score.weight.copy_((head[score.true_token_id] - head[score.false_token_id])[None, :])
    out = directory / "qwen3-reranker-seq-cls"
    converted.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(causal)).save_pretrained(out)
    return out

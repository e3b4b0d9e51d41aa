"""Turning ``--model NAME=SOURCE`` into a loaded Scorer, with one clear error when that is impossible."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import ModelInfo, ModelKind, Scorer
from .bundled import BUNDLED_NAME, BundledModelError, bundled_calibration, bundled_model_dir, is_bundled
from .calibration import Calibration, CalibrationError, calibration_for, fingerprint
from .decoder import DecoderNetwork, PrefixReuse, ScoreSpec, is_decoder_config, score_head
from .device import Precision, quantize_linear_int8, resolve_backend, resolve_device, resolve_precision, split_devices
from .fit import DoesNotFit, check_fits, free_bytes, weight_bytes, weights_in
from .network import Network
from .simulated import is_simulated

log = logging.getLogger(__name__)

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
_KIND_PREFIXES = {f"{kind.value}:": kind for kind in ModelKind}


class ModelLoadError(RuntimeError):
    """A model cannot be served; the message says why and what to do about it.

    ``reason`` is the why alone, for callers that name their own fix (``rerank compare --local``).
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


@dataclass(frozen=True)
class ModelSpec:
    """One ``--model`` argument: the name requests use, where to load it from, and (optionally) its kind;
    for a decoder reranker, the tokens its score reads (``--score-tokens``) and when it computes a
    request's shared prefix once (``--prefix-reuse``); the calibration its CALIBRATED scores use
    (``--calibration``)."""

    name: str
    source: str
    kind: ModelKind | None = None  # None: detect from the model's files
    score: ScoreSpec | None = None  # None: from the model's files (its LogitScore module or score layer)
    prefix_reuse: PrefixReuse = PrefixReuse.AUTO
    calibration: str | None = None  # a file from rerank calibrate (None: one in the model's directory, if any)


def parse_model_arg(value: str) -> ModelSpec:
    """Parse ``NAME=SOURCE``, ``SOURCE`` (named after itself) and an optional ``KIND:`` before SOURCE.

    >>> parse_model_arg("mini=bi-encoder:/models/mini")
    ModelSpec(name='mini', source='/models/mini', kind=<ModelKind.BI_ENCODER: 'bi-encoder'>)
    """
    name, sep, source = value.partition("=")
    if not sep:
        name, source = "", value
    kind = None
    for prefix, prefixed_kind in _KIND_PREFIXES.items():
        if source.startswith(prefix):
            kind, source = prefixed_kind, source[len(prefix) :]
    name, source = name.strip(), source.strip()
    if not source:
        raise ValueError(f"--model {value!r}: give NAME=SOURCE, where SOURCE is a hub id or a local directory")
    if not name:
        name = BUNDLED_NAME if is_bundled(source) else source.rstrip("/")
    return ModelSpec(name=name, source=source, kind=kind)


def resolve_source(source: str) -> Path:
    """A local directory holding the model: the bundled one, a path, or a hub id from cache or download.

    A hub id that is neither cached nor reachable fails at once: the hub client's own retries would
    otherwise hold start-up for about a minute before failing anyway.
    """
    if is_bundled(source):
        try:
            return bundled_model_dir()
        except BundledModelError as exc:
            raise ModelLoadError(str(exc)) from exc
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{source} is a file; give the model's directory (the one with config.json)")
        return path
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise ModelLoadError(f"no such model directory: {source}")
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(huggingface_hub.snapshot_download(source, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except Exception as exc:  # a malformed id, a broken cache
        raise ModelLoadError(f"cannot look up {source!r} in the Hugging Face cache: {exc}") from exc
    fix = (
        f"download it where the hub is reachable (hf download {source} --local-dir DIR) and serve that "
        f"directory: --model NAME=DIR; or serve the bundled model: --model {BUNDLED_NAME}"
    )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        why = f"{source} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
        raise ModelLoadError(f"{why}: {fix}", why)
    try:
        huggingface_hub.HfApi().model_info(source, timeout=10)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        why = f"{source} is not cached and the Hugging Face Hub gave: {reason}"
        raise ModelLoadError(f"{why}. To fix: {fix}", why) from exc
    log.info("downloading %s from the Hugging Face Hub", source)
    return Path(huggingface_hub.snapshot_download(source))


def detect_kind(directory: Path) -> ModelKind:
    """A sequence-classification head makes a cross-encoder; a sentence-transformers pooling stack a bi-encoder."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{directory} has no config.json; it is not a Hugging Face model directory")
    architectures = json.loads(config_path.read_text()).get("architectures") or []
    # A causal language model is a decoder reranker (it scores the answer "yes" at a pair's last token).
    if any(a.endswith(("ForSequenceClassification", "ForCausalLM")) for a in architectures):
        return ModelKind.CROSS_ENCODER
    if (directory / "modules.json").is_file():
        return ModelKind.BI_ENCODER
    raise ModelLoadError(
        f"cannot tell whether {directory} is a cross-encoder or a bi-encoder (architectures: {architectures}); "
        "say so with --model NAME=cross-encoder:SOURCE or NAME=bi-encoder:SOURCE"
    )


def load_scorer(
    spec: ModelSpec, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False, backend: str = "torch"
) -> Scorer:
    """Load ``spec`` onto ``device`` in ``dtype``, run by ``backend`` (``auto``: see :func:`resolve_backend`);
    every failure becomes one :class:`ModelLoadError`."""
    try:
        resolved_device = resolve_device(device, backend)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from exc
    directory = resolve_source(spec.source)
    kind = spec.kind or detect_kind(directory)
    checkpoint = fingerprint(directory)
    calibration = _calibration(spec, directory, checkpoint)
    if is_simulated(resolved_device):
        return _simulated(spec, kind, directory, resolved_device, trust_remote_code, checkpoint, calibration)
    config_path = directory / "config.json"
    decoder = kind is ModelKind.CROSS_ENCODER and config_path.is_file() and is_decoder_config(json.loads(config_path.read_text()))
    backend = resolve_backend(backend, resolved_device, kind is ModelKind.CROSS_ENCODER and not decoder)
    try:
        precision = resolve_precision(dtype, resolved_device, backend)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from exc
    try:
        check_fits(spec.source, weights_in(directory, precision), free_bytes(resolved_device), resolved_device, precision.name)
    except DoesNotFit as exc:
        raise ModelLoadError(str(exc)) from exc
    if backend != "torch" and kind is not ModelKind.CROSS_ENCODER:
        raise ModelLoadError(f"--backend {backend} serves cross-encoders; serve the {kind.value} {spec.name} with --backend torch")
    common: dict[str, Any] = {
        "device": resolved_device,
        "trust_remote_code": trust_remote_code,
        "local_files_only": True,
        "model_kwargs": {"dtype": precision.dtype},
    }
    try:
        if kind is ModelKind.CROSS_ENCODER:
            from sentence_transformers import CrossEncoder

            from .cross_encoder import CrossEncoderScorer

            model = CrossEncoder(str(directory), **common)
            _quantize(model, precision)
            info = _info(spec, kind, model, resolved_device, precision, backend, checkpoint)
            if decoder:
                if backend != "torch":
                    raise ModelLoadError(f"{spec.source} is a decoder reranker; --backend {backend} serves encoder cross-encoders: serve it with --backend torch")
                return CrossEncoderScorer(model, info, decoder_network(model, spec, resolved_device), calibration)
            if spec.score is not None:
                raise ModelLoadError(f"--score-tokens {spec.name}=...: {spec.source} is not a decoder reranker; its score is its classifier's output")
            if backend == "torch":
                return CrossEncoderScorer(model, info, calibration=calibration)
            from .exported import load_exported

            from .encoding import TextEncoder

            encoder = TextEncoder(model.tokenizer, info.max_seq_length)
            network = load_exported(backend, directory, model[0].model, model.tokenizer, encoder, precision.name)
            # The runtime holds its own copy of the weights; torch's would only double the memory.
            model[0].model.to("meta")
            return CrossEncoderScorer(model, info, network, calibration)
        from sentence_transformers import SentenceTransformer

        from .bi_encoder import BiEncoderScorer

        model = SentenceTransformer(str(directory), **common)
        _quantize(model, precision)
        return BiEncoderScorer(model, _info(spec, kind, model, resolved_device, precision, backend, checkpoint), calibration)
    except ModelLoadError:
        raise
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load {spec.source} as a {kind.value}: {first_line}") from exc


def decoder_network(model: Any, spec: ModelSpec, device: str) -> Network:
    """A decoder reranker's network: its base model read at each pair's last token through its score head."""
    try:
        head = score_head(model, spec.score)
    except ValueError as exc:
        raise ModelLoadError(f"cannot serve {spec.source} as a reranker: {exc}") from exc
    pad_id = model.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = model.tokenizer.eos_token_id or 0
    return DecoderNetwork(model[0].model.base_model, head, device, int(pad_id), spec.prefix_reuse)


def load_scorers(
    spec: ModelSpec, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False, backend: str = "torch"
) -> list[Scorer]:
    """``spec`` loaded once on each device of ``device`` (``cuda:0,cuda:1``: see :func:`split_devices`):
    the lanes one queue feeds. The first reports every device in its :class:`ModelInfo`."""
    devices = split_devices(device)
    real = [d for d in devices if not is_simulated(d)]
    if len(set(real)) != len(real) or (len(devices) > 1 and any(d.split(":")[0] in ("cpu", "auto") for d in real)):
        raise ModelLoadError(
            f"--device {device}: give each device once (cuda:0,cuda:1); several CPU engines in one server would fight over "
            "the same cores: run one server per share of the cores instead (taskset -c 0-7 rerank-server ...)"
        )
    scorers = [load_scorer(spec, one, dtype, trust_remote_code, backend) for one in devices]
    if len(scorers) > 1:
        first = scorers[0]
        first.info = dataclasses.replace(first.info, device=",".join(s.info.device for s in scorers))
    return scorers


def _calibration(spec: ModelSpec, directory: Path, checkpoint: str) -> Calibration | None:
    """The calibration ``spec`` is served with (see :func:`calibration_for`; the bundled model's ships with
    the server), or a :class:`ModelLoadError` naming why it cannot be."""
    given = spec.calibration
    if given is None and is_bundled(spec.source) and bundled_calibration().is_file():
        given = str(bundled_calibration())
    try:
        return calibration_for(given, directory, spec.name, spec.source, checkpoint)
    except CalibrationError as exc:
        flag = f"--calibration {spec.name}={spec.calibration}: " if spec.calibration else ""
        raise ModelLoadError(f"{flag}{exc}") from exc


def _simulated(
    spec: ModelSpec, kind: ModelKind, directory: Path, device: str, trust_remote_code: bool, checkpoint: str, calibration: Calibration | None
) -> Scorer:
    """``spec``'s tokenizer and limits with a simulated network (see ``simulated``): the real request path,
    modelled device time."""
    if kind is not ModelKind.CROSS_ENCODER:
        raise ModelLoadError(f"--device {device} simulates cross-encoders; serve the {kind.value} {spec.name} on a real device")
    from sentence_transformers import CrossEncoder

    from .cross_encoder import CrossEncoderScorer
    from .simulated import SimulatedNetwork, parse_profile

    try:
        model = CrossEncoder(str(directory), device="cpu", trust_remote_code=trust_remote_code, local_files_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load {spec.source} as a cross-encoder: {reason}") from exc
    info = ModelInfo(spec.name, kind, spec.source, int(model.max_seq_length or 512), device, "simulated", "simulated", fingerprint=checkpoint)
    network = SimulatedNetwork(parse_profile(device))
    model[0].model.to("meta")  # only its tokenizer and head's activation are used
    return CrossEncoderScorer(model, info, network, calibration)


def load_planner(spec: ModelSpec, info: ModelInfo, trust_remote_code: bool = False) -> Scorer:
    """``spec``'s tokenizer, limits and head, without its network: what a front-end process needs to
    tokenize and plan requests and to normalize their scores, while the engine process (whose ``info``
    this reports) runs the network. The weights are read once and dropped."""
    directory = resolve_source(spec.source)
    calibration = _calibration(spec, directory, info.fingerprint)
    try:
        if info.kind is ModelKind.CROSS_ENCODER:
            from sentence_transformers import CrossEncoder

            from .cross_encoder import CrossEncoderScorer

            model: Any = CrossEncoder(str(directory), device="cpu", trust_remote_code=trust_remote_code, local_files_only=True)
            model[0].model.to("meta")
            return CrossEncoderScorer(model, info, _NoNetwork(), calibration)
        from sentence_transformers import SentenceTransformer

        from .bi_encoder import BiEncoderScorer

        model = SentenceTransformer(str(directory), device="cpu", trust_remote_code=trust_remote_code, local_files_only=True)
        model.to("meta")
        scorer = BiEncoderScorer(model, dataclasses.replace(info, device="cpu"), calibration)
        scorer.info = info
        return scorer
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load {spec.source} as a {info.kind.value}: {first_line}") from exc


class _NoNetwork:
    """The network of a planner: never run (the engine process runs the real one)."""

    def collate(self, batch: Any) -> Any:
        """Not run in a front end."""
        raise RuntimeError("a front-end process plans requests only; the engine process runs the network")

    forward = fetch = collate


def _quantize(model: Any, precision: Precision) -> None:
    if precision.quantize_int8:
        model.eval()
        quantize_linear_int8(model)


def _info(spec: ModelSpec, kind: ModelKind, model: Any, device: str, precision: Precision, backend: str, checkpoint: str) -> ModelInfo:
    max_len = getattr(model, "max_seq_length", None) or 512
    return ModelInfo(
        name=spec.name,
        kind=kind,
        source=spec.source,
        max_seq_length=int(max_len),
        device=str(getattr(model, "device", device)),
        dtype=precision.name,
        backend=backend,
        memory_bytes=weight_bytes(model),
        fingerprint=checkpoint,
    )


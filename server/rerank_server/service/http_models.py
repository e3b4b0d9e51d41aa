"""The HTTP API's requests and answers, declared once: the server validates bodies with these models and
the OpenAPI document (``GET /openapi.json``, ``/docs``) is generated from them, so the two cannot drift.

Validation is strict (a number sent as a string is refused, as the hand-written checks refused it), and a
refusal is one line that names the field: ``documents[1] must be a string or an object``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import invalid

M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    """A request body: strict types; fields this server does not know are ignored, as the APIs it
    stands in for ignore them."""

    model_config = ConfigDict(strict=True, extra="ignore")


Priority = Literal["interactive", "bulk"] | int


_INSTRUCTION = (
    "an extension: what the documents are judged for, for an instruction-following reranker (Qwen3-Reranker and kin); "
    "empty: the model's default; a model that takes none refuses it"
)


Scale = Literal["raw", "sigmoid", "calibrated"]
_SCALE = (
    "an extension: which scores to report: raw (the model's own), sigmoid, or calibrated (P(relevant) under the "
    "model's calibration, comparable across models; a model without one refuses it)"
)


class CohereRerankRequest(_Body):
    """Cohere's rerank (v1 and v2)."""

    query: str = Field(description="the search query")
    documents: list[str | dict[str, Any]] = Field(description='strings, {"text": ...}, or objects ranked on their rank_fields')
    model: str = Field("", description="a served model's name or alias (with one model served, any name)")
    top_n: int | None = Field(None, ge=1, description="return only the best top_n (default: all)")
    return_documents: bool = Field(False, description="echo each document in its result")
    max_tokens_per_doc: int | None = Field(None, ge=1, description="cut each document to this many tokens first")
    instruction: str = Field("", description=_INSTRUCTION)
    rank_fields: list[str] | None = Field(None, min_length=1, description="fields of object documents to rank on, in order (default: text)")
    priority: Priority | None = Field(None, description='"interactive" (default) or "bulk"; or a number, 0 the most urgent')
    normalization: Scale = Field("sigmoid", description=_SCALE + "; relevance_score is the sigmoid unless this says otherwise")
    min_score: float | None = Field(
        None, allow_inf_nan=False, description="an extension: drop results whose relevance_score is below this; meta.dropped_documents counts them"
    )


class CohereResult(BaseModel):
    """One ranked document."""

    index: int
    relevance_score: float = Field(description="the sigmoid of the model's score, in (0, 1) (or as the request's normalization says)")
    document: dict[str, Any] | None = None


class CohereRerankResponse(BaseModel):
    """Cohere's rerank answer, best first."""

    id: str
    results: list[CohereResult]
    meta: dict[str, Any]


class TeiRerankRequest(_Body):
    """Hugging Face text-embeddings-inference's rerank."""

    query: str
    texts: list[str]
    raw_scores: bool = Field(False, description="the model's raw scores instead of their sigmoid")
    normalization: Scale | None = Field(None, description=_SCALE + "; when given, raw_scores is not read")
    instruction: str = Field("", description=_INSTRUCTION)
    return_text: bool = False
    truncate: bool = Field(False, description="score the beginning of texts longer than the model reads (false: refuse them, as TEI does)")
    top_n: int | None = Field(None, ge=1)
    model: str = ""
    priority: Priority | None = None


class TeiResult(BaseModel):
    """One ranked text."""

    index: int
    score: float
    text: str | None = None


class InfinityResult(BaseModel):
    """One ranked document, as Infinity answers: the document is its text."""

    index: int
    relevance_score: float
    document: str | None = None


class InfinityRerankResponse(BaseModel):
    """Infinity's rerank answer (to Cohere's body at /rerank)."""

    object: Literal["rerank"]
    results: list[InfinityResult]
    model: str
    usage: dict[str, int]
    id: str
    created: int


class NimText(_Body):
    """A text of NVIDIA NIM's ranking API."""

    text: str


class NimRankingRequest(_Body):
    """NVIDIA NIM's ranking."""

    query: NimText
    passages: list[NimText]
    model: str = ""
    truncate: Literal["NONE", "END"] = Field("NONE", description="NONE refuses passages longer than the model reads; END cuts them")
    instruction: str = Field("", description=_INSTRUCTION)
    priority: Priority | None = None


class NimRanking(BaseModel):
    """One ranked passage; ``logit`` is the model's raw score."""

    index: int
    logit: float


class NimRankingResponse(BaseModel):
    """NVIDIA NIM's ranking answer, best first."""

    rankings: list[NimRanking]


class OpenAIEmbeddingRequest(_Body):
    """OpenAI's embeddings (what LangChain's OpenAIEmbeddings, LiteLLM and LlamaIndex call); texts longer
    than the model reads are cut, as Infinity's OpenAI route does."""

    input: str | list[str]
    model: str = Field("", description="a served bi-encoder (default: the first one served)")
    encoding_format: Literal["float"] = "float"
    priority: Priority | None = None


class OpenAIEmbedding(BaseModel):
    """One text's embedding, unit length."""

    object: Literal["embedding"]
    index: int
    embedding: list[float]


class OpenAIEmbeddingResponse(BaseModel):
    """OpenAI's embeddings answer, in input order."""

    object: Literal["list"]
    data: list[OpenAIEmbedding]
    model: str
    usage: dict[str, int]


class TeiEmbedRequest(_Body):
    """TEI's embed; embeddings are unit length (``normalize`` false is refused: the server has no others)."""

    inputs: str | list[str]
    normalize: bool = True
    truncate: bool = Field(False, description="embed the beginning of texts longer than the model reads (false: refuse them, as TEI does)")
    model: str = ""
    priority: Priority | None = None


class ErrorResponse(BaseModel):
    """An error: one line that names the field or the fix."""

    message: str
    error: dict[str, str] | None = None


def parse(model: type[M], body: Any) -> M:
    """``body`` as ``model``, or INVALID_ARGUMENT with one line naming the first field at fault."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid(_first_error(exc)) from None


_KINDS = {
    "missing": "is missing",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "int_type": "must be a number",
    "bool_type": "must be true or false",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
}


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ""
    for part in error["loc"]:
        if isinstance(part, int):
            where += f"[{part}]"
        elif part in ("str", "dict[str,any]", "int", "literal['interactive','bulk']") or "[" in str(part):
            break  # the branch of a union pydantic tried: the field itself is what the caller named
        else:
            where += f".{part}" if where else str(part)
    kind = error["type"]
    if kind in _KINDS:
        what = _KINDS[kind]
    elif kind == "greater_than_equal":
        what = f"must be at least {error['ctx']['ge']}"
    elif kind == "too_short":
        what = "must not be empty"
    elif kind == "literal_error":
        what = f"must be {error['ctx']['expected']}"
    else:
        what = str(error["msg"]).lower()
    if where.startswith("documents[") and kind in ("string_type", "dict_type"):
        what = "must be a string or an object"
    return f"{where or 'the body'} {what}"


ROUTES: dict[str, tuple[str, Any, Any]] = {  # path: (summary, request type, answer type)
    "/v1/rerank": ("Cohere rerank (v1)", CohereRerankRequest, CohereRerankResponse),
    "/v2/rerank": ("Cohere rerank (v2)", CohereRerankRequest, CohereRerankResponse),
    "/rerank": ("TEI rerank ({query, texts}); Infinity's with Cohere's body", TeiRerankRequest | CohereRerankRequest, list[TeiResult] | InfinityRerankResponse),
    "/v1/ranking": ("NVIDIA NIM ranking", NimRankingRequest, NimRankingResponse),
    "/v1/embeddings": ("OpenAI embeddings (a served bi-encoder)", OpenAIEmbeddingRequest, OpenAIEmbeddingResponse),
    "/embed": ("TEI embed (a served bi-encoder)", TeiEmbedRequest, list[list[float]]),
}


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the POST endpoints, from the models above."""
    from pydantic import TypeAdapter

    schemas: dict[str, Any] = {}

    def ref(model: Any) -> dict[str, Any]:
        schema = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        if "title" in schema and schema.get("type") == "object":
            schemas[schema["title"]] = schema
            return {"$ref": f"#/components/schemas/{schema['title']}"}
        return schema

    error = ref(ErrorResponse)
    paths: dict[str, Any] = {}
    for path, (summary, request, response) in ROUTES.items():
        paths[path] = {
            "post": {
                "summary": summary,
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref(request)}}},
                "responses": {
                    "200": {"description": "ranked, best first", "content": {"application/json": {"schema": ref(response)}}},
                    **{
                        code: {"description": why, "content": {"application/json": {"schema": error}}}
                        for code, why in (
                            ("400", "invalid request"),
                            ("401", "missing or wrong bearer token"),
                            ("404", "unknown model"),
                            ("413", "body over --max-message-bytes"),
                            ("415", "not application/json"),
                            ("429", "overloaded: retry after Retry-After seconds"),
                            ("503", "loading or shutting down"),
                            ("504", "deadline passed"),
                        )
                    },
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "rerank-grpc HTTP API", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }

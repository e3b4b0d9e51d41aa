"""The client libraries people already run, driven unchanged against the HTTP API (LiteLLM's cohere/,
infinity/ and huggingface/ providers; LangChain's CohereRerank and NVIDIARerank), with the model names
they have built in. The Cohere SDK is driven in test_http_api.py."""

from __future__ import annotations

import os
from typing import Any

import pytest

from rerank_client import RerankClient
from tests.server.service.test_http_api import DOCS, QUERY
from tests.server_harness import ServerThread


@pytest.fixture(scope="module")
def served(cross_scorer: Any) -> Any:
    # LiteLLM fetches its model price list from the internet at import unless told to use its own copy.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    with ServerThread([cross_scorer], http_port=0) as running:
        with RerankClient(running.target) as client:
            running.expected = client.rerank(QUERY, DOCS).indices  # type: ignore[attr-defined]
        yield running


@pytest.mark.parametrize("provider", ["cohere", "infinity", "huggingface"])
def test_litellm_rerank_through_each_provider(served: Any, provider: str) -> None:
    import litellm

    # A hosted model's name, as LiteLLM users write it: with one model served, any name reaches it.
    response = litellm.rerank(
        model=f"{provider}/rerank-english-v3.0", query=QUERY, documents=DOCS, top_n=2, api_base=served.http_url, api_key="unused"
    )
    assert [r["index"] for r in response.results] == served.expected[:2]


def test_langchain_cohere_rerank(served: Any) -> None:
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    reranker = CohereRerank(model="rerank-v3.5", base_url=served.http_url, cohere_api_key="unused", top_n=2)
    ranked = reranker.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
    assert [d.page_content for d in ranked] == [DOCS[i] for i in served.expected[:2]]


def test_langchain_nvidia_rerank(served: Any) -> None:
    from langchain_core.documents import Document
    from langchain_nvidia_ai_endpoints import NVIDIARerank

    reranker = NVIDIARerank(base_url=f"{served.http_url}/v1", model="nvidia/nv-rerankqa-mistral-4b-v3", top_n=2)
    ranked = reranker.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
    assert [d.page_content for d in ranked] == [DOCS[i] for i in served.expected[:2]]

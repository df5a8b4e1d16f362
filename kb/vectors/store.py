"""The only module that imports chromadb: one place creates the client, the collection and the
llama-index ``ChromaVectorStore`` over it.

Embedded ``PersistentClient`` under ``<data>/chroma`` by default, ``HttpClient`` when
``KB_CHROMA_HOST`` is set. Collections are created with no embedding function (Chroma's default one
would download a model) and every write passes its vectors. The collection records which embedder
built it; opening it with another one raises ``EmbedderMismatch``.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import chromadb
from chromadb.config import Settings as ChromaSettings
from llama_index.core.schema import TextNode
from llama_index.vector_stores.chroma import ChromaVectorStore

from kb.errors import EmbedderMismatch, StoreUnavailable
from kb.files import write_problem
from kb.settings import DEFAULT_CHUNK_CONTEXT, Settings

log = logging.getLogger(__name__)


@dataclass
class VectorHit:
    """A raw vector-store hit."""

    chunk_id: str
    text: str
    metadata: dict[str, Any]
    score: float


_READONLY_COPIES: dict[Path, Path] = {}


def _embedded_path(folder: Path) -> Path:
    """The folder to open embedded Chroma on: itself, or a private copy when it is on a read-only volume.

    Embedded Chroma writes to its SQLite file even to read, so a read-only index (a snapshot mounted
    read-only, a shared volume) is copied once per process to a temporary folder removed at exit."""
    if folder in _READONLY_COPIES:
        return _READONLY_COPIES[folder]
    if not folder.is_dir() or write_problem(folder) is None:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    copy = Path(tempfile.mkdtemp(prefix="kb-chroma-ro-")) / "chroma"
    shutil.copytree(folder, copy)
    atexit.register(shutil.rmtree, copy.parent, True)
    log.warning("the store folder %s is read-only; querying a private copy in %s (nothing is written back)",
                folder, copy)
    _READONLY_COPIES[folder] = copy
    return copy


def make_client(settings: Settings) -> Any:
    """Create the Chroma client the settings ask for (telemetry off)."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    try:
        if settings.chroma_host:
            client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                         settings=chroma_settings)
            client.heartbeat()
            return client
        return chromadb.PersistentClient(path=str(_embedded_path(settings.chroma_dir)), settings=chroma_settings)
    except Exception as exc:  # chromadb raises many types for "cannot connect"
        where = (f"the Chroma server at {settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host
                 else f"the embedded store in {settings.chroma_dir}")
        hint = ("start it (`chroma run --path data/chroma --port "
                f"{settings.chroma_port}`) or unset KB_CHROMA_HOST" if settings.chroma_host
                else "check that the folder is writable and not used by an incompatible Chroma version")
        raise StoreUnavailable(f"cannot open {where}: {exc}; {hint}") from exc


@contextmanager
def _writing(settings: Settings, what: str) -> Iterator[None]:
    """A failed write (full disk, server gone) is StoreUnavailable: the run stops instead of failing every item."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        where = f"the Chroma server at {settings.chroma_host}" if settings.chroma_host else str(settings.chroma_dir)
        raise StoreUnavailable(f"cannot {what} the vector store ({where}): {exc}; free disk space or restore the "
                               "store, then run the same command again") from exc


class Store:
    """The chunk collection: writes through llama-index, reads and metadata updates on the collection."""

    def __init__(self, settings: Settings, embedder_id: str | None = None, dim: int | None = None,
                 create: bool = True) -> None:
        self.settings = settings
        self.client = make_client(settings)
        try:
            if create:
                meta: dict[str, Any] = {"hnsw:space": "cosine"}
                if embedder_id:
                    meta.update({"embedder": embedder_id, "dim": int(dim or 0)})
                self.collection = self.client.get_or_create_collection(
                    settings.collection, metadata=meta, embedding_function=None)
            else:
                self.collection = self.client.get_collection(settings.collection, embedding_function=None)
        except Exception as exc:
            if not create:
                raise StoreUnavailable(
                    f"the index has no collection {settings.collection!r} yet; build it with `python -m ingest run`") from exc
            raise StoreUnavailable(f"cannot open collection {settings.collection!r}: {exc}") from exc
        if embedder_id:
            self.check_embedder(embedder_id)
        self.vector_store = ChromaVectorStore(chroma_collection=self.collection)

    @property
    def embedder_id(self) -> str | None:
        """The embedder that built this index, as recorded on the collection."""
        return (self.collection.metadata or {}).get("embedder")

    def check_embedder(self, embedder_id: str) -> None:
        """Refuse to mix vectors of two models in one index."""
        built = self.embedder_id
        if built and built != embedder_id:
            if built.startswith("remote:"):
                back = f"set KB_EMBED_URL to a server of {built[len('remote:'):]!r} and KB_EMBED_MODEL to that name"
            elif embedder_id.startswith("remote:"):
                back = "unset KB_EMBED_URL (and set KB_EMBED_MODEL back)"
            else:
                back = "set KB_EMBED_MODEL back"
            raise EmbedderMismatch(
                f"the index {self.settings.collection!r} was built with {built!r} but the configured embedder is "
                f"{embedder_id!r}; {back}, or use another KB_COLLECTION / KB_DATA_DIR and re-ingest")
        if not built:
            meta = dict(self.collection.metadata or {})
            meta.pop("hnsw:space", None)
            meta["embedder"] = embedder_id
            self.collection.modify(metadata=meta)

    @property
    def chunk_context(self) -> str:
        """What was embedded with each chunk (``KB_CHUNK_CONTEXT``); an index from before it was recorded: none."""
        return str((self.collection.metadata or {}).get("chunk_context") or "none")

    def check_chunk_context(self, wanted: str | None) -> str:
        """The kind of text embedded with each chunk of this index (ingest only).

        A new (still empty) index records ``wanted`` (unset: ``DEFAULT_CHUNK_CONTEXT``); an index from before
        the kind was recorded is ``none``. A ``wanted`` kind other than the index's is refused: the index would
        mix vectors of two kinds."""
        meta = dict(self.collection.metadata or {})
        built = meta.get("chunk_context")
        empty = self.count() == 0   # nothing embedded yet (a new index, or a first run that failed): any kind
        if built is None or (empty and wanted and wanted != built):
            built = (wanted or DEFAULT_CHUNK_CONTEXT) if empty else "none"
            meta.pop("hnsw:space", None)   # chroma refuses to modify it; the distance stays the collection's
            meta["chunk_context"] = built
            self.collection.modify(metadata=meta)
        if wanted and built != wanted:
            raise EmbedderMismatch(
                f"the index {self.settings.collection!r} was built with KB_CHUNK_CONTEXT={built} but it is set to "
                f"{wanted}; unset it (or set KB_CHUNK_CONTEXT={built}), or use another KB_COLLECTION / KB_DATA_DIR "
                "and re-ingest")
        return str(built)

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids the collection already holds."""
        found: set[str] = set()
        for i in range(0, len(ids), 1000):
            found.update(self.collection.get(ids=list(ids[i:i + 1000]), include=[])["ids"])
        return found

    def add_nodes(self, nodes: Sequence[TextNode]) -> int:
        """Add the nodes that are not stored yet (idempotent); returns how many were added."""
        have = self.existing_ids([n.node_id for n in nodes])
        todo = [n for n in nodes if n.node_id not in have]
        for i in range(0, len(todo), 2000):
            with _writing(self.settings, "add vectors to"):
                self.vector_store.add(list(todo[i:i + 2000]))
        return len(todo)

    def update_metadata(self, ids: Sequence[str], changes: dict[str, Any]) -> None:
        """Set some metadata keys on existing chunks (e.g. a superseded version's ``valid_to``)."""
        for i in range(0, len(ids), 1000):
            part = list(ids[i:i + 1000])
            got = self.collection.get(ids=part, include=["metadatas"])
            metas = [{**(m or {}), **changes} for m in got["metadatas"]]
            if got["ids"]:
                with _writing(self.settings, "update metadata in"):
                    self.collection.update(ids=got["ids"], metadatas=metas)

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for i in range(0, len(ids), 1000):
            with _writing(self.settings, "delete vectors from"):
                self.collection.delete(ids=ids[i:i + 1000])

    def count(self) -> int:
        return int(self.collection.count())

    def all_ids(self) -> list[str]:
        out: list[str] = []
        offset = 0
        while True:
            got = self.collection.get(include=[], limit=5000, offset=offset)["ids"]
            out.extend(got)
            if len(got) < 5000:
                return out
            offset += len(got)

    def query(self, embedding: Sequence[float] | np.ndarray, top_k: int, where: dict | None = None,
              payload: bool = True) -> list[VectorHit]:
        """Nearest chunks by cosine similarity (score in [-1, 1]); ``payload=False`` skips text and metadata.

        An embedded store that another process (an ingest) writes to can fail a filtered query with
        "Error finding id" (chroma-core/chroma#3792: its metadata is read live, its vectors are cached):
        the client is re-opened and the query retried; if writes keep racing, the query runs without
        ``where`` and the filter is applied here, so a reader never fails because of a writer.
        """
        vec = [list(map(float, embedding))]
        for attempt in range(len(QUERY_RETRY_DELAYS) + 1):
            try:
                return self._query(vec, top_k, where, payload)
            except Exception as exc:
                if self.settings.chroma_host or attempt == len(QUERY_RETRY_DELAYS):
                    if not where or self.settings.chroma_host:
                        raise StoreUnavailable(f"the vector store failed a query: {exc}") from exc
                    break
                log.info("vector query failed (%s); re-opening the store and retrying", exc)
                time.sleep(QUERY_RETRY_DELAYS[attempt])
                self.refresh()
        wide = self._query(vec, max(top_k * 10, 200), None)
        return [h for h in wide if metadata_matches(h.metadata, where or {})][:top_k]

    def _query(self, vec: list[list[float]], top_k: int, where: dict | None, payload: bool = True) -> list[VectorHit]:
        include = ["documents", "metadatas", "distances"] if payload else ["distances"]
        res = self.collection.query(query_embeddings=vec, n_results=top_k, where=where or None, include=include)
        ids, dists = res["ids"][0], res["distances"][0]
        docs = res["documents"][0] if payload else [""] * len(ids)
        metas = res["metadatas"][0] if payload else [{}] * len(ids)
        return [VectorHit(i, d or "", m or {}, 1.0 - float(dist)) for i, d, m, dist in zip(ids, docs, metas, dists)]

    def refresh(self) -> None:
        """Re-open an embedded store so that queries see vectors another process added since it was opened.

        Chroma shares one in-process "System" per persist directory, and that System caches the vector
        segments (chroma-core/chroma#3792): ``get`` and ``count`` see another process's writes, ``query``
        does not until the cache is rebuilt. Dropping this directory's System from the shared cache makes
        the next client load the segments from disk again. The old System is not stopped: queries already
        running on it finish, and it is freed with its last reference. No-op for a Chroma server.
        """
        if self.settings.chroma_host:
            return
        from chromadb.api.shared_system_client import SharedSystemClient

        with _REFRESH_LOCK:
            ident = getattr(self.client, "_identifier", None)
            if ident is not None:
                SharedSystemClient._identifier_to_system.pop(ident, None)
                SharedSystemClient._identifier_to_refcount.pop(ident, None)
            client = make_client(self.settings)
            try:
                collection = client.get_collection(self.settings.collection, embedding_function=None)
            except Exception as exc:
                raise StoreUnavailable(f"cannot re-open collection {self.settings.collection!r}: {exc}") from exc
            self.client, self.collection = client, collection
            self.vector_store = ChromaVectorStore(chroma_collection=collection)


#: Pauses before re-opening the store and retrying a failed query (seconds).
QUERY_RETRY_DELAYS = (0.0, 0.1, 0.3)
_REFRESH_LOCK = threading.Lock()
_OPS = {"$eq": lambda a, b: a == b, "$ne": lambda a, b: a != b, "$gt": lambda a, b: a is not None and a > b,
        "$gte": lambda a, b: a is not None and a >= b, "$lt": lambda a, b: a is not None and a < b,
        "$lte": lambda a, b: a is not None and a <= b, "$in": lambda a, b: a in b, "$nin": lambda a, b: a not in b}


def metadata_matches(meta: dict[str, Any], where: dict[str, Any]) -> bool:
    """Evaluate a Chroma ``where`` clause ($and, $or, $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin) on metadata."""
    for key, cond in where.items():
        if key == "$and":
            if not all(metadata_matches(meta, c) for c in cond):
                return False
        elif key == "$or":
            if not any(metadata_matches(meta, c) for c in cond):
                return False
        elif isinstance(cond, dict):
            if not all(_OPS[op](meta.get(key), value) for op, value in cond.items()):
                return False
        elif meta.get(key) != cond:
            return False
    return True


def open_store(settings: Settings, embedder_id: str | None = None, dim: int | None = None,
               create: bool = True) -> Store:
    """Open (creating when asked) the chunk collection."""
    return Store(settings, embedder_id, dim, create=create)

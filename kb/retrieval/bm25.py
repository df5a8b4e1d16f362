"""BM25 over the chunk catalogue (bm25s), tokenised per chunk language, cached on disk per index state.

The cached index is memory-mapped (``bm25s`` ``mmap=True``): app processes on one machine share its
pages through the OS page cache instead of each holding a private copy, and loading it reads no more
than the vocabulary up front.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kb.retrieval.catalogue import ChunkCatalogue
from kb.text.tokenize import stemmer_backend, tokenize

log = logging.getLogger(__name__)


#: Bump when tokenisation or what goes into the BM25 documents changes (invalidates cached indexes).
BM25_FORMAT = 2


class BM25Index:
    """bm25s over the catalogue, tokenised per chunk language, cached on disk."""

    def __init__(self, catalog: ChunkCatalogue, cache_dir: Path | None, generation: int) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets itself to DEBUG and would print

        self.catalog = catalog
        ids = list(catalog.rows.column("chunk_id"))
        digest = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()[:16]
        self.key = f"g{generation}-f{BM25_FORMAT}-{stemmer_backend()}-{digest}"
        path = cache_dir / self.key if cache_dir else None
        self.model: Any = None
        if path and (path / "ids.json").exists():
            try:
                if json.loads((path / "ids.json").read_text(encoding="utf-8")) == ids:
                    self.model = bm25s.BM25.load(str(path), load_corpus=False, mmap=True, show_progress=False)
            except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt
                log.warning("BM25 cache %s unreadable (%s); rebuilding", path, exc)
                self.model = None
        if self.model is None:
            self.model = self._build(catalog)
            if path and ids and self._save(path, ids):
                try:   # the saved copy, memory-mapped, replaces the private one just built
                    self.model = bm25s.BM25.load(str(path), load_corpus=False, mmap=True, show_progress=False)
                except Exception as exc:  # noqa: BLE001 - keep the built index
                    log.warning("BM25 cache %s could not be memory-mapped (%s)", path, exc)
        self.n_docs = len(ids)
        self._rows: tuple[np.ndarray, np.ndarray] | None = None
        # An index with no indexed chunk yet (the first ingest is running) has no BM25 matrix at all.
        vocab = getattr(self.model, "vocab_dict", None) or {} if self.n_docs else {}
        indptr = np.asarray(self.model.scores["indptr"]) if vocab else np.zeros(0)
        df = np.diff(indptr) if len(indptr) > 1 else np.zeros(0)
        self._idf = {tok: float(np.log(1 + (self.n_docs - df[i] + 0.5) / (df[i] + 0.5)))
                     for tok, i in vocab.items() if i < len(df)}

    @staticmethod
    def _build(catalog: ChunkCatalogue) -> Any:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets itself to DEBUG and would print

        # The document title goes with every chunk: "the OpenAI Services Agreement" names the document,
        # rarely the passage.
        # Tokens are stored once each (a million chunks hold ~100M tokens but a few hundred thousand distinct).
        col = catalog.rows.column
        shared: dict[str, str] = {}
        titles: dict[tuple[str, str], list[str]] = {}
        corpus = []
        for title, doc_lang, text, lang in zip(col("title"), col("doc_language"), catalog.iter_texts(), col("language")):
            key = (title or "", doc_lang or "en")
            if key not in titles:
                titles[key] = [shared.setdefault(t, t) for t in tokenize(*key)]
            corpus.append((titles[key] + [shared.setdefault(t, t) for t in tokenize(text, lang or "en")]) or [""])
        model = bm25s.BM25(k1=1.2, b=0.75)
        if corpus:
            model.index(corpus, show_progress=False)
        return model

    def _save(self, path: Path, ids: list[str]) -> bool:
        """Write the index to ``path`` (atomically, by rename); False when the data dir is not writable."""
        try:
            # pid, host and thread: replicas on several machines may share this data directory
            tmp = path.with_name(f"{path.name}.tmp-{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self.model.save(str(tmp), show_progress=False)
            (tmp / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
            tmp.rename(path)
            for old in path.parent.iterdir():  # keep only the current index
                if old.name != path.name and not old.name.startswith(path.name + ".tmp"):
                    shutil.rmtree(old, ignore_errors=True)   # a process still mapping it keeps its pages
            return True
        except OSError as exc:  # a read-only data dir still answers, just without the cache
            log.warning("cannot cache the BM25 index in %s: %s", path, exc)
            return False

    def row_tokens(self, row: int) -> frozenset[int]:
        """The distinct token ids of one catalogue row (from a row-major copy of the index, built once)."""
        if self._rows is None:
            from scipy.sparse import csc_matrix

            sc = self.model.scores
            shape = (self.n_docs, len(sc["indptr"]) - 1)
            csr = csc_matrix((np.ones_like(sc["data"], dtype=np.int8), sc["indices"], sc["indptr"]),
                             shape=shape).tocsr()
            self._rows = (csr.indptr, csr.indices)
        indptr, indices = self._rows
        return frozenset(indices[indptr[row]:indptr[row + 1]].tolist())

    def idf(self, token: str) -> float:
        """Inverse document frequency of a token (0 when the index never saw it)."""
        return self._idf.get(token, 0.0)

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every catalogue row for these query tokens."""
        if not self.n_docs:
            return np.zeros(0, dtype=np.float32)
        known = [t for t in tokens if t in self.model.vocab_dict]
        if not known:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self.model.get_scores(known), dtype=np.float32)

"""Every indexed chunk with the metadata filters need, as parallel numpy columns; filters as masks and
as Chroma ``where`` clauses, applied identically on both sides of hybrid retrieval.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence, overload

import numpy as np

from kb.models import Passage
from kb.registry import Registry
from kb.retrieval.filters import Filters, split_values
from kb.times import FOREVER, date_ts, parse_when


class CatalogueRows(Sequence[dict[str, Any]]):
    """The catalogue's rows stored as columns: ``rows[i]`` is a dict made on demand.

    A million chunks as a million dicts cost several GiB; as columns, with the strings every chunk of a
    document repeats (ids, title, URL, publisher...) stored once, a few hundred bytes a chunk."""

    def __init__(self, rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._cols: dict[str, list[Any]] = {k: [] for k in self.columns}
        shared: dict[str, str] = {}
        unique = {"chunk_id"}
        appenders = [(k, self._cols[k].append, k not in unique) for k in self.columns]
        for r in rows:
            for k, append, intern in appenders:
                v = r[k]
                append(shared.setdefault(v, v) if intern and isinstance(v, str) else v)

    def __len__(self) -> int:
        return len(self._cols[self.columns[0]]) if self.columns else 0

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return {k: col[i] for k, col in self._cols.items()}

    def column(self, name: str) -> list[Any]:
        """One column, in row order (the stored list itself: do not modify it)."""
        return self._cols[name]


#: How many chunk texts a catalogue keeps after reading them (the passages of recent searches).
TEXT_CACHE = 20000


#: How many chunk texts one registry query reads while streaming all of them (the BM25 build).
TEXT_BATCH = 5000


class ChunkCatalogue:
    """Every indexed chunk with the metadata filters need, as parallel columns.

    Chunk texts are not kept: they are read from the registry when a passage is made (``texts``, a
    lookup by chunk id) and the most recent ones cached, so an app process at a million chunks does
    not hold every text. Rows given with a ``text`` and no lookup (tests, small tools) keep theirs.
    """

    COLUMNS = ("chunk_id", "version_id", "doc_id", "start", "end", "language", "valid_from", "valid_to",
               "published", "retrieved", "doc_language", "title", "source", "url", "publisher", "doctype")

    def __init__(self, rows: Iterable[dict[str, Any]],
                 texts: Callable[[Sequence[str]], dict[str, str]] | None = None) -> None:
        if texts is None:
            rows = list(rows)
            held = {r["chunk_id"]: r["text"] for r in rows}
            texts = lambda ids: {i: held[i] for i in ids if i in held}  # noqa: E731
        self._texts = texts
        self._text_cache: dict[str, str] = {}
        self.rows = CatalogueRows(rows, self.COLUMNS)
        col = self.rows.column
        self.index = {c: i for i, c in enumerate(col("chunk_id"))}
        self.valid_from = np.array(col("valid_from"), dtype=np.int64)
        self.valid_to = np.array(col("valid_to"), dtype=np.int64)
        self.published_ts = np.array([date_ts(p) for p in col("published")], dtype=np.int64)

        def codes(key: str) -> tuple[np.ndarray, list[str]]:
            values = sorted({(v or "") for v in col(key)})
            pos = {v: i for i, v in enumerate(values)}
            return np.array([pos[v or ""] for v in col(key)], dtype=np.int32), values

        self.url_group = self._url_groups(col("url"), col("doc_id"))
        self.language, self.languages = codes("language")
        self.doc_language, self.doc_languages = codes("doc_language")
        self.doctype, self.doctypes = codes("doctype")
        self.publisher, self.publishers = codes("publisher")
        self.source, self.sources = codes("source")

    def __len__(self) -> int:
        return len(self.rows)

    @staticmethod
    def _url_groups(urls: Sequence[str | None], doc_ids: Sequence[str]) -> np.ndarray:
        """Group id of rows whose *different* documents share one URL (-1 when the URL has one document).

        Two files with the same front-matter URL are two versions of one page that ingest kept as two
        documents; retrieval treats them as versions (the latest published one by default).
        """
        docs_by_url: dict[str, set[str]] = {}
        for url, doc in zip(urls, doc_ids):
            if url:
                docs_by_url.setdefault(url.rstrip("/"), set()).add(doc)
        ids = {u: i for i, u in enumerate(sorted(u for u, d in docs_by_url.items() if len(d) > 1))}
        return np.array([ids.get((u or "").rstrip("/"), -1) for u in urls], dtype=np.int64)

    def _latest_of_groups(self, m: np.ndarray, at: int | None) -> np.ndarray:
        """Within each URL group keep only the document published last (at or before ``at`` when given)."""
        if not (self.url_group >= 0).any():
            return m
        out = m.copy()
        for g in np.unique(self.url_group[self.url_group >= 0]):
            rows = np.where((self.url_group == g) & m)[0]
            dated = [i for i in rows if self.published_ts[i] and (at is None or self.published_ts[i] <= at)]
            if not dated:
                continue
            best = max(self.published_ts[i] for i in dated)
            doc_ids = self.rows.column("doc_id")
            keep_docs = {doc_ids[i] for i in dated if self.published_ts[i] == best}
            for i in rows:
                if doc_ids[i] not in keep_docs and (self.published_ts[i] or at is None):
                    out[i] = False
        return out

    @classmethod
    def load(cls, registry: Registry) -> ChunkCatalogue:
        return cls(registry.catalogue_rows(), registry.chunk_texts)

    def texts_of(self, rows: Sequence[int]) -> list[str]:
        """The texts of these rows (read from the registry once, then from a bounded cache)."""
        ids = [self.rows.column("chunk_id")[i] for i in rows]
        cache = self._text_cache   # shared by the app's sessions: read into a local dict first
        got = {c: t for c in ids if (t := cache.get(c)) is not None}
        missing = [c for c in dict.fromkeys(ids) if c not in got]
        if missing:
            fetched = self._texts(missing)
            got.update(fetched)
            if len(cache) + len(fetched) > TEXT_CACHE:
                cache.clear()
            cache.update(fetched)
        return [got.get(c, "") for c in ids]

    def iter_texts(self) -> Iterator[str]:
        """Every row's text in row order, read in batches and not cached (building BM25)."""
        ids = self.rows.column("chunk_id")
        for i in range(0, len(ids), TEXT_BATCH):
            part = ids[i:i + TEXT_BATCH]
            got = self._texts(part)
            yield from (got.get(c, "") for c in part)

    def passages(self, rows: Sequence[int], scores: Sequence[float] | None = None) -> list[Passage]:
        """Passages for these rows (their texts read in one lookup)."""
        texts = self.texts_of(rows)
        return [self._passage(i, t, scores[k] if scores is not None else 0.0) for k, (i, t) in enumerate(zip(rows, texts))]

    def passage(self, i: int, score: float = 0.0) -> Passage:
        return self._passage(i, self.texts_of([i])[0], score)

    def _passage(self, i: int, text: str, score: float) -> Passage:
        r = self.rows[i]
        return Passage(chunk_id=r["chunk_id"], doc_id=r["doc_id"], version_id=r["version_id"], text=text,
                       start=int(r["start"]), end=int(r["end"]), url=r["url"] or "", title=r["title"] or "",
                       publisher=r["publisher"] or "", doctype=r["doctype"] or "other",
                       language=r["language"] or "und", published=r["published"] or "",
                       retrieved=r["retrieved"] or "", source=r["source"] or "", score=float(score))

    # -- filters ----------------------------------------------------------------------------
    def mask(self, f: Filters) -> np.ndarray:
        """Which chunks the filters allow (the versions valid at ``as_of``, or the current ones); cached."""
        cache = self.__dict__.setdefault("_masks", {})
        got = cache.get(f)
        if got is None:
            got = self._mask(f)
            if len(cache) > 64:
                cache.clear()
            cache[f] = got
        return got

    def _mask(self, f: Filters) -> np.ndarray:
        if f.as_of:
            at = parse_when(f.as_of)
            m = self._latest_of_groups((self.valid_from <= at) & (self.valid_to > at), at)
        else:
            m = self._latest_of_groups(self.valid_to == FOREVER, None)
        if f.language:
            langs = split_values(f.language)
            m &= (np.isin(self.language, [i for i, v in enumerate(self.languages) if v in langs])
                  | np.isin(self.doc_language, [i for i, v in enumerate(self.doc_languages) if v in langs]))
        if f.doctype:
            m &= np.isin(self.doctype, [i for i, v in enumerate(self.doctypes) if v in split_values(f.doctype)])
        if f.source:
            m &= np.isin(self.source, [i for i, v in enumerate(self.sources) if v in split_values(f.source)])
        if f.publisher:
            m &= np.isin(self.publisher, [self.publishers.index(v) for v in self.matching_publishers(f.publisher)])
        if f.since:
            m &= self.published_ts >= date_ts(f.since)
        if f.until:
            m &= (self.published_ts > 0) & (self.published_ts <= date_ts(f.until, end_of_day=True))
        return m

    def matching_publishers(self, wanted: str) -> list[str]:
        """Publishers whose name contains any of the comma-separated names asked for (case-insensitive)."""
        needles = [w.casefold() for w in split_values(wanted)]
        return [p for p in self.publishers if p and any(n in p.casefold() for n in needles)]

    def where(self, f: Filters) -> dict[str, Any]:
        """The same filters as a Chroma ``where`` clause over the chunk metadata."""
        clauses: list[dict[str, Any]] = []
        if f.as_of:
            at = parse_when(f.as_of)
            clauses += [{"valid_from": {"$lte": at}}, {"valid_to": {"$gt": at}}]
        else:
            clauses.append({"valid_to": FOREVER})
        if f.language:
            langs = sorted(split_values(f.language))
            clauses.append({"$or": [{"language": {"$in": langs}}, {"doc_language": {"$in": langs}}]})
        if f.doctype:
            clauses.append({"doctype": {"$in": sorted(split_values(f.doctype))}})
        if f.source:
            clauses.append({"source": {"$in": sorted(split_values(f.source))}})
        if f.publisher:
            clauses.append({"publisher": {"$in": self.matching_publishers(f.publisher) or ["\u0000none"]}})
        if f.since:
            clauses.append({"published_ts": {"$gte": date_ts(f.since)}})
        if f.until:
            clauses += [{"published_ts": {"$gt": 0}},
                        {"published_ts": {"$lte": date_ts(f.until, end_of_day=True)}}]
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

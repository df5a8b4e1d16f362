"""Extractive answers: verbatim sentences of the retrieved passages, each followed by its citation.

Pipeline for one question (no LLM):

1. detect the question's language (the answer's connecting words use it; quotes stay in theirs);
2. hybrid retrieval with filters (``kb.retrieval``);
3. candidate sentences from the best passages, cut from the *stored version text* (a sentence that a
   chunk boundary split is completed from the neighbouring text, so quotes may cross chunk bounds);
4. each sentence is scored by IDF-weighted overlap with the question, dense similarity with the
   question (same multilingual embedder, cached by text hash) and the rank of its passage;
5. abstention when the evidence is weak or does not carry the kind of fact asked (a number, a date);
6. quotes are composed with templates, citations verified against the stored text (failures are
   dropped; no verified citation means abstention).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kb.answer import phrases
from kb.answer.abstention import Thresholds, abstain_reason
from kb.answer.citations import make_citations, verify_citations
from kb.answer.quotes import choose_quotes
from kb.answer.scoring import ANSWER_PASSAGES, select_sentences, widen_quotes
from kb.errors import NoIndex
from kb.files import write_problem
from kb.models import Answer, Citation
from kb.registry import open_registry, registry_exists
from kb.retrieval.filters import Filters
from kb.retrieval.retriever import Retrieval, Retriever
from kb.settings import Settings
from kb.text.language import detect_language, detect_question_language
from kb.text.tokenize import tokenize_query

log = logging.getLogger(__name__)


# -- engine ---------------------------------------------------------------------------------------
#: Threads the query path embeds with. One: on a busy 2-core machine a 2-thread model waits for its
#: slower thread at every step; measured with other work running (load ~5), answer p95 was 1.1 s with
#: one thread and 4-6 s with two. Ingest (large batches, its own process) keeps ``KB_EMBED_THREADS``.
QUERY_THREADS = 1


class Engine:
    """Everything an answer needs, loaded once: embedder, store, registry and retriever."""

    def __init__(self, settings: Settings, thresholds: Thresholds | None = None,
                 query_threads: int | None = QUERY_THREADS) -> None:
        from kb.vectors.embedding import make_embedder
        from kb.vectors.store import open_store

        self.settings = settings
        self.thresholds = thresholds or Thresholds()
        self.load_seconds = 0.0  # set by whoever times the loading (the app shows it)
        if not registry_exists(settings):
            where = "its PostgreSQL registry has no tables" if settings.registry_url else "no registry.sqlite"
            raise NoIndex(f"no index in {settings.data_dir} ({where}); build it with "
                          "`python -m ingest run` or point KB_DATA_DIR at an existing index")
        self.registry = open_registry(settings, readonly=bool(settings.registry_url)
                                      or not _writable(settings.registry_path))
        threads = min(settings.embed_threads, query_threads) if query_threads else settings.embed_threads
        self.embedder = make_embedder(settings.with_(embed_threads=threads))
        self.store = open_store(settings, self.embedder.model_id, self.embedder.dim, create=False)
        self.retriever = Retriever(settings, self.registry, self.store, self.embedder)
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.registry.close()

    def warm_up(self) -> None:
        """Load the BM25 index, the tokenisers and the model so the first question is fast."""
        self.retriever.load()
        tokenize_query("warm up 预热 準備 तैयारी", "en")
        detect_language("warming up the language detector")
        # One search builds what the first question would otherwise pay for: the unfiltered chunk mask and
        # BM25's row-major token copy (seconds at a million chunks).
        self.retriever.search("warm up", "en", Filters(), top_k=1)

    def version_text(self, version_id: str) -> str:
        """The stored (hash-checked) text of a version, cached for the last few versions."""
        with self._lock:
            if version_id in self._texts:
                self._texts.move_to_end(version_id)
                return self._texts[version_id]
        text = self.registry.version_text(version_id)
        with self._lock:
            self._texts[version_id] = text
            while len(self._texts) > 64:
                self._texts.popitem(last=False)
        return text

    def ask(self, question: str, filters: Filters | None = None, top_k: int = 8) -> Answer:
        """Answer one question from the index (or abstain), with verified citations."""
        return answer_question(question, self, filters=filters or Filters(), top_k=top_k)


#: The answer while the index holds no indexed passage yet (the first ingest is still running).
NOTHING_INDEXED = ("Nothing is indexed yet: the first ingest has not finished. Wait for it, or run "
                   "`python -m ingest run`, then ask again.")


@dataclass(frozen=True)
class Progress:
    """One step of answering, reported to an ``on_progress`` callback (the app shows them as they come)."""

    stage: str                       # "retrieved", then "answered"
    seconds: float                   # time the step took
    retrieval: Retrieval | None = None


ProgressCallback = Callable[[Progress], None]


def _writable(path: Path) -> bool:
    """Whether the registry's folder takes writes (a real probe: root passes ``os.access`` on a read-only mount)."""
    return write_problem(path.parent) is None


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(settings: Settings) -> Engine:
    """One Engine per data dir and collection in this process."""
    key = f"{settings.data_dir.resolve()}|{settings.collection}|{settings.chroma_host}"
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = Engine(settings)
        return _ENGINES[key]


def question_language(question: str) -> str:
    """The question's language (``kb.text.language.detect_question_language``; English when nothing tells)."""
    return detect_question_language(question) or "en"


def retrieve_for_answer(question: str, engine: Engine, filters: Filters, top_k: int, qlang: str,
                        prefer_docs: frozenset[str] = frozenset()) -> Retrieval:
    """The retrieval an answer is built from (extractive or generated: the same passages)."""
    return engine.retriever.search(question, qlang, filters, top_k=max(top_k, ANSWER_PASSAGES),
                                   prefer_docs=prefer_docs)


def answer_question(question: str, engine: Engine, filters: Filters | None = None, top_k: int = 8,
                    language: str | None = None, on_progress: ProgressCallback | None = None,
                    retrieval: Retrieval | None = None, prefer_docs: frozenset[str] = frozenset()) -> Answer:
    """Retrieve (unless ``retrieval`` is given), select sentences, decide whether to abstain, compose and verify.

    ``on_progress`` is called after retrieval (with the ranked passages) and when the answer is done;
    ``prefer_docs`` (a follow-up's previously cited documents) win close retrieval calls.
    """
    filters = filters or Filters()
    report = on_progress or (lambda _p: None)
    t0 = time.perf_counter()
    question = (question or "").strip()
    qlang = language or question_language(question)
    alang = phrases.answer_language(qlang)
    phr = phrases.phrases(alang)
    ret = retrieval or retrieve_for_answer(question, engine, filters, top_k, qlang, prefer_docs)
    if retrieval is None:
        report(Progress("retrieved", time.perf_counter() - t0, ret))
    timings = dict(ret.timings)
    passages = ret.passages[:top_k]

    def finish(text: str, abstained: bool, cites: list[Citation], reason: str = "") -> Answer:
        timings["total"] = time.perf_counter() - t0
        ans = Answer(question=question, question_language=qlang, answer=text, answer_language=alang,
                     abstained=abstained, citations=cites, passages=passages, filters=filters.to_json(),
                     timings=timings, reason=reason)
        report(Progress("answered", timings["total"]))
        return ans

    if not ret.passages:
        if not len(engine.retriever.catalog):
            return finish(NOTHING_INDEXED, True, [], "nothing indexed yet")
        return finish(phr.empty, True, [], "no passage passes the filters")
    t = time.perf_counter()
    cands = select_sentences(question, qlang, ret, engine)
    timings["select"] = time.perf_counter() - t
    verdict = abstain_reason(question, ret, cands, engine.thresholds, qlang, engine.retriever.bm25.idf)
    if verdict:
        log.info("abstaining: %s", verdict)
        return finish(phr.abstain, True, [], verdict)
    chosen = widen_quotes(choose_quotes(cands), ret, engine)
    cites = make_citations(chosen, engine)
    t = time.perf_counter()
    cites, dropped = verify_citations(cites, engine.version_text)
    timings["verify"] = time.perf_counter() - t
    for c, why in dropped:
        log.warning("dropped citation %s of %s: %s", c.n, c.version_id, why)
    if not cites:
        return finish(phr.abstain, True, [], "no citation verified")
    for i, c in enumerate(cites, start=1):
        c.n = i
    text = phrases.compose(alang, [(c.quote, c.n) for c in cites])
    return finish(text, False, cites)

"""Extractive answers: verbatim sentences of the retrieved passages, each followed by its citation.

Pipeline for one question (no LLM):

1. detect the question's language (the answer's connecting words use it; quotes stay in theirs);
2. hybrid retrieval with filters (``kb.retrieve``);
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
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from kb import templates
from kb.cite import verify_citations
from kb.errors import StoreUnavailable
from kb.language import detect_language, detect_question_language, script_profile
from kb.models import Answer, Citation, Passage
from kb.registry import Registry
from kb.retrieve import Filters, Retrieval, Retriever
from kb.sentences import sentence_spans
from kb.settings import Settings
from kb.tokenize import tokenize, tokenize_query

log = logging.getLogger(__name__)

#: How many of the best passages sentences are taken from.
ANSWER_PASSAGES = 5
#: How many sentences (pre-ranked lexically) get a dense similarity.
DENSE_SENTENCES = 12
#: At most this many quotes in one answer; further quotes must score within this margin of the best one.
MAX_QUOTES = 3
FOLLOW_MARGIN = 0.08
#: Longest quote (characters); longer sentences are cut at clause punctuation.
MAX_QUOTE_CHARS = 360
MIN_QUOTE_LETTERS = 12
#: Characters of surrounding text kept with a candidate sentence (for checks such as "how many X").
CONTEXT_CHARS = 300
#: Sentence score weights: the sentence's own similarity, IDF-weighted word overlap, its passage's
#: similarity and rank, and a bonus when it carries the kind of fact asked (a number, a date).
#: Chosen on the dev + extra questions (share of answers quoting an expected keyword).
W_DENSE, W_LEX, W_PASSAGE, W_RANK, W_TYPE = 1.0, 0.35, 0.5, 0.05, 0.05
#: Bonus for a sentence in the question's script (a bilingual page offers both the original and its
#: translation: quote the one the reader reads).
W_SCRIPT = 0.03
#: Two quotes this similar say the same thing (syndicated paraphrase); across scripts in one version, a translation.
SAME_MEANING, TRANSLATION = 0.95, 0.88


@dataclass
class Thresholds:
    """Abstention thresholds, calibrated with ``python -m kb eval`` (see the report in the README)."""

    min_passage_dense: float = 0.83   # best passage cosine below this: off-topic
    min_sentence_dense: float = 0.80  # best sentence cosine below this: nothing says it
    check_answer_type: bool = True    # "how many", "when", "how much" need a number or a date
    unknown_term_dense: float = 0.89  # a question word the index never saw: abstain unless this similar


@dataclass
class Candidate:
    """A sentence that might answer: a verbatim span of a version's stored text."""

    passage: Passage
    rank: int
    start: int
    end: int
    text: str
    lex: float = 0.0
    dense: float = 0.0
    score: float = 0.0
    also: list[Passage] = field(default_factory=list)
    vector: np.ndarray | None = None
    context: str = ""  # the stored text around the sentence (a few hundred characters each side)


# -- sentences ----------------------------------------------------------------------------------
_CLAUSE = re.compile(r"[;；:：,，、]\s*|\s[-–—]\s")
_EDGE_JUNK = " \t\r\n*#>|=_-•·"
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


def candidate_spans(text: str, start: int, end: int, window: int = 1500,
                    max_chars: int = MAX_QUOTE_CHARS) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` that overlap ``[start, end)``, completed beyond it and trimmed of markup."""
    ws, we = max(0, start - window), min(len(text), end + window)
    out: list[tuple[int, int]] = []
    spans = attach_headings(text, merge_wrapped_lines(text, sentence_spans(text, ws, we)))
    for i, (s, e) in enumerate(spans):
        if e <= start or s >= end:
            continue
        if (i == 0 and ws > 0) or (i == len(spans) - 1 and we < len(text)):
            continue  # cut by the window, not by punctuation
        if _is_heading(text[s:e]):
            continue  # quoted with the sentence it introduces
        for ps, pe in _split_long_span(text, s, e, max_chars):
            ps, pe = _trim(text, ps, pe)
            if pe > ps and len(_LETTER.findall(text[ps:pe])) >= MIN_QUOTE_LETTERS:
                out.append((ps, pe))
    return out


_TERMINAL = tuple(".!?。！？।॥:;")


def merge_wrapped_lines(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Re-join sentences that a hard line wrap split (a single newline, no end punctuation, lower-case next)."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out:
            ps, pe = out[-1]
            gap = text[pe:s]
            nxt = text[s:s + 1]
            if ("\n" in gap and "\n\n" not in gap.replace(" ", "") and not text[ps:pe].rstrip().endswith(_TERMINAL)
                    and (nxt.islower() or nxt.isdigit() or nxt in "(\"'")):
                out[-1] = (ps, e)
                continue
        out.append((s, e))
    return out


_SECTION = re.compile(r"^[\W_]*(\(?[A-Za-z]?\d+(\.\d+)*[.)]?|[A-Z]\.\d+(\.\d+)*\.?|[IVX]+\.|\([a-z]\))(\s|$)")


_CONNECTORS = {"of", "and", "to", "the", "for", "in", "on", "a", "an", "or", "with", "by"}


def _is_heading(piece: str) -> bool:
    """A section number and/or a short Title Case title ("3.3.", "Restrictions.", "D.4. Use Restrictions.")."""
    piece = piece.strip(" *#_")
    if len(piece) > 40:
        return False
    if _SECTION.match(piece):
        return True
    words = piece.rstrip(".:").split()
    return 0 < len(words) <= 4 and piece.endswith((".", ":")) and all(
        w[:1].isupper() or w in _CONNECTORS for w in words)


def attach_headings(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Prefix a sentence with the section number and title just before it ("3.3. Restrictions. Customer ...").

    A question about *which section* says something needs the heading in the quote, and the chunker
    or the sentence splitter may have cut it off. The span stays a verbatim slice.
    """
    out: list[tuple[int, int]] = []
    for i, (s, e) in enumerate(spans):
        start = s
        j = i - 1
        while j >= 0 and i - j <= 2 and _is_heading(text[spans[j][0]:spans[j][1]]) \
                and "\n\n" not in text[spans[j][1]:start].replace(" ", "")[:4] and not _is_heading(text[s:e]):
            start = spans[j][0]
            j -= 1
        out.append((start, e))
    return out


def quality_penalty(sentence: str) -> float:
    """How much a sentence looks like a heading, a link or a fragment rather than a statement."""
    words = len(sentence.split())
    cjk = sum(1 for ch in sentence if "\u3040" <= ch <= "\u9fff")
    penalty = 0.0
    if words < 6 and cjk < 12:
        penalty += 0.06
    if not sentence.rstrip("*_)]\"'”’」』 ").endswith(_TERMINAL) and "\u3002" not in sentence[-3:]:
        penalty += 0.03
    if sentence.startswith("[") or "](" in sentence[:80] or sentence.isupper():
        penalty += 0.04
    return penalty


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s] in _EDGE_JUNK:
        s += 1
    while e > s and text[e - 1] in _EDGE_JUNK:
        e -= 1
    return s, e


def _split_long_span(text: str, s: int, e: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut a sentence longer than ``max_chars`` after clause punctuation (or spaces) into pieces."""
    pieces = []
    while e - s > max_chars:
        window = text[s:s + max_chars]
        cuts = [m.end() for m in _CLAUSE.finditer(window) if m.end() > max_chars // 3]
        if not cuts:
            cuts = [m.end() for m in re.finditer(r"\s+", window) if m.end() > max_chars // 3]
        cut = s + (cuts[-1] if cuts else max_chars)
        pieces.append((s, cut))
        s = cut
    pieces.append((s, e))
    return pieces


# -- answer types ---------------------------------------------------------------------------------
_AMOUNT_Q = re.compile(
    r"\bhow much\b|\bwhat (amount|sum)\b|"
    r"\b(price|prices|cost|costs|salary|revenue|revenues|valuation|worth|fine|fined|penalty|damages|paid|pay|"
    r"compensation|settlement)\b|"
    r"\bprecio|\bcuesta|\bcuesta|\bsalario|\bingresos|\bmulta\b|\bindemnizaci|\bpag[oó]\b|"
    r"\bprix\b|\bco[uû]te|\bsalaire|\bchiffre d.affaires|\bamende\b|\bindemnit|\bpay[ée]\b|"
    r"\bwie viel (geld|kostet)|\bwie hoch\b|\bpreis|\bkoste|\bgehalt|\bumsatz|\bstrafe\b|\bentsch[äa]digung|\bgezahlt|"
    r"\bpreço|\bcusta|\bsal[aá]rio|\breceita|\bindeniza|\bpag(ou|ar)\b|\bmulta\b|"
    r"कितना पैसा|कीमत|वेतन|जुर्माना|भुगतान|价格|价钱|工资|薪|收入|罚款|赔偿|多少钱|支付|"
    r"いくら|価格|値段|給料|年収|収益|売上|罰金|賠償|支払",
    re.IGNORECASE)
_MONEY = re.compile(
    r"[$€£¥₹]\s?\d|\d[\d,.]*\s?(dollars?|usd|eur|euros?|pounds?|rupees?|yuan|yen|million|billion|trillion|m\b|bn\b)|"
    r"\b(dollars?|euros?|usd)\b|美元|人民币|[0-9一二三四五六七八九十百千万亿]+\s?[元万亿]|ドル|円|रुपये|डॉलर",
    re.IGNORECASE)
_QUANTITY_Q = re.compile(
    r"\bhow (many|big|large|long)\b|\bwhat (number|percentage|share)\b|"
    r"\bcu[aá]nt[oa]s?\b|\bcombien\b|\bwie (viel|viele|gro(ß|ss))\b|\bquant[oa]s?\b|"
    r"कितन[ाीे]|多少|几个|幾つ|いくつ|何人|何個|どれくらい|どのくらい",
    re.IGNORECASE)
_DATE_Q = re.compile(
    r"\bwhen\b|\bwhat (date|day|year|month)\b|\bon which (date|day)\b|\bcu[aá]ndo\b|\bqu[eé] (fecha|d[ií]a)\b|"
    r"\bquand\b|\bquel(le)? (jour|date)\b|\bwann\b|\bwelche[mn]? (tag|datum|jahr)\b|\bquando\b|"
    r"\b(que|qual) (data|dia)\b|कब\b|किस (दिन|तारीख)|何时|什么时候|哪天|哪一?年|いつ|何年|何日",
    re.IGNORECASE)
# A quantity: a number with a unit, amount or noun after it, money, or a number word; not a year,
# a footnote marker, a section or docket number.
_NUMBER = re.compile(
    r"[$€£¥₹]\s?\d|\d[\d,.]*\s?(%|percent|per cent|million|billion|thousand|trillion|[a-zA-Z]{3,}|[\u4e00-\u9fff])|"
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|hundred|hundreds|"
    r"thousand|thousands|million|millions|billion|billions|dozen|dozens|few|several|"
    r"dos|tres|cuatro|cinco|cien|mil|millón|millones|deux|trois|quatre|cent|mille|zwei|drei|vier|"
    r"hundert|tausend|duas|três)\b|[一二三四五六七八九十百千万亿几][个名位人元美]|सौ|हज़ार|लाख|करोड़",
    re.IGNORECASE)
_NOT_QUANTITY = re.compile(
    r"\[\d+\]|(\b(No|Nos|Dkt|Document|Page|Case|Section|Exhibit|Ex|ECF|Rule|Article|Art)\.?:?\s*|§\s*)+#?[\d.:\-a-zA-Z]+|"
    r"#\d+|\b(19|20)\d\d\b|\b\d+(\.\d+)+\b|\d{1,2}/\d{1,2}/\d{2,4}",
    re.IGNORECASE)
_MONTHS = re.compile(
    r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d|\b\d{4}\b|\b(monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|yesterday|today|last (week|month|year|summer))\b|"
    r"年|月|日",
    re.IGNORECASE)


def asked_type(question: str) -> str | None:
    """``amount`` (money), ``quantity`` or ``date`` when the question asks for one, else None."""
    if _AMOUNT_Q.search(question):
        return "amount"
    if _QUANTITY_Q.search(question):
        return "quantity"
    if _DATE_Q.search(question):
        return "date"
    return None


def carries_type(text: str, kind: str | None) -> bool:
    """Whether a sentence can answer a question of that kind."""
    if kind == "amount":
        return bool(_MONEY.search(text))
    if kind == "quantity":
        return bool(_NUMBER.search(_NOT_QUANTITY.sub(" ", text)))
    if kind == "date":
        return bool(_MONTHS.search(text))
    return True


# -- engine ---------------------------------------------------------------------------------------
#: Threads the query path embeds with. One: on a busy 2-core machine a 2-thread model waits for its
#: slower thread at every step; measured with other work running (load ~5), answer p95 was 1.1 s with
#: one thread and 4-6 s with two. Ingest (large batches, its own process) keeps ``KB_EMBED_THREADS``.
QUERY_THREADS = 1


class Engine:
    """Everything an answer needs, loaded once: embedder, store, registry and retriever."""

    def __init__(self, settings: Settings, thresholds: Thresholds | None = None,
                 query_threads: int | None = QUERY_THREADS) -> None:
        from kb.embedding import make_embedder
        from kb.store import open_store

        self.settings = settings
        self.thresholds = thresholds or Thresholds()
        if not settings.registry_path.exists():
            raise StoreUnavailable(f"no index in {settings.data_dir} (no registry.sqlite); build it with "
                                   "`python -m ingest run` or point KB_DATA_DIR at an existing index")
        self.registry = Registry(settings.registry_path, readonly=not _writable(settings.registry_path))
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
        self.embedder.embed_query("warm up")

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


def _writable(path: Any) -> bool:
    import os

    return os.access(path if path.exists() else path.parent, os.W_OK)


KnowledgeBase = Engine

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
    """The question's language (``kb.language.detect_question_language``; English when nothing tells)."""
    return detect_question_language(question) or "en"


def answer_question(question: str, engine: Engine | Settings, filters: Filters | None = None,
                    top_k: int = 8, language: str | None = None) -> Answer:
    """Retrieve, select sentences, decide whether to abstain, compose and verify."""
    if isinstance(engine, Settings):
        engine = get_engine(engine)
    filters = filters or Filters()
    t0 = time.perf_counter()
    question = (question or "").strip()
    qlang = language or question_language(question)
    alang = templates.answer_language(qlang)
    phr = templates.phrases(alang)
    ret = engine.retriever.search(question, qlang, filters, top_k=max(top_k, ANSWER_PASSAGES))
    timings = dict(ret.timings)
    passages = ret.passages[:top_k]

    def finish(text: str, abstained: bool, cites: list[Citation], reason: str = "") -> Answer:
        timings["total"] = time.perf_counter() - t0
        ans = Answer(question=question, question_language=qlang, answer=text, answer_language=alang,
                     abstained=abstained, citations=cites, passages=passages, filters=filters.to_json(),
                     timings=timings)
        ans.reason = reason  # type: ignore[attr-defined]  # why it abstained, for eval and logs
        return ans

    if not ret.passages:
        return finish(phr.empty, True, [], "no passage passes the filters")
    t = time.perf_counter()
    cands = select_sentences(question, qlang, ret, engine)
    timings["select"] = time.perf_counter() - t
    verdict = abstain_reason(question, ret, cands, engine.thresholds, qlang, engine.retriever.bm25.idf)
    if verdict:
        log.info("abstaining: %s", verdict)
        return finish(phr.abstain, True, [], verdict)
    chosen = choose_quotes(cands)
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
    text = templates.compose(alang, [(c.quote, c.n) for c in cites])
    return finish(text, False, cites)


def main_script(text: str) -> str:
    """The script most of a text's words are written in (Han and kana count together)."""
    profile = script_profile(text)
    if not profile:
        return ""
    merged: dict[str, float] = {}
    for k, v in profile.items():
        merged["cjk" if k in ("han", "kana") else k] = merged.get("cjk" if k in ("han", "kana") else k, 0.0) + v
    return max(merged, key=merged.get)


def select_sentences(question: str, qlang: str, ret: Retrieval, engine: Engine) -> list[Candidate]:
    """Score the sentences of the best passages against the question, best first."""
    retriever = engine.retriever
    cat = retriever.catalog
    bm25 = retriever.bm25
    qtokens = [t for t in ret.query_tokens if bm25.idf(t) > 0]
    q_idf = {t: bm25.idf(t) for t in qtokens}
    total_idf = sum(q_idf.values()) or 1.0
    cands: list[Candidate] = []
    seen: set[tuple[str, int, int]] = set()
    for rank, (p, hit) in enumerate(zip(ret.passages[:ANSWER_PASSAGES], ret.hits[:ANSWER_PASSAGES])):
        text = engine.version_text(p.version_id)
        also = [cat.passage(r) for r in hit.also]
        for s, e in candidate_spans(text, p.start, p.end):
            if (p.version_id, s, e) in seen:
                continue
            seen.add((p.version_id, s, e))
            sent = text[s:e]
            toks = set(tokenize(sent, p.language)) | set(tokenize(sent, "en"))
            lex = sum(w for tok, w in q_idf.items() if tok in toks) / total_idf
            cands.append(Candidate(p, rank, s, e, sent, lex=lex, also=also,
                                   context=text[max(0, s - CONTEXT_CHARS):e + CONTEXT_CHARS]))
    if not cands:
        return []
    # Dense similarity for the lexically most promising sentences and every sentence of the top passage.
    prelim = sorted(cands, key=lambda c: -(c.lex * ret.coverage + 0.15 / (1 + c.rank)))
    todo = prelim[:DENSE_SENTENCES]
    todo += [c for c in cands if c.rank == 0 and c not in todo][:6]
    if ret.query_vector is not None and todo:
        vecs = engine.embedder.embed_passages([c.text for c in todo])
        q = np.asarray(ret.query_vector, dtype=np.float32)
        sims = vecs @ q / (np.linalg.norm(vecs, axis=1) * (np.linalg.norm(q) or 1.0) + 1e-9)
        for c, sim, vec in zip(todo, sims, vecs):
            c.dense = float(sim)
            c.vector = vec / (np.linalg.norm(vec) or 1.0)
    kind = asked_type(question)
    q_script = main_script(question)
    for c in cands:
        hit = ret.hits[c.rank]
        c.score = (W_DENSE * c.dense + W_LEX * c.lex + W_PASSAGE * (hit.dense or 0.0) + W_RANK / (1 + c.rank)
                   + (W_TYPE if kind and carries_type(c.text, kind) else 0.0)
                   + (W_SCRIPT if main_script(c.text) == q_script else 0.0) - quality_penalty(c.text))
    return sorted(cands, key=lambda c: -c.score)


#: Words about the question itself rather than its subject (stems): never required in the evidence.
_META = {"mention", "say", "said", "tell", "describ", "explain", "articl", "report", "accord", "talk", "claim",
         "exampl", "mean", "happen", "anyth", "someth", "thing", "kind", "type", "specif", "exact", "actual"}
_LATIN_WORD = re.compile(r"^[a-z][a-z'\-]*$")


def unknown_terms(question: str, qlang: str, idf: Callable[[str], float]) -> list[str]:
    """English content words of the question that occur nowhere in the index.

    Only words we can read as English count: every word of an English question, and the Latin-script
    words mixed into a Hindi, Chinese, Japanese or Korean one ("OpenAI की Terms ..."). A Spanish
    word missing from English documents says nothing, so other Latin-script languages are skipped.
    """
    if qlang not in ("en", "hi", "zh", "ja", "ko", "und"):
        return []
    return [t for t in dict.fromkeys(tokenize(question, "en"))
            if _LATIN_WORD.match(t) and len(t) > 2 and t not in _META and idf(t) <= 0]


@dataclass
class Evidence:
    """What the abstention decision looks at (also what ``kb eval --calibrate`` sweeps)."""

    passage_dense: float = 0.0      # best passage cosine with the question
    sentence_dense: float = 0.0     # best candidate sentence cosine with the question
    unknown: list[str] = field(default_factory=list)  # English question words absent from the index
    asked: str | None = None        # the kind of fact asked (quantity, date) or None
    has_type: bool = True           # whether the leading sentences carry that kind of fact
    quotable: bool = True           # whether any sentence could be quoted at all


def evidence_of(question: str, ret: Retrieval, cands: list[Candidate], qlang: str = "en",
                idf: Callable[[str], float] | None = None) -> Evidence:
    """Measure the evidence for a question."""
    if not cands:
        return Evidence(quotable=False)
    best = cands[0]
    kind = asked_type(question)
    leading = [c for c in cands[:MAX_QUOTES] if c.score >= best.score - FOLLOW_MARGIN]
    counted = counted_terms(question, qlang, idf) if kind == "quantity" and idf is not None else []

    def answers_kind(c: Candidate) -> bool:
        if not carries_type(c.text, kind):
            return False
        if not counted:
            return True
        # The counted thing in the sentence or right around it (a bilingual page puts the English
        # sentence next to its translation; a list puts the noun in its lead-in).
        context = c.context or c.text
        words = set(tokenize(context, c.passage.language)) | set(tokenize(context, "en"))
        return any(t in words for t in counted)

    return Evidence(
        passage_dense=max((h.dense for h in ret.hits if h.dense is not None), default=0.0),
        sentence_dense=max(c.dense for c in cands),
        unknown=unknown_terms(question, qlang, idf) if idf is not None else [],
        asked=kind, has_type=not kind or any(answers_kind(c) for c in leading))


_COUNTED = re.compile(
    r"\bhow many\s+(?P<en>[\w\-]+(?:\s+[\w\-]+)?)|\bcu[aá]nt[oa]s\s+(?P<es>[\w\-]+)|\bcombien\s+d[e']\s*(?P<fr>[\w\-]+)|"
    r"\bwie viele\s+(?P<de>[\w\-]+)|\bquant[oa]s\s+(?P<pt>[\w\-]+)|कितन[ेीा]\s+(?P<hi>[\w\-]+)",
    re.IGNORECASE)


def counted_terms(question: str, qlang: str, idf: Callable[[str], float]) -> list[str]:
    """What a "how many X" question counts, as index tokens ("how many tokens" -> ``token``).

    Only words the index knows count: a Spanish noun absent from English documents cannot be checked
    and is left out (then any number will do).
    """
    m = _COUNTED.search(question)
    if not m:
        return []
    phrase = next(v for v in m.groupdict().values() if v)
    return [t for t in tokenize(phrase, "en") if idf(t) > 0 and not t.isdigit()]


def abstain_reason(question: str, ret: Retrieval, cands: list[Candidate], th: Thresholds,
                   qlang: str = "en", idf: Callable[[str], float] | None = None) -> str | None:
    """Why the evidence does not answer the question, or None when it does."""
    return decide(evidence_of(question, ret, cands, qlang, idf), th)


def decide(ev: Evidence, th: Thresholds) -> str | None:
    """The abstention rule over measured evidence: a reason to abstain, or None to answer."""
    if not ev.quotable:
        return "no quotable sentence in the retrieved passages"
    if ev.passage_dense < th.min_passage_dense:
        return f"best passage similarity {ev.passage_dense:.3f} < {th.min_passage_dense}"
    if ev.sentence_dense < th.min_sentence_dense:
        return f"best sentence similarity {ev.sentence_dense:.3f} < {th.min_sentence_dense}"
    if ev.unknown and ev.sentence_dense < th.unknown_term_dense:
        return f"the sources never mention {', '.join(ev.unknown)}"
    if th.check_answer_type and not ev.has_type:
        return f"the question asks for a {ev.asked} and the best evidence has none"
    return None


def choose_quotes(cands: list[Candidate]) -> list[Candidate]:
    """The best sentence and up to two more that score nearly as well, in reading order per document."""
    if not cands:
        return []
    best = cands[0]
    chosen = [best]
    for c in cands[1:]:
        if len(chosen) >= MAX_QUOTES or c.score < best.score - FOLLOW_MARGIN:
            break
        if any(_overlaps(c, k) or _same_text(c, k) or _same_meaning(c, k) for k in chosen):
            continue
        chosen.append(c)
    return chosen


def _cjk(text: str) -> bool:
    return sum(1 for ch in text if "\u3040" <= ch <= "\u9fff") > len(text) * 0.2


def _same_meaning(a: Candidate, b: Candidate) -> bool:
    """A paraphrase (very close vectors) or, in one bilingual version, a translation of a chosen quote."""
    if a.vector is None or b.vector is None:
        return False
    sim = float(a.vector @ b.vector)
    if sim >= SAME_MEANING:
        return True
    return a.passage.version_id == b.passage.version_id and _cjk(a.text) != _cjk(b.text) and sim >= TRANSLATION


def _overlaps(a: Candidate, b: Candidate) -> bool:
    return a.passage.version_id == b.passage.version_id and a.start < b.end and b.start < a.end


def _same_text(a: Candidate, b: Candidate) -> bool:
    ta, tb = set(tokenize(a.text, a.passage.language)), set(tokenize(b.text, b.passage.language))
    return bool(ta and tb) and len(ta & tb) / len(ta | tb) >= 0.6


def make_citations(chosen: list[Candidate], engine: Engine) -> list[Citation]:
    """Citations for the chosen quotes; syndicated copies are named as "also reported by"."""
    out: list[Citation] = []
    for i, c in enumerate(chosen, start=1):
        p = c.passage
        also = engine.retriever.duplicates_of(p.doc_id)
        also += [{"doc_id": o.doc_id, "title": o.title, "publisher": o.publisher, "url": o.url}
                 for o in c.also if o.doc_id != p.doc_id]
        uniq = list({a["doc_id"]: a for a in also}.values())
        out.append(Citation(n=i, doc_id=p.doc_id, version_id=p.version_id, chunk_id=p.chunk_id, title=p.title,
                            publisher=p.publisher, url=p.url, doctype=p.doctype, language=p.language,
                            published=p.published, retrieved=p.retrieved, quote=c.text, start=c.start, end=c.end,
                            also_reported_by=uniq))
    return out

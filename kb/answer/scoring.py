"""Candidate sentences of the retrieved passages, scored against the question.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from kb.answer.answer_types import asked_entity, asked_type, carries_entity, carries_type
from kb.models import Passage
from kb.retrieval.retriever import LEXICAL_EXTRA, Retrieval
from kb.text.spans import candidate_spans, defined_term, main_script, quality_penalty
from kb.text.tokenize import tokenize

if TYPE_CHECKING:
    from kb.answer.engine import Engine


#: How many of the best passages sentences are taken from.
ANSWER_PASSAGES = 5


#: How many sentences of lexical-only passages get one besides (their own budget: they never take a ranked
#: passage's sentence's place, whose cosine is abstention evidence).
DENSE_LEXICAL_SENTENCES = 6


#: How many sentences (pre-ranked lexically and by passage rank) get a dense similarity. Each sentence is
#: embedded once (vectors are cached by text), so this costs time only on a sentence's first use.
DENSE_SENTENCES = 24


#: Characters of surrounding text kept with a candidate sentence (for checks such as "how many X").
CONTEXT_CHARS = 300


#: Sentence score weights: the sentence's own similarity, IDF-weighted word overlap (scaled by the share
#: of the question's words the index knows, so that it counts only where the question's language can
#: match the passages'), its passage's similarity and rank, and a bonus when it carries the kind of fact
#: asked (a number, a date). Chosen on the XQuAD development split (share of questions whose gold answer
#: is in the top 3 sentences: 0.85) and our development questions over ../shared (0.73).
W_DENSE, W_LEX, W_PASSAGE, W_RANK, W_TYPE = 1.0, 0.2, 0.5, 0.03, 0.05


#: Scale the lexical term by the question's vocabulary coverage (False: the first wave's unscaled overlap).
LEX_BY_COVERAGE = True

#: Penalty for a definition line whose term the question does not name: '"Documentation" means ...' is
#: evidence for what Documentation is, not for the clause that uses it.
W_DEFINITION = 0.06

#: Bonus for a sentence in the question's script (a bilingual page offers both the original and its
#: translation: quote the one the reader reads).
W_SCRIPT = 0.03


@dataclass
class Candidate:
    """A sentence that might answer: a verbatim span of a version's stored text."""

    passage: Passage
    rank: int
    start: int
    end: int
    text: str
    lex: float = 0.0
    #: The lexical overlap over the question's words that are not its document's title (which clause, not
    #: which document); ``lex`` counts them all (the abstention evidence).
    focus_lex: float = 0.0
    dense: float = 0.0
    score: float = 0.0
    also: list[Passage] = field(default_factory=list)
    vector: np.ndarray | None = None
    context: str = ""  # the stored text around the sentence (a few hundred characters each side)
    #: From a passage only BM25 ranked (``Retrieval.lexical_passages``): a quote it may give, evidence for
    #: the abstention decision it is not (the support model was fitted on the ranked passages' sentences).
    lexical_only: bool = False
    #: The sentences just before and after it in the same paragraph (spans of the stored text), if any.
    before: tuple[int, int] | None = None
    after: tuple[int, int] | None = None


def select_sentences(question: str, qlang: str, ret: Retrieval, engine: Engine) -> list[Candidate]:
    """Score the sentences of the best ``ANSWER_PASSAGES`` passages, and of BM25's best passages when fusion
    ranked them lower (``lexical_only``), against the question, best first."""
    retriever = engine.retriever
    cat = retriever.catalog
    bm25 = retriever.bm25
    qtokens = [t for t in ret.query_tokens if bm25.idf(t) > 0]
    q_idf = {t: bm25.idf(t) for t in qtokens}
    total_idf = sum(q_idf.values()) or 1.0
    cands: list[Candidate] = []
    seen: set[tuple[str, int, int]] = set()
    pool = list(zip(ret.passages[:ANSWER_PASSAGES], ret.hits[:ANSWER_PASSAGES]))
    ranked = len(pool)
    # BM25's best passages below the answer passages: ranked further down, or left out by fusion.
    pool += [(p, h) for p, h in zip(ret.passages[ANSWER_PASSAGES:], ret.hits[ANSWER_PASSAGES:])
             if h.bm25_rank is not None and h.bm25_rank <= LEXICAL_EXTRA]
    pool += list(zip(ret.lexical_passages, ret.lexical_hits))
    titles: dict[str, set[str]] = {}
    for rank, (p, hit) in enumerate(pool):
        text = engine.version_text(p.version_id)
        if p.doc_id not in titles:
            titles[p.doc_id] = set(tokenize(p.title, p.language)) | set(tokenize(p.title, "en"))
        # The question's words that are not the document's name: which clause, not which document.
        focus = {t: w for t, w in q_idf.items() if t not in titles[p.doc_id]} or q_idf
        focus_idf = sum(focus.values()) or 1.0
        also = cat.passages(hit.also)
        spans = candidate_spans(text, p.start, p.end)
        before, after = _neighbours(text, spans)
        for s, e in spans:
            if (p.version_id, s, e) in seen:
                continue
            seen.add((p.version_id, s, e))
            sent = text[s:e]
            toks = set(tokenize(sent, p.language)) | set(tokenize(sent, "en"))
            lex = sum(w for tok, w in q_idf.items() if tok in toks) / total_idf
            focus_lex = sum(w for tok, w in focus.items() if tok in toks) / focus_idf
            cands.append(Candidate(p, rank, s, e, sent, lex=lex, focus_lex=focus_lex, also=also, lexical_only=rank >= ranked,
                                   context=text[max(0, s - CONTEXT_CHARS):e + CONTEXT_CHARS],
                                   before=before.get((s, e)), after=after.get((s, e))))
    if not cands:
        return []
    # Dense similarity for the lexically most promising sentences and every sentence of the top passage.
    prelim = sorted(cands, key=lambda c: -(c.lex * ret.coverage + 0.15 / (1 + c.rank)))
    todo = [c for c in prelim if not c.lexical_only][:DENSE_SENTENCES]
    todo += [c for c in cands if c.rank == 0 and c not in todo][:6]
    todo += [c for c in prelim if c.lexical_only][:DENSE_LEXICAL_SENTENCES]
    if ret.query_vector is not None and todo:
        vecs = engine.embedder.embed_passages([c.text for c in todo])
        q = np.asarray(ret.query_vector, dtype=np.float32)
        sims = vecs @ q / (np.linalg.norm(vecs, axis=1) * (np.linalg.norm(q) or 1.0) + 1e-9)
        for c, sim, vec in zip(todo, sims, vecs):
            c.dense = float(sim)
            c.vector = vec / (np.linalg.norm(vec) or 1.0)
    kind = asked_type(question)
    entity = asked_entity(question)
    q_script = main_script(question)
    q_words = set(ret.query_tokens) | set(tokenize(question, "en"))
    # A passage only BM25 found has no cosine from the store: its best sentence's stands in (it used to
    # count 0, which sank every sentence of a BM25-only passage ranked among the answer passages too).
    best_sentence: dict[int, float] = {}
    for c in cands:
        best_sentence[c.rank] = max(best_sentence.get(c.rank, 0.0), c.dense)
    for c in cands:
        hit = pool[c.rank][1]
        passage_dense = hit.dense if hit.dense is not None else best_sentence[c.rank]
        c.score = (W_DENSE * c.dense + W_LEX * c.focus_lex * (ret.coverage if LEX_BY_COVERAGE else 1.0)
                   + W_PASSAGE * passage_dense + W_RANK / (1 + c.rank)
                   + (W_TYPE if kind and carries_type(c.text, kind) else 0.0)
                   + (W_TYPE if entity and carries_entity(c.text, entity) else 0.0)
                   + (W_SCRIPT if main_script(c.text) == q_script else 0.0) - quality_penalty(c.text)
                   - (W_DEFINITION if _defines_other_term(c, q_words) else 0.0))
    return sorted(cands, key=lambda c: -c.score)


def _defines_other_term(c: Candidate, q_words: set[str]) -> bool:
    """Whether the sentence is a definition line of a term none of whose words the question uses."""
    term = defined_term(c.text)
    if term is None:
        return False
    words = set(tokenize(term, c.passage.language)) | set(tokenize(term, "en"))
    return bool(words) and not (words & q_words)   # '"We" means Acme': no word to tell, no penalty


#: A quote is widened to take in its neighbour sentence when the pair's cosine with the question beats the
#: sentence's own by this much (the answer sits in the next sentence: "These include ...", "During this
#: hold, ..."), and the pair stays within ``WIDE_QUOTE_CHARS``.
WIDEN_GAIN = 0.01
WIDE_QUOTE_CHARS = 600
#: How many of the chosen quotes may be widened (each costs two sentence-pair embeddings at most).
WIDEN_QUOTES = 2


def _neighbours(text: str, spans: list[tuple[int, int]]
                ) -> tuple[dict[tuple[int, int], tuple[int, int]], dict[tuple[int, int], tuple[int, int]]]:
    """For each span, the span just before and just after it, when only spaces (no blank line) lie between."""
    every = sorted(set(spans))  # sentences, and windows that hold two of them (a question and its reply)
    singles = [a for a in every if not any(b != a and a[0] <= b[0] and b[1] <= a[1] for b in every)]
    before: dict[tuple[int, int], tuple[int, int]] = {}
    after: dict[tuple[int, int], tuple[int, int]] = {}
    for a, b in zip(singles, singles[1:]):
        gap = text[a[1]:b[0]]
        if b[0] >= a[1] and not gap.strip() and gap.count("\n") < 2:
            after[a], before[b] = b, a
    return before, after


def widen_quotes(chosen: list[Candidate], ret: Retrieval, engine: Engine, gain: float | None = None) -> list[Candidate]:
    """The chosen quotes, each of the first ``WIDEN_QUOTES`` taking in its neighbour sentence when the pair
    matches the question clearly better than the sentence alone (and overlaps no other quote)."""
    gain = WIDEN_GAIN if gain is None else gain
    if ret.query_vector is None or gain >= 1.0:
        return chosen
    q = np.asarray(ret.query_vector, dtype=np.float32)
    q = q / (np.linalg.norm(q) or 1.0)
    out = list(chosen)
    for i, c in enumerate(chosen[:WIDEN_QUOTES]):
        if not c.dense:
            continue
        text = engine.version_text(c.passage.version_id)
        windows = [(s, e) for s, e in ((c.before[0] if c.before else None, c.end),
                                        (c.start, c.after[1] if c.after else None))
                   if s is not None and e is not None and e - s <= WIDE_QUOTE_CHARS]
        if not windows:
            continue
        vecs = engine.embedder.embed_passages([text[s:e] for s, e in windows])
        sims = vecs @ q / (np.linalg.norm(vecs, axis=1) + 1e-9)
        k = int(np.argmax(sims))
        s, e = windows[k]
        if sims[k] < c.dense + gain:
            continue
        if any(o is not c and o.passage.version_id == c.passage.version_id and o.start < e and s < o.end
               for o in out):
            continue
        out[i] = replace(c, start=s, end=e, text=text[s:e], dense=float(sims[k]),
                         vector=vecs[k] / (np.linalg.norm(vecs[k]) or 1.0),
                         context=text[max(0, s - CONTEXT_CHARS):e + CONTEXT_CHARS],
                         before=c.before if s == c.start else None, after=c.after if e == c.end else None)
    return out

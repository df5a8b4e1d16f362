"""A generated answer: retrieve, prompt, stream, ground each claim as it arrives, or fall back.

Every failure becomes an answer, never a crash: a server that is down, slow, refuses, overflows or
replies with nothing usable gives the extractive answer, with ``fallback_reason`` saying why.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from kb.answer import phrases
from kb.answer.engine import Engine, Progress, ProgressCallback, answer_question, question_language, retrieve_for_answer
from kb.answer.followup import PriorTurn, Resolution, resolve
from kb.generate.backends import LLMBackend, LLMError, make_backend
from kb.generate.claims import ClaimScanner
from kb.generate.grounding import GroundedClaim, Grounder
from kb.generate.prompt import MAX_CLAIMS, build_prompt
from kb.models import Answer, Claim
from kb.retrieval.filters import Filters
from kb.settings import Settings

log = logging.getLogger(__name__)

#: Called with each claim as soon as it is verified, and the citations numbered so far.
ClaimCallback = Callable[[GroundedClaim], None]


def generate_answer(question: str, engine: Engine, backend: LLMBackend, filters: Filters | None = None,
                    top_k: int = 8, on_claim: ClaimCallback | None = None,
                    on_progress: ProgressCallback | None = None, context_tokens: int | None = None,
                    prefer_docs: frozenset[str] = frozenset(), language: str | None = None) -> Answer:
    """An answer whose wording the LLM writes and whose every claim carries verified quotes.

    ``context_tokens`` is the model's window (default: the engine's ``KB_LLM_CONTEXT``); ``language``
    the question's (default: detected)."""
    filters = filters or Filters()
    t0 = time.perf_counter()
    question = (question or "").strip()
    qlang = language or question_language(question)
    ret = retrieve_for_answer(question, engine, filters, top_k, qlang, prefer_docs)
    (on_progress or (lambda _p: None))(Progress("retrieved", time.perf_counter() - t0, ret))

    seen = deltas = 0                  # claims parsed and stream deltas received, also on a fallback
    t_gen = time.perf_counter()

    def fall_back(reason: str) -> Answer:
        log.warning("generated answer fell back to extractive: %s", reason)
        ans = answer_question(question, engine, filters=filters, top_k=top_k, language=qlang,
                              on_progress=on_progress, retrieval=ret)
        ans.fallback_reason = reason
        ans.timings.update(total=time.perf_counter() - t0, claims_seen=float(seen), claims_dropped=float(seen),
                           deltas=float(deltas), generate=time.perf_counter() - t_gen if deltas else 0.0)
        return ans

    passages = ret.passages[:top_k]
    if not passages:
        return fall_back("nothing was retrieved to generate from")
    prompt = build_prompt(question, qlang, passages, context_tokens or engine.settings.llm_context)
    grounder = Grounder(prompt.numbered, engine.version_text, engine.embedder.embed_query,
                        engine.embedder.embed_passages)
    scanner = ClaimScanner()
    kept: list[GroundedClaim] = []
    t_gen = time.perf_counter()
    first: float | None = None
    try:
        for delta in backend.stream(prompt.messages, prompt.schema):
            deltas += 1
            for raw in scanner.feed(delta):
                seen += 1
                if len(kept) >= MAX_CLAIMS:
                    continue
                claim = grounder.ground(raw)
                if claim is not None:
                    kept.append(claim)
                    if first is None:
                        first = time.perf_counter() - t0
                    if on_claim:
                        on_claim(claim)
    except LLMError as exc:
        if not kept:
            return fall_back(str(exc))
        log.warning("the LLM reply broke off after %d verified claim(s): %s", len(kept), exc)
    gen_seconds = time.perf_counter() - t_gen
    if not kept:
        if seen == 0:
            what = "the reply was cut off before any claim" if not scanner.complete else "the reply held no claim"
        else:
            why = "; ".join(sorted({w for _, w in grounder.dropped}))[:300]
            what = f"none of the {seen} generated claim(s) verified ({why})"
        return fall_back(f"{backend.label}: {what}")
    alang = phrases.answer_language(qlang)
    claims = [Claim(text=c.text, citations=[x.n for x in c.citations]) for c in kept]
    text = " ".join(f"{c.text} " + "".join(f"[{n}]" for n in c.citations) for c in claims)
    timings = dict(ret.timings)
    timings.update(generate=gen_seconds, first_claim=first or 0.0, total=time.perf_counter() - t0,
                   deltas=float(deltas), claims_seen=float(seen), claims_dropped=float(seen - len(kept)),
                   passages_trimmed=float(prompt.trimmed))
    ans = Answer(question=question, question_language=qlang, answer=text, answer_language=qlang or alang,
                 abstained=False, citations=list(grounder.citations), passages=passages, filters=filters.to_json(),
                 timings=timings, mode="generated", model=backend.label, claims=claims)
    used = {n for c in claims for n in c.citations}
    ans.citations = [c for c in ans.citations if c.n in used]
    (on_progress or (lambda _p: None))(Progress("answered", timings["total"]))
    return ans


MODES = ("generated", "extractive")
_BACKENDS: dict[tuple[str, str, str, float, int, int], LLMBackend] = {}


def backend_for(settings: Settings) -> LLMBackend | None:
    """The configured backend (one per configuration in this process), or ``None`` for ``KB_LLM=extractive``."""
    if settings.llm == "extractive":
        return None
    key = (settings.llm, settings.llm_base_url or "", settings.llm_model, settings.llm_timeout, settings.llm_context,
           hash(settings.llm_api_key or ""))
    if key not in _BACKENDS:
        backend = make_backend(settings)
        if backend is None:
            return None
        _BACKENDS[key] = backend
    return _BACKENDS[key]


def ask(engine: Engine, question: str, filters: Filters | None = None, top_k: int = 8, mode: str | None = None,
        on_claim: ClaimCallback | None = None, on_progress: ProgressCallback | None = None,
        settings: Settings | None = None, previous: Sequence[PriorTurn] = (),
        resolution: Resolution | None = None) -> Answer:
    """The answer in the requested mode: ``generated`` when an LLM is configured (default), else extractive.

    ``settings`` name the LLM (default: the engine's); engines are shared per index, LLM settings are not.
    A follow-up is resolved against ``previous`` (or given already resolved as ``resolution``)."""
    settings = settings or engine.settings
    question = (question or "").strip()
    qlang = question_language(question)
    res = resolution or resolve(question, qlang, previous)
    backend = backend_for(settings) if mode != "extractive" else None
    if backend is None:
        ans = answer_question(res.resolved, engine, filters=filters, top_k=top_k, on_progress=on_progress,
                              language=qlang, prefer_docs=res.prefer_docs)
        if mode == "generated":
            ans.fallback_reason = "no LLM is configured (KB_LLM=extractive)"
    else:
        ans = generate_answer(res.resolved, engine, backend, filters=filters, top_k=top_k, on_claim=on_claim,
                              on_progress=on_progress, context_tokens=settings.llm_context,
                              prefer_docs=res.prefer_docs, language=qlang)
    return _as_asked(ans, res)


def _as_asked(ans: Answer, res: Resolution) -> Answer:
    """The answer under the question as asked, with the resolved one beside it for a follow-up."""
    ans.question = res.question
    ans.resolved_question = res.resolved if res.follow_up else None
    return ans


def prior_turn(ans: Answer) -> PriorTurn:
    """What a later follow-up may lean on from this answer: its question as searched and cited documents."""
    titles = tuple(dict.fromkeys((c.title, c.language) for c in ans.citations if c.title))
    return PriorTurn(ans.resolved_question or ans.question, ans.question_language,
                     frozenset(c.doc_id for c in ans.citations), titles)

"""Streamlit chat over the knowledge base: ask in any language, check every claim against its source.

Run: ``streamlit run app.py`` (settings from ``KB_*`` variables; see docs/app.md). Scraped text is
always rendered through ``ui.render`` (escaped), never as HTML or live Markdown.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

import streamlit as st

from kb.errors import KBError, StoreUnavailable
from kb.listings import FilterOptions, filter_options, index_counts, publisher_filter, version_provenance
from kb.models import Answer, Citation
from ui import render, runtime

st.set_page_config(page_title="Knowledge base", page_icon="⚖️", layout="centered")

log = logging.getLogger("kb.app")
#: Pause between streamed pieces of an answer (seconds); 0 shows it at once.
STREAM_DELAY = float(os.environ.get("KB_APP_STREAM_DELAY", "0.03"))
SOURCES_PAGE = "pages/1_Sources.py"
FILTER_KEYS = ("f_lang", "f_doctype", "f_source", "f_publisher", "f_since", "f_until", "f_asof")


@dataclass
class Card:
    """What a citation card shows, resolved once when the answer is made."""

    citation: Citation
    context: render.Context | None
    provenance: dict[str, Any]


@dataclass
class Turn:
    """One question and its answer in the session history."""

    id: str
    question: str
    answer: Answer
    cards: list[Card]
    filters: dict[str, str]
    stages: list[str]
    seconds: float


# -- filters --------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=8)
def _options(generation_key: str, _registry: Any) -> FilterOptions:
    return filter_options(_registry)


def _clear_filters() -> None:
    for key in FILTER_KEYS:
        st.session_state.pop(key, None)


def sidebar_filters(engine: Any) -> Any:
    """Sidebar widgets -> ``kb.retrieval.filters.Filters`` (applied to retrieval)."""
    from kb.retrieval.filters import Filters

    st.sidebar.header("Filters")
    if engine is None:
        st.sidebar.caption("Filters appear once the index is available.")
        return Filters()
    reg = engine.registry
    opts = _options(f"{reg.path}|{reg.generation()}|{index_counts(reg)['versions']}", reg)
    sb = st.sidebar
    langs = sb.multiselect("Language", opts.languages, key="f_lang", format_func=render.language_label,
                           help="Passages or documents in these languages")
    doctypes = sb.multiselect("Document type", opts.doctypes, key="f_doctype")
    sources = sb.multiselect("Source", opts.sources, key="f_source", help="Source names from sources.yaml")
    publishers = sb.multiselect("Publisher", opts.publishers, key="f_publisher")
    lo, hi = opts.first_published, opts.last_published
    since = sb.date_input("Published from", value=None, min_value=lo, max_value=hi, key="f_since")
    until = sb.date_input("Published until", value=None, min_value=lo, max_value=hi, key="f_until")
    as_of = sb.date_input("As of (version date)", value=None, min_value=opts.first_retrieved,
                          max_value=date.today(), key="f_asof",
                          help="Answer from the versions the index held on that day; empty means the latest")
    sb.button("Clear filters", on_click=_clear_filters, width="stretch")
    return Filters(language=",".join(langs) or None, doctype=",".join(doctypes) or None,
                   source=",".join(sources) or None, publisher=publisher_filter(publishers),
                   since=since.isoformat() if since else None, until=until.isoformat() if until else None,
                   as_of=as_of.isoformat() if as_of else None)


def sidebar_footer(engine: Any) -> None:
    sb = st.sidebar
    sb.divider()
    if engine is not None:
        c = index_counts(engine.registry)
        sb.caption(f"{c['documents']} documents · {c['versions']} versions · {c['chunks']} passages · "
                   f"{c['duplicates']} duplicates · store {engine.settings.store_mode}")
    sb.page_link(SOURCES_PAGE, label="Sources and documents", icon=":material/library_books:")
    if st.session_state.get("kb_history"):
        sb.button("Clear conversation", on_click=lambda: st.session_state.pop("kb_history", None),
                  width="stretch")
        session_export_button(st.session_state["kb_history"], engine)
    if runtime.exposed_without_password():
        sb.warning(f"This server is reachable from other machines and has no password: set {runtime.PASSWORD_ENV}.")


# -- answering ------------------------------------------------------------------------------------
def make_cards(answer: Answer, engine: Any) -> list[Card]:
    """Resolve each citation's surrounding text and provenance (snapshot hash, retrieval time)."""
    cards = []
    for c in answer.citations:
        try:
            ctx = render.quote_context(engine.version_text(c.version_id), c.start, c.end)
        except KBError:
            ctx = None
        cards.append(Card(c, ctx, version_provenance(engine.registry, c.version_id)))
    return cards


def answer_turn(engine: Any, question: str, filters: Any, status: Any, qlang: str) -> Turn:
    """Answer one question, reporting the steps to ``status``."""
    from kb.answer.engine import Progress, answer_question

    stages = [f"Question language: {render.language_label(qlang)}"]

    def on_progress(step: Progress) -> None:
        if step.stage != "retrieved" or step.retrieval is None:
            return
        ret = step.retrieval
        docs = len({p.doc_id for p in ret.passages})
        stages.append(f"Retrieved {len(ret.passages)} passages from {docs} documents in {step.seconds:.2f} s")
        status.update(label="Selecting and verifying quotes…")
        status.write(stages[-1])

    t = time.perf_counter()
    status.write(stages[0])
    answer = answer_question(question, engine, filters=filters, language=qlang, on_progress=on_progress)
    cards = make_cards(answer, engine)
    seconds = time.perf_counter() - t
    verdict = ("no sufficient evidence: the answer abstains" if answer.abstained
               else f"{len(cards)} verified quote{'s' if len(cards) != 1 else ''}")
    stages.append(f"{verdict} · {seconds:.2f} s")
    status.write(stages[-1])
    status.update(label=_status_label(answer, seconds), state="complete", expanded=False)
    return Turn(f"a{uuid.uuid4().hex[:10]}", question, answer, cards,
                dict(answer.filters or filters.to_json()), stages, seconds)


def _status_label(answer: Answer, seconds: float) -> str:
    if answer.abstained:
        return f"No answer in the indexed sources ({seconds:.1f} s)"
    return f"Answered from {len(answer.citations)} verified quote(s) in {seconds:.1f} s"


# -- rendering ------------------------------------------------------------------------------------
def render_question(question: str) -> None:
    with st.chat_message("user"):
        st.markdown(render.escape_markdown(question))


def render_turn_header(turn: Turn) -> None:
    a = turn.answer
    st.caption(f":material/translate: Question in **{render.language_label(a.question_language)}** · "
               f"answer in {render.language_label(a.answer_language)}")
    summary = render.filters_summary(turn.filters)
    st.caption(f":material/filter_alt: Filters: {summary}" if summary else ":material/filter_alt_off: No filters: all sources, latest versions")


def render_answer_text(turn: Turn, stream: bool) -> None:
    a = turn.answer
    if a.abstained:
        st.info(render.escape_markdown(a.answer), icon=":material/search_off:")
        return
    quotes = [(c.n, c.quote) for c in a.citations]
    if not stream or STREAM_DELAY <= 0:
        st.html(render.answer_html(a.answer, quotes, turn.id))
        return
    slot = st.empty()
    for step in render.answer_html_steps(a.answer, quotes, turn.id):
        slot.html(step)
        time.sleep(STREAM_DELAY)


def render_card(turn: Turn, card: Card) -> None:
    """A bordered citation card (escaped HTML) with a link to the stored text on the sources page."""
    c = card.citation
    with st.container(border=True, key=f"kb-card-{turn.id}-{c.n}"):
        st.html(render.card_html(render.cite_anchor(turn.id, c.n), c.n, c.to_json(), card.context,
                                 card.provenance))
        st.page_link(SOURCES_PAGE, label="Read the stored text", icon=":material/article:",
                     query_params={"doc": c.doc_id, "version": c.version_id, "start": str(c.start),
                                   "end": str(c.end)})


def render_turn(turn: Turn, engine: Any, stream: bool = False) -> None:
    """An answer with its header, text, citation cards and downloads."""
    render_turn_header(turn)
    render_answer_text(turn, stream)
    if turn.cards:
        st.markdown("**Sources**")
        for card in turn.cards:
            render_card(turn, card)
    answer_export_buttons(turn, engine)
    with st.container(key=f"kb-done-{turn.id}"):
        st.caption(f"Answered in {turn.seconds:.2f} s")


def render_history(history: list[Turn], engine: Any) -> None:
    for turn in history:
        render_question(turn.question)
        with st.chat_message("assistant"):
            with st.status(_status_label(turn.answer, turn.seconds), state="complete", expanded=False):
                for line in turn.stages:
                    st.write(line)
            render_turn(turn, engine)


# -- exports (kb.export) ----------------------------------------------------------------------------
EXPORT_FORMATS = ("md", "docx", "pdf", "json")


def _exporter() -> Any:
    """``kb.export`` when it is installed (the buttons are hidden otherwise)."""
    try:
        from kb import export
    except ImportError:
        return None
    return export if hasattr(export, "export_answers") else None


def _export_data(engine: Any, items: list[tuple[str, Answer]], fmt: str) -> Callable[[], bytes]:
    """A deferred export: rendered (and every quote re-verified) only when the button is clicked."""
    export = _exporter()
    return lambda: export.export_answers(items, fmt, engine.settings, registry=engine.registry)


def answer_export_buttons(turn: Turn, engine: Any) -> None:
    export = _exporter()
    if export is None or engine is None or turn.answer.abstained:
        return
    with st.container(horizontal=True, gap="small"):
        for fmt in EXPORT_FORMATS:
            st.download_button(fmt.upper(), _export_data(engine, [(turn.question, turn.answer)], fmt),
                               file_name=f"answer-{turn.id}.{fmt}", mime=export.MEDIA_TYPES.get(fmt),
                               key=f"dl-{turn.id}-{fmt}", on_click="ignore", icon=":material/download:",
                               help=f"Download this answer with its sources as {fmt.upper()}")


def session_export_button(history: list[Turn], engine: Any) -> None:
    export = _exporter()
    answered = [(t.question, t.answer) for t in history if not t.answer.abstained]
    if export is None or engine is None or not answered:
        return
    sb = st.sidebar
    fmt = sb.selectbox("Download the conversation as", EXPORT_FORMATS, key="kb-export-fmt",
                       format_func=str.upper)
    sb.download_button(f"Download {len(answered)} answer(s) ({fmt.upper()})", _export_data(engine, answered, fmt),
                       file_name=f"conversation.{fmt}", mime=export.MEDIA_TYPES.get(fmt), on_click="ignore",
                       icon=":material/download:", width="stretch", key="dl-session")


# -- page -----------------------------------------------------------------------------------------
def chat_page() -> None:
    """The chat: filters in the sidebar, the conversation, the question box."""
    st.html(render.CSS)
    settings = runtime.settings_or_stop()
    engine, problem = runtime.engine_or_none(settings)
    filters = sidebar_filters(engine)
    st.title("Ask the knowledge base")
    st.caption("Terms of service, court filings and news coverage — every claim quotes its source.")
    ready = False
    if problem is not None:
        title, command = runtime.fix_for(problem, settings)
        runtime.show_problem(title, str(problem), command)
    elif engine is None or index_counts(engine.registry)["chunks"] == 0:
        runtime.show_problem("The index is empty", f"{settings.data_dir} holds no indexed passages yet.",
                        f"KB_DATA_DIR={settings.data_dir} {runtime.INGEST_COMMAND}")
    else:
        ready = True
    history: list[Turn] = st.session_state.setdefault("kb_history", [])
    render_history(history, engine)
    question = st.chat_input("Ask in any language…", disabled=not ready, max_chars=2000)
    if question and ready and question.strip():
        ask(engine, question.strip(), filters, history)
    sidebar_footer(engine)  # last, so the conversation download includes the answer just given


def ask(engine: Any, question: str, filters: Any, history: list[Turn]) -> None:
    from kb.answer.engine import question_language

    render_question(question)
    with st.chat_message("assistant"):
        qlang = question_language(question)
        status = st.status(f"Searching the index ({render.language_label(qlang)})…", expanded=False)
        try:
            turn = answer_turn(engine, question, filters, status, qlang)
        except StoreUnavailable as exc:
            runtime.forget_engine()
            status.update(label="The index became unreachable", state="error")
            title, command = runtime.fix_for(exc, engine.settings)
            runtime.show_problem(title, str(exc), command)
            return
        except (KBError, ValueError) as exc:
            status.update(label="The question could not be answered", state="error")
            st.error(render.escape_inline(str(exc)))
            return
        except Exception as exc:
            log.exception("answering %r failed", question[:80])
            status.update(label="The question could not be answered", state="error")
            if not runtime.store_reachable(engine):
                runtime.forget_engine()
                title, command = runtime.fix_for(exc, engine.settings)
                runtime.show_problem(title, f"{type(exc).__name__}: {exc}", command)
            else:
                st.error(f"Answering failed ({render.escape_inline(type(exc).__name__)}: "
                         f"{render.escape_inline(str(exc)[:300])}). Ask again; if it persists, the server log has "
                         "the details.")
            return
        render_turn(turn, engine, stream=True)
    history.append(turn)


def main() -> None:
    """Access check, then the navigation between the chat and the sources page."""
    runtime.require_password()
    pages = [st.Page(chat_page, title="Ask", icon=":material/forum:", url_path="ask", default=True),
             st.Page(SOURCES_PAGE, title="Sources", icon=":material/library_books:", url_path="sources")]
    st.navigation(pages).run()


main()

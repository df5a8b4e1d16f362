"""Sources page: what is indexed (documents, versions, duplicates), ingest health, and a document's text.

Scraped text is shown with ``st.text`` / ``st.dataframe`` (never parsed) or escaped by ``ui.render``.
Query parameters ``doc``, ``version``, ``start``, ``end`` open a document (and highlight a quote).
"""
from __future__ import annotations

import streamlit as st

from kb.errors import KBError
from kb.listings import (
    DocumentEntry,
    document_versions,
    index_counts,
    list_documents,
    recent_runs,
    source_health,
    version_provenance,
)
from kb.times import FOREVER, minute_of_epoch
from ui import render, runtime

st.set_page_config(page_title="Sources · Knowledge base", page_icon="📚", layout="wide")


def _day(ts: int) -> str:
    if ts >= FOREVER:
        return "now"
    return minute_of_epoch(ts)


def show_counts(reg) -> None:
    c = index_counts(reg)
    cols = st.columns(4)
    cols[0].metric("Documents", c["documents"])
    cols[1].metric("Versions", c["versions"])
    cols[2].metric("Passages (current)", c["chunks"])
    cols[3].metric("Duplicates folded", c["duplicates"])


def show_sources(reg) -> None:
    st.subheader("Sources and their last ingest run")
    health = source_health(reg)
    if not health:
        st.info("No ingest run has been recorded yet.")
        return
    st.dataframe([{"source": h.name, "documents": h.documents, "last run": h.last_run or "—",
                   "last success": h.last_success or "—", "run status": h.status or "—",
                   "failed runs in a row": h.consecutive_failures, "errors": len(h.errors),
                   "last error": h.last_error or "", "removed from sources.yaml": h.removed} for h in health],
                 hide_index=True, width="stretch")
    for h in health:
        if h.errors:
            with st.expander(f"{render.escape_inline(h.name)}: {len(h.errors)} error(s) in run {h.run_id}"):
                st.dataframe(h.errors, hide_index=True, width="stretch")
    runs = recent_runs(reg, limit=10)
    if runs:
        with st.expander("Recent ingest runs"):
            st.dataframe(runs, hide_index=True, width="stretch")


def show_documents(docs: list[DocumentEntry]) -> None:
    st.subheader("Indexed documents")
    needle = st.text_input("Search titles, publishers, URLs", key="src-search").strip().casefold()
    shown = [d for d in docs if not needle or needle in f"{d.title} {d.publisher} {d.url} {d.source}".casefold()]
    rows = [{"title": d.title or d.url, "publisher": d.publisher, "language": d.language, "type": d.doctype,
             "versions": d.versions, "duplicates": len(d.duplicates),
             "also published by": "; ".join(x["publisher"] or x["url"] for x in d.duplicates),
             "same URL as": len(d.same_url),
             "source": d.source, "published": d.published, "last retrieved": d.last_retrieved,
             "passages": d.chunks} for d in shown]
    st.caption(f"{len(shown)} of {len(docs)} documents. Syndicated copies are folded under their canonical "
               "document (column *duplicates*); documents sharing one URL (*same URL as*) are answered from as "
               "versions of one page, the latest published first.")
    st.dataframe(rows, hide_index=True, width="stretch")


def _select_document(docs: list[DocumentEntry], dup_titles: dict[str, str]) -> str | None:
    ids = [d.doc_id for d in docs] + sorted(dup_titles)
    titles = {d.doc_id: f"{d.title or d.url} — {d.publisher or d.source}" for d in docs} | dup_titles
    wanted = st.query_params.get("doc")
    index = ids.index(wanted) if wanted in ids else None

    def changed() -> None:
        st.query_params.clear()
        if st.session_state.get("src-doc"):
            st.query_params["doc"] = st.session_state["src-doc"]

    return st.selectbox("Open a document", ids, index=index, format_func=lambda i: titles.get(i, i),
                        key="src-doc", on_change=changed, placeholder="Choose a document…")


def show_document(reg, doc_id: str) -> None:
    doc = reg.document(doc_id)
    if doc is None:
        st.warning("That document is not in the index.")
        return
    st.markdown(f"### {render.escape_inline(doc['title'] or doc['url'])}")
    st.caption(" · ".join(render.escape_inline(x) for x in (
        doc["publisher"] or "unknown publisher", doc["published"] or "date unknown",
        render.language_label(doc["language"] or "und"), doc["doctype"] or "other", f"source {doc['source']}")))
    url = render.safe_url(doc["url"])
    if url and not url.startswith("file:"):
        st.markdown(f":material/open_in_new: {render.link('Open the original', url)} — {render.escape_inline(url)}")
    else:
        st.markdown(f":material/description: {render.escape_inline(doc['url'])}")
    if doc["duplicate_of"]:
        canon = reg.document(doc["duplicate_of"]) or {}
        st.info(f"Duplicate ({render.escape_inline(doc['duplicate_kind'] or 'copy')}) of "
                f"**{render.escape_inline(canon.get('title') or doc['duplicate_of'])}**; answers cite the canonical "
                "document.")
    dups = reg.copies_of(doc_id)
    if dups:
        st.markdown("**Also published as (folded duplicates):**")
        for d in dups:
            st.markdown(f"- {render.link(d['publisher'] or d['title'] or d['url'], d['url'])} "
                        f"({render.escape_inline(d['duplicate_kind'] or 'copy')})")
    same = reg.documents_sharing_url(doc_id, doc["url"] or "")
    if same:
        st.markdown("**Other documents at this URL** (answered from as versions of one page):")
        for d in same:
            st.markdown(f"- {render.escape_inline(d['title'] or d['doc_id'])} · published "
                        f"{render.escape_inline(d['published'] or 'unknown')}")
    versions = document_versions(reg, doc_id)
    if not versions:
        st.info("No stored version.")
        return
    st.dataframe([{"version": v.version_id, "retrieved": v.retrieved, "valid from": _day(v.valid_from),
                   "valid until": _day(v.valid_to), "status": v.status, "passages": v.n_chunks,
                   "snapshot sha256": v.snapshot_sha or ""} for v in versions],
                 hide_index=True, width="stretch")
    ids = [v.version_id for v in versions]
    wanted = st.query_params.get("version")
    vid = st.selectbox("Version", ids, index=ids.index(wanted) if wanted in ids else 0,
                       format_func=lambda i: f"{i} · retrieved {next(v.retrieved for v in versions if v.version_id == i)}")
    show_version_text(reg, vid, wanted)


def show_version_text(reg, version_id: str, wanted: str | None) -> None:
    prov = version_provenance(reg, version_id)
    try:
        text = reg.version_text(version_id)
    except KBError as exc:
        st.error(render.escape_inline(str(exc)))
        return
    st.caption(f"Snapshot `{prov.get('snapshot_sha') or '—'}` · text sha256 `{prov.get('text_sha', '')}` · "
               f"{len(text)} characters")
    try:
        start, end = int(st.query_params.get("start", -1)), int(st.query_params.get("end", -1))
    except ValueError:
        start = end = -1
    if version_id == wanted and 0 <= start < end <= len(text):
        st.markdown("**Cited passage**")
        with st.container(border=True):
            st.html(f'<div class="kb-context">{render.context_html(render.quote_context(text, start, end, 600))}</div>')
    st.markdown("**Stored text** (exactly what citations point into)")
    with st.container(height=480, border=True):
        st.text(text)


def main() -> None:
    st.html(render.CSS)
    runtime.require_password()
    settings = runtime.settings_or_stop()
    st.title("Sources")
    reg = runtime.registry_or_none(settings)
    if reg is None:
        runtime.stop_without_registry(settings)

    show_counts(reg)
    docs = list_documents(reg)
    dup_titles = {r["doc_id"]: f"{r['title'] or r['url']} — {r['publisher'] or r['source']} (duplicate)"
                  for r in reg.duplicate_documents()}
    doc_id = _select_document(docs, dup_titles)
    if doc_id:
        show_document(reg, doc_id)
        st.divider()
    show_documents(docs)
    show_sources(reg)


main()

"""What changed: new documents and new versions, newest first, each version with its paragraph diff.

Filters (since a date, one source) select the changes (``kb.changes.list_changes``); the selection
downloads as an Atom feed, and a timeline shows when the indexed documents were published and
retrieved. Scraped text is escaped by ``ui.render`` (diffs as escaped HTML through ``st.html``).
The password is checked by ``app.py`` before navigation reaches this page.
"""
from __future__ import annotations

from datetime import date

import streamlit as st

from kb.changes import Change, ChangeList, feed_path, list_changes, render_atom, timeline_events
from kb.errors import KBError
from ui import render, runtime
from ui.charts import timeline_chart

st.set_page_config(page_title="What changed · Knowledge base", page_icon="🔄", layout="wide")
ALL_SOURCES = "All sources"
LIMITS = (10, 25, 50, 100, 250)


def filters(reg) -> tuple[date | None, str | None, int]:
    """The sidebar-free filter row: since (optional date), source, how many."""
    cols = st.columns([1, 1, 1])
    since = cols[0].date_input("Changed since", value=None, key="chg-since", format="YYYY-MM-DD",
                               help="only changes the index picked up on or after this day (empty: all)")
    names = [ALL_SOURCES, *sorted(reg.document_sources())]
    source = cols[1].selectbox("Source", names, key="chg-source")
    limit = cols[2].selectbox("Show at most", LIMITS, index=1, key="chg-limit")
    return (since if isinstance(since, date) else None), (None if source == ALL_SOURCES else source), int(limit)


def show_change(c: Change) -> None:
    label = "New document" if c.is_new_document else "New version"
    icon = ":material/note_add:" if c.is_new_document else ":material/difference:"
    with st.container(border=True):
        st.markdown(f"{icon} **{label}:** {render.escape_inline(c.title or c.url)}")
        st.caption(" · ".join(render.escape_inline(x) for x in (
            c.publisher or "unknown publisher", f"published {c.published or 'date unknown'}",
            render.language_label(c.language), c.doctype or "other", f"source {c.source}",
            f"retrieved {c.retrieved}")))
        url = render.safe_url(c.url)
        if url and not url.startswith("file:"):
            st.markdown(f":material/open_in_new: {render.link('Open the original', url)} — "
                        f"{render.escape_inline(url)}")
        else:
            st.markdown(f":material/description: {render.escape_inline(c.url)}")
        st.markdown(render.escape_inline(c.summary()))
        if c.excerpt:
            st.html(f'<div class="kb-context">{render.escape_html(c.excerpt)}</div>')
        if c.paragraphs:
            with st.expander(f"Paragraph changes ({len(c.paragraphs)})", expanded=True):
                st.html(render.diff_html(c.paragraphs))
        st.caption(f"Version `{c.version_id}`" + (f" replaces `{c.previous_version_id}`"
                                                   if c.previous_version_id else ""))


def show_download(changes: ChangeList, settings) -> None:
    path = feed_path(settings.data_dir)
    data = render_atom(changes, self_url=path.resolve().as_uri(), feed_name=str(path.resolve()))
    st.download_button(":material/rss_feed: Download these changes as an Atom feed", data=data,
                       file_name="changes.atom", mime="application/atom+xml", key="chg-atom")
    st.caption(f"The ingester rewrites the full feed after every run: `{path}`.")


def main() -> None:
    st.html(render.CSS)
    settings = runtime.settings_or_stop()
    st.title("What changed")
    reg = runtime.registry_or_none(settings)
    if reg is None:
        runtime.stop_without_registry(settings)
    since, source, limit = filters(reg)
    try:
        changes = list_changes(reg, since=since.isoformat() if since else None, source=source, limit=limit)
    except KBError as exc:
        st.error(render.escape_inline(str(exc)))
        return
    st.caption(f"{changes.matched} change(s)" + (f", showing the {len(changes.changes)} newest"
                                                 if changes.matched > len(changes.changes) else ", newest first"))
    show_download(changes, settings)
    if not changes.changes:
        st.info("Nothing changed in this selection.")
    for c in changes.changes:
        show_change(c)
    st.subheader("Timeline: published and retrieved")
    events = timeline_events(reg, source)
    if events:
        st.altair_chart(timeline_chart(events), width="stretch")
    else:
        st.info("No indexed document to plot yet.")


main()

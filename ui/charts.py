"""Charts for the app (Altair, which Streamlit ships): pure functions returning charts, no Streamlit call.

``timeline_chart(kb.changes.timeline_events(registry))`` plots when the indexed documents were
published and when each of their versions was retrieved, one row per source. Titles reach the
chart only as data (shown in tooltips, which Vega renders as text).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterable, Mapping

import altair as alt

from kb.changes import TimelineEvent

EVENT_COLOURS = {"published": "#4c78a8", "retrieved": "#f58518"}


def _row(r: TimelineEvent | Mapping[str, Any]) -> dict[str, Any]:
    d: Mapping[str, Any] = asdict(r) if isinstance(r, TimelineEvent) else r
    return {k: str(d.get(k) or "") for k in ("day", "event", "title", "source", "publisher", "doc_id")}


def timeline_chart(rows: Iterable[TimelineEvent | Mapping[str, Any]], height: int | None = None) -> alt.Chart:
    """Publication and retrieval days as dots on a time axis, a row per source, colour by event.

    ``rows`` are ``TimelineEvent``s (or mappings with the same keys: day, event, title, source,
    publisher, doc_id); an empty list gives an empty chart with the same axes.
    """
    values = [_row(r) for r in rows]
    sources = sorted({v["source"] for v in values})
    events = list(EVENT_COLOURS)
    chart = alt.Chart(alt.Data(values=values)).mark_circle(size=70, opacity=0.75).encode(
        x=alt.X("day:T", title="Date", axis=alt.Axis(format="%Y-%m-%d")),
        y=alt.Y("source:N", title="Source", sort=sources),
        yOffset=alt.YOffset("event:N", sort=events),
        color=alt.Color("event:N", title="Event", sort=events,
                        scale=alt.Scale(domain=events, range=[EVENT_COLOURS[e] for e in events])),
        tooltip=[alt.Tooltip("day:T", title="Date", format="%Y-%m-%d"), alt.Tooltip("event:N", title="Event"),
                 alt.Tooltip("title:N", title="Title"), alt.Tooltip("publisher:N", title="Publisher"),
                 alt.Tooltip("source:N", title="Source")],
    )
    return chart.properties(height=height or max(120, 48 * max(1, len(sources))))

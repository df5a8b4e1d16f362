"""kb.changes over a real registry with two versions of a document, a new article and a folded copy."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import feedparser
import pytest

from kb.changes import (
    ATOM,
    entry_id,
    feed_path,
    list_changes,
    render_atom,
    render_markdown,
    timeline_events,
    write_feed,
)
from kb.diff import diff_texts
from kb.errors import UsageError
from kb.registry import Registry
from kb.registry.database import DocumentRecord, NewVersion
from kb.registry.ids import text_sha
from tests.fixtures.change_history import HOSTILE_TITLE, POLICY_URL, POLICY_V1, POLICY_V2, History, build_history

A = f"{{{ATOM}}}"


@pytest.fixture
def history(tmp_path: Path) -> History:
    return build_history(tmp_path / "data")


@pytest.fixture
def reg(history: History):
    r = Registry(history.registry_path, readonly=True)
    yield r
    r.close()


def test_new_documents_and_versions_newest_first_without_the_folded_copy(reg, history) -> None:
    cl = list_changes(reg)
    assert [(c.kind, c.version_id) for c in cl.changes] == [
        ("version", history.policy_v2), ("document", history.story_v1), ("document", history.policy_v1)]
    assert cl.matched == 3 and history.copy not in {c.doc_id for c in cl.changes}
    v2 = cl.changes[0]
    assert (v2.title, v2.url, v2.publisher, v2.source, v2.doctype, v2.language) == \
        ("Acceptable use policy", POLICY_URL, "Example Publisher", "policies", "tos", "en")
    assert v2.retrieved == "2026-03-05T09:00:00Z" and v2.previous_version_id == history.policy_v1
    assert v2.counts() == {"added": 1, "removed": 1, "changed": 1, "unchanged": 2}
    expected, same = diff_texts(POLICY_V1, POLICY_V2)   # the diff is kb.diff's, not a second implementation
    assert [c.to_json() for c in v2.paragraphs] == [c.to_json() for c in expected] and same == 2
    story = cl.changes[1]
    assert story.published == "2026-01-31" and story.title == HOSTILE_TITLE
    assert story.counts()["added"] == 2 and story.excerpt.startswith("The regulator") and not story.paragraphs


@pytest.mark.parametrize(("since", "expected"), [
    ("2026-02-01", ["version", "document"]),          # a bare date counts from the start of that day
    ("2026-02-02", ["version"]),
    ("2026-02-01T13:00:00Z", ["version"]),
    ("2026-03-06", []),
])
def test_since(reg, since, expected) -> None:
    assert [c.kind for c in list_changes(reg, since=since).changes] == expected


def test_source_and_limit(reg, history) -> None:
    assert [c.doc_id for c in list_changes(reg, source="press").changes] == [history.story]
    assert [c.doc_id for c in list_changes(reg, source="policies").changes] == [history.policy] * 2
    limited = list_changes(reg, limit=1)
    assert len(limited.changes) == 1 and limited.matched == 3


@pytest.mark.parametrize("kwargs", [{"since": "2026-13-01"}, {"since": "last week"}, {"source": "nope"},
                                    {"limit": 0}])
def test_bad_selection_is_a_usage_error(reg, kwargs) -> None:
    with pytest.raises(UsageError):
        list_changes(reg, **kwargs)


def test_timeline_has_publication_and_retrieval_days(reg, history) -> None:
    events = timeline_events(reg)
    assert ("2026-01-31", "published", history.story) in {(e.day, e.event, e.doc_id) for e in events}
    retrieved = sorted(e.day for e in events if e.event == "retrieved")
    assert retrieved == ["2026-01-10", "2026-02-01", "2026-03-05"]   # the copy is not plotted
    from ui.charts import timeline_chart

    spec = timeline_chart(events).to_dict()
    assert len(spec["data"]["values"]) == len(events) and spec["encoding"]["x"]["field"] == "day"
    assert timeline_chart([]).to_dict()["data"]["values"] == []


def test_markdown_keeps_scraped_text_inert(reg) -> None:
    md = render_markdown(list_changes(reg)).decode("utf-8")
    assert "<script" not in md and "](http" not in md and "![" not in md
    assert "## 1. New version: Acceptable use policy" in md
    assert "~ You may not use the service to harm [-others.-] {+other people or animals.+}" in md
    assert "+ You may not use outputs to train competing models." in md
    assert "- You may not resell access to the service." in md
    assert "`` `" not in md and "` https://example.org/legal/aup `" in md   # URLs in code spans, not links


def test_atom_is_a_valid_feed(reg, history) -> None:
    data = render_atom(list_changes(reg), self_url="file:///srv/kb/changes.atom")
    root = ET.fromstring(data)
    assert root.tag == A + "feed"
    for tag in ("id", "title", "updated", "author"):
        assert root.find(A + tag) is not None, tag
    assert root.find(A + "link[@rel='self']").get("href") == "file:///srv/kb/changes.atom"
    entries = root.findall(A + "entry")
    assert len(entries) == 3
    for e in entries:
        for tag in ("id", "title", "updated", "summary", "content"):
            assert (e.findtext(A + tag) or "").strip(), tag
        assert e.find(A + "link[@rel='alternate']").get("href").startswith("https://")
    assert entries[0].findtext(A + "id") == entry_id(history.policy_v2)
    assert entries[0].findtext(A + "updated") == "2026-03-05T09:00:00Z"
    assert "[-others.-] {+other people or animals.+}" in entries[0].findtext(A + "content")
    assert entries[1].findtext(A + "title") == "New document: " + HOSTILE_TITLE   # text, escaped by the XML
    assert entries[1].findtext(A + "published") == "2026-01-31T00:00:00Z"

    feed = feedparser.parse(data)
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == "What changed" and len(feed.entries) == 3
    for e in feed.entries:
        assert e.link and e.updated_parsed
    assert feed.entries[1].link == "https://news.example.org/2026/01/inquiry"


def test_atom_survives_control_characters_in_scraped_text(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.sqlite")
    text = "A title with a bell \x07 in it.\n\nAnd a second paragraph.\n"
    reg.upsert_document(DocumentRecord("d", "s", "https://x.example/d", "https://x.example/d", "bell \x07 title",
                                       "P", "", "news", "en", "", "2026-01-01T00:00:00Z"))
    reg.add_version(NewVersion("v1", "d", text, text_sha(text), None, "2026-01-01T00:00:00Z", 1767225600,
                               "bell \x07 title", "en", ""), [])
    reg.mark_indexed("v1")
    root = ET.fromstring(render_atom(list_changes(reg), self_url="file:///tmp/f.atom"))
    assert "\u2407" in root.find(A + "entry").findtext(A + "title")
    reg.close()


def test_write_feed_is_atomic_and_refuses_a_symlink(reg, history, tmp_path: Path) -> None:
    data_dir = history.registry_path.parent
    path = write_feed(reg, data_dir)
    assert path == feed_path(data_dir) and ET.parse(path).getroot().tag == A + "feed"
    assert not list(data_dir.glob(".changes.atom.*.tmp"))
    path.unlink()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    path.symlink_to(victim)
    with pytest.raises(UsageError, match="symbolic link"):
        write_feed(reg, data_dir)
    assert victim.read_text(encoding="utf-8") == "keep me"


def test_diff_html_escapes_scraped_paragraphs(reg) -> None:
    from kb.diff import ParagraphChange
    from ui.render import diff_html

    html = diff_html([ParagraphChange("added", new="<img src=x onerror=alert(1)>"),
                      ParagraphChange("changed", "a <b>", "a <i>", words=[("equal", "a "), ("delete", "<b>"),
                                                                        ("insert", "<i>")])])
    assert "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "<ins>&lt;img src=x onerror=alert(1)&gt;</ins>" in html and "<del>&lt;b&gt;</del>" in html

"""The demo briefs tell the truth: our summaries, with an identity of their own and links to what they summarise."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kb.evidence.extract import split_front_matter, summary_of
from ui.render import card_html

ROOT = Path(__file__).resolve().parents[2]
BRIEFS = sorted((ROOT / "demo" / "briefs").glob("*.md"))


def test_there_are_briefs() -> None:
    assert len(BRIEFS) >= 4


@pytest.mark.parametrize("path", BRIEFS, ids=lambda p: p.name)
def test_each_brief_says_it_is_our_summary_and_names_the_reporting(path: Path) -> None:
    front, body = split_front_matter(path.read_text(encoding="utf-8"))
    assert front["doctype"] == "summary"
    assert "our summaries, not original reporting" in front["publisher"]
    assert front["url"] == f"urn:kb-demo:brief:{path.stem}", "an identity of its own, never a local path"
    originals = summary_of(front["summary_of"])
    assert originals and all(u.startswith("https://") for u in originals)
    assert all(u in body for u in originals), "the links named are the ones the brief cites"


def test_the_demo_source_is_declared_a_summary() -> None:
    entry = next(s for s in yaml.safe_load((ROOT / "sources.yaml").read_text(encoding="utf-8"))["sources"]
                 if s["name"] == "demo-briefs")
    assert entry["doctype"] == "summary" and "not original reporting" in entry["publisher"]


def test_summary_of_keeps_only_web_links() -> None:
    assert summary_of("https://a.example/x, http://b.example/y; file:///etc/passwd javascript:alert(1) "
                      "https://a.example/x") == ["https://a.example/x", "http://b.example/y"]


def test_a_summary_card_links_what_it_summarises_and_is_not_called_original() -> None:
    cite = {"title": "Brief", "url": "urn:kb-demo:brief:x", "quote": "q", "publisher": "KB demo briefs",
            "doctype": "summary", "language": "en", "start": 0, "end": 1, "version_id": "v"}
    html = card_html("a", 1, cite, None, {"summary_of": ["https://www.techcrunch.com/story", "javascript:alert(1)"]})
    assert "Our summary, not original reporting" in html and "Original:" not in html
    assert 'Summary of: <a href="https://www.techcrunch.com/story"' in html and ">techcrunch.com</a>" in html
    assert "javascript:" not in html

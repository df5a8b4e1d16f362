"""``python -m kb changes``, the feed the ingester rewrites after each run, and the "What changed" page."""
from __future__ import annotations

import html
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import feedparser
import pytest

from ingest.pipeline import run_ingest
from ingest.sources import load_sources
from kb.changes import ATOM, feed_path
from kb.cli import main as kb_main
from tests.fixtures.change_history import HOSTILE_TITLE, History, build_history
from tests.fixtures.settings import ROOT, TEST_CACHE, make_settings

pytestmark = pytest.mark.integration
A = f"{{{ATOM}}}"


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> History:
    h = build_history(tmp_path / "data")
    monkeypatch.setenv("KB_DATA_DIR", str(h.registry_path.parent))
    return h


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = kb_main(["changes", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- the command ------------------------------------------------------------------------------------
def test_json_is_one_object_with_every_field(history, capsys) -> None:
    code, out, _ = run(capsys, "--format", "json")
    assert code == 0
    d = json.loads(out)
    assert d["matched"] == d["shown"] == 3 and d["since"] is None and d["source"] is None
    first = d["changes"][0]
    for key in ("kind", "doc_id", "version_id", "previous_version_id", "title", "url", "publisher", "source",
                "doctype", "language", "published", "retrieved", "counts", "changes"):
        assert key in first, key
    assert first["kind"] == "version" and first["version_id"] == history.policy_v2
    assert first["counts"] == {"added": 1, "removed": 1, "changed": 1, "unchanged": 2}
    assert {c["op"] for c in first["changes"]} == {"added", "removed", "changed"}
    assert [c["kind"] for c in d["changes"][1:]] == ["document", "document"]


def test_markdown_is_the_default(history, capsys) -> None:
    code, out, _ = run(capsys)
    assert code == 0 and out.startswith("# What changed")
    assert "New version: Acceptable use policy" in out and "<script" not in out and "](http" not in out


def test_since_and_source_and_limit(history, capsys) -> None:
    _, out, _ = run(capsys, "-f", "json", "--since", "2026-02-02")
    assert [c["version_id"] for c in json.loads(out)["changes"]] == [history.policy_v2]
    _, out, _ = run(capsys, "-f", "json", "--source", "press")
    assert [c["doc_id"] for c in json.loads(out)["changes"]] == [history.story]
    _, out, _ = run(capsys, "-f", "json", "--limit", "2")
    d = json.loads(out)
    assert d["shown"] == 2 and d["matched"] == 3


def test_atom_to_a_file_is_a_valid_feed(history, capsys, tmp_path: Path) -> None:
    target = tmp_path / "out" / "changes.atom"
    target.parent.mkdir()
    code, out, err = run(capsys, "--format", "atom", "-o", str(target))
    assert code == 0 and out == "" and str(target) in err
    root = ET.parse(target).getroot()
    assert root.tag == A + "feed"
    assert root.findtext(A + "id", "").startswith("urn:uuid:") and root.findtext(A + "updated")
    assert root.find(A + "link[@rel='self']").get("href") == target.resolve().as_uri()
    ids = [e.findtext(A + "id") for e in root.findall(A + "entry")]
    assert len(ids) == len(set(ids)) == 3
    feed = feedparser.parse(target.read_bytes())
    assert not feed.bozo, feed.bozo_exception
    assert len(feed.entries) == 3
    for e in feed.entries:
        assert e.link.startswith("https://") and e.updated_parsed
    story = next(e for e in feed.entries if "inquiry" in e.link)
    assert story.title == "New document: " + HOSTILE_TITLE and story.published_parsed[:3] == (2026, 1, 31)
    assert "<script" not in target.read_text(encoding="utf-8")   # escaped as &lt;script&gt;


def test_atom_on_stdout_names_the_ingesters_feed(history, capsys) -> None:
    code, out, _ = run(capsys, "-f", "atom", "--since", "2026-03-01")
    root = ET.fromstring(out.encode("utf-8"))
    assert code == 0 and len(root.findall(A + "entry")) == 1
    assert root.find(A + "link[@rel='self']").get("href") == feed_path(history.registry_path.parent).resolve().as_uri()


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "2026-02-30"], "--since '2026-02-30' is not a date"),
    (["--since", "yesterday"], "is not a date"),
    (["--source", "nope"], "known sources: policies, press"),
    (["--limit", "0"], "--limit must be 1 or more"),
])
def test_bad_arguments_exit_2(history, capsys, args, message) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and message in err


def test_bad_format_exits_2(history, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        kb_main(["changes", "--format", "rss"])
    assert exc.value.code == 2


def test_unsafe_output_targets_are_refused(history, capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "-o", str(tmp_path))
    assert code == 2 and "is a folder" in err
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    link = tmp_path / "link.atom"
    link.symlink_to(victim)
    code, _, err = run(capsys, "-f", "atom", "-o", str(link))
    assert code == 2 and "symbolic link" in err and victim.read_text(encoding="utf-8") == "keep me"
    code, _, err = run(capsys, "-o", "/dev/null")
    assert code == 2 and "not a regular file" in err
    code, _, err = run(capsys, "-o", str(tmp_path / "missing" / "x.md"))
    assert code == 2 and "does not exist" in err


def test_no_index_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "none"))
    code, _, err = run(capsys)
    assert code == 2 and "no index" in err


# -- the ingester's feed ------------------------------------------------------------------------------
def test_every_run_rewrites_the_feed_and_a_failure_to_write_it_is_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "memo.txt").write_text("The board met on Monday and approved the budget for the new year.\n\n"
                                     "Members asked for a second review of travel costs.\n", encoding="utf-8")
    (folder / "brief.txt").write_text("The court scheduled the hearing for the first week of June.\n",
                                      encoding="utf-8")
    src = tmp_path / "sources.yaml"
    src.write_text(f"sources:\n  - name: notes\n    path: {folder}\n    doctype: other\n", encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    assert settings.embed_cache == TEST_CACHE
    first = run_ingest(settings, load_sources(src), progress=False)
    feed = feed_path(settings.data_dir)
    assert first.exit_code == 0 and not first.warnings and feed.is_file()
    parsed = feedparser.parse(feed.read_bytes())
    assert not parsed.bozo and len(parsed.entries) == 2
    assert {e.title.split(": ")[0] for e in parsed.entries} == {"New document"}

    (folder / "memo.txt").write_text("The board met on Monday and approved the budget for the new year.\n\n"
                                     "Members asked for a second review of travel and hotel costs.\n",
                                     encoding="utf-8")
    second = run_ingest(settings, load_sources(src), progress=False)
    assert second.totals()["documents_updated"] == 1 and not second.warnings
    root = ET.parse(feed).getroot()
    newest = root.findall(A + "entry")[0]
    assert newest.findtext(A + "title", "").startswith("New version")
    assert "{+and hotel+}" in newest.findtext(A + "content", "")
    assert not [p for p in os.listdir(settings.data_dir) if p.endswith(".tmp")]

    feed.unlink()
    feed.mkdir()   # something in the way: the run still succeeds, with a warning
    third = run_ingest(settings, load_sources(src), progress=False)
    assert third.exit_code == 0 and len(third.warnings) == 1 and "changes feed" in third.warnings[0]
    assert third.to_json()["warnings"] == third.warnings


# -- the page -----------------------------------------------------------------------------------------
def test_page_lists_the_version_change_with_its_diff(history, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("KB_APP_PASSWORD", raising=False)
    at = AppTest.from_file(str(ROOT / "pages" / "2_Changes.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    md = [html.unescape(str(m.value)) for m in at.markdown]
    assert any("**New version:** Acceptable use policy" in m for m in md), md
    raw = [str(m.value) for m in at.markdown] + [str(c.value) for c in at.caption]
    assert any(HOSTILE_TITLE in html.unescape(m).replace("\u2060", "") for m in raw)   # shown, as text
    assert not any("<script" in m or "](http://evil" in m or "![" in m for m in raw)
    bodies = [h.proto.body for h in at.get("html")]
    diff = next(b for b in bodies if 'class="kb-diff"' in b)
    assert "<del>others.</del>" in diff and "<ins>other people or animals.</ins>" in diff.replace("<ins> ", "<ins>")
    assert "<ins>You may not use outputs to train competing models.</ins>" in diff
    assert at.get("download_button"), "the Atom feed can be downloaded"
    assert at.get("vega_lite_chart"), "the timeline chart is shown"

    at.selectbox(key="chg-source").select("press").run()
    assert not at.exception
    md = [html.unescape(str(m.value)) for m in at.markdown]
    assert not any("New version" in m for m in md) and any("New document" in m for m in md)

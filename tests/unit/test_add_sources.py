"""The managed sources file: load_all_sources, add_sources (append, dedupe, names, refusals, concurrency)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ingest.add import add_sources, candidates, slug_for
from ingest.sources import MANAGED_NAME, load_all_sources, load_sources, managed_path
from kb.errors import ConfigError, UsageError
from tests.fixtures.settings import ROOT, make_settings

USER_YAML = "sources:\n  - name: mine\n    url: https://example.org/terms\n    doctype: tos\n"


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    f = tmp_path / "sources.yaml"
    f.write_text(USER_YAML, encoding="utf-8")
    return f


def managed_entries(user_file: Path) -> list[dict]:
    return yaml.safe_load(managed_path(user_file).read_text(encoding="utf-8"))["sources"]


# -- reading both files --------------------------------------------------------------------------------
def test_without_a_managed_file_nothing_changes(user_file: Path) -> None:
    loaded = load_all_sources(user_file)
    assert loaded.sources == load_sources(user_file)
    assert loaded.files == [user_file] and not loaded.problems


def test_both_files_are_read_users_first(user_file: Path) -> None:
    managed_path(user_file).write_text("sources:\n  - name: added-one\n    url: https://example.org/a\n")
    loaded = load_all_sources(user_file)
    assert [s.name for s in loaded.sources] == ["mine", "added-one"]
    assert loaded.origin == {"mine": user_file, "added-one": user_file.parent / MANAGED_NAME}


def test_a_name_in_both_files_is_a_config_error_naming_both(user_file: Path) -> None:
    managed_path(user_file).write_text("sources:\n  - name: mine\n    url: https://example.org/other\n")
    with pytest.raises(ConfigError) as err:
        load_all_sources(user_file)
    assert str(user_file) in str(err.value) and str(managed_path(user_file)) in str(err.value)
    assert "'mine'" in str(err.value)


@pytest.mark.parametrize("broken", ["sources:\n  - name: x\n    url: [unclosed\n",
                                    "sources:\n  - name: Bad Name\n    url: https://example.org/\n",
                                    "- just a list\n"])
def test_a_broken_managed_file_is_reported_and_the_users_sources_go_on(user_file: Path, broken: str) -> None:
    managed_path(user_file).write_text(broken)
    loaded = load_all_sources(user_file)
    assert [s.name for s in loaded.sources] == ["mine"]
    assert len(loaded.problems) == 1
    problem = loaded.problems[0]
    assert str(managed_path(user_file)) in problem and "Fix" in problem and "delete it" in problem
    with pytest.raises(ConfigError):
        load_all_sources(user_file, strict=True)


def test_the_watcher_reports_a_broken_managed_file_and_keeps_the_users_sources(user_file: Path,
                                                                               tmp_path: Path) -> None:
    from ingest.scheduler import Watcher

    managed_path(user_file).write_text("sources:\n  - name: added-one\n    url: https://example.org/a\n")
    events = []
    w = Watcher(make_settings(tmp_path / "data"), user_file, on_event=events.append)
    assert [s.name for s in w.sources] == ["mine", "added-one"]
    managed_path(user_file).write_text("sources: [\n")
    assert [s.name for s in w._load()] == ["mine", "added-one"], "the managed sources read before it broke stay"
    assert any(e.kind == "error" and MANAGED_NAME in e.message for e in events)


# -- adding ----------------------------------------------------------------------------------------------
def test_add_appends_urls_with_derived_unique_names(user_file: Path, tmp_path: Path) -> None:
    s = make_settings(tmp_path / "data")
    res = add_sources(s, user_file, ["https://www.example.org/news/story.html"], doctype="news", publisher="Ex")
    assert [(r.status, r.name) for r in res] == [("added", "example.org-news-story")]
    res = add_sources(s, user_file, ["https://example.org/news/story/"], language="fr")
    assert [(r.status, r.name) for r in res] == [("added", "example.org-news-story-2")]
    assert managed_entries(user_file) == [
        {"name": "example.org-news-story", "url": "https://www.example.org/news/story.html", "doctype": "news",
         "publisher": "Ex"},
        {"name": "example.org-news-story-2", "url": "https://example.org/news/story/", "language": "fr"}]
    assert user_file.read_text(encoding="utf-8") == USER_YAML, "the user's own file is never rewritten"
    assert [x.name for x in load_all_sources(user_file).sources] == ["mine", "example.org-news-story",
                                                                     "example.org-news-story-2"]


def test_a_url_already_in_either_file_is_not_added_twice(user_file: Path, tmp_path: Path) -> None:
    s = make_settings(tmp_path / "data")
    res = add_sources(s, user_file, ["https://EXAMPLE.org/terms/?utm_source=x"])
    assert [(r.status, r.message) for r in res] == [("exists", "already a source: mine")]
    assert not managed_path(user_file).exists()
    add_sources(s, user_file, ["https://example.org/feed.xml"], feed=True)
    res = add_sources(s, user_file, ["https://example.org/feed.xml", "https://example.org/feed.xml"], feed=True)
    assert [r.status for r in res] == ["exists", "exists"]
    assert len(managed_entries(user_file)) == 1 and managed_entries(user_file)[0]["feed"]


def test_name_override_and_its_checks(user_file: Path, tmp_path: Path) -> None:
    s = make_settings(tmp_path / "data")
    assert add_sources(s, user_file, ["https://example.org/x"], name="my-pick")[0].name == "my-pick"
    with pytest.raises(UsageError, match="already a source name"):
        add_sources(s, user_file, ["https://example.org/y"], name="mine")
    with pytest.raises(UsageError, match="one URL or file"):
        add_sources(s, user_file, ["https://example.org/y", "https://example.org/z"], name="two")
    with pytest.raises(UsageError, match="lowercase slug"):
        add_sources(s, user_file, ["https://example.org/y"], name="Not A Slug")


def test_bad_input_writes_nothing(user_file: Path, tmp_path: Path) -> None:
    s = make_settings(tmp_path / "data")
    for bad in (["ftp://example.org/a"], ["https://example.org/ok", "javascript:alert(1)"], ["http://"]):
        with pytest.raises(UsageError):
            add_sources(s, user_file, bad)
    with pytest.raises(ConfigError, match="doctype"):
        add_sources(s, user_file, ["https://example.org/ok"], doctype="novel")
    assert not managed_path(user_file).exists()


def test_a_file_is_copied_content_addressed_and_deduplicated(user_file: Path, tmp_path: Path) -> None:
    s = make_settings(tmp_path / "data")
    doc = tmp_path / "Brief Notes.md"
    doc.write_text("# Notes\n\nThe court set the hearing for May.\n", encoding="utf-8")
    res = add_sources(s, user_file, [str(doc)], doctype="court")
    assert res[0].status == "added" and res[0].name == "brief-notes"
    copy = Path(res[0].target)
    assert copy.is_relative_to(s.data_dir / "added") and copy.suffix == ".md"
    assert copy.read_bytes() == doc.read_bytes()
    assert managed_entries(user_file)[0] == {"name": "brief-notes", "path": str(copy), "doctype": "court"}
    again = tmp_path / "renamed.md"
    again.write_bytes(doc.read_bytes())
    assert add_sources(s, user_file, [str(again)])[0].message == "already a source: brief-notes"


def test_files_with_other_extensions_or_too_big_are_refused(user_file: Path, tmp_path: Path) -> None:
    s = make_settings(tmp_path / "data", max_bytes=100)
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    with pytest.raises(UsageError, match=r"cannot add \.exe; only \.pdf"):
        add_sources(s, user_file, [str(exe)])
    big = tmp_path / "big.txt"
    big.write_text("x" * 200)
    with pytest.raises(UsageError, match="KB_MAX_BYTES"):
        add_sources(s, user_file, [str(big)])
    with pytest.raises(UsageError, match="no such file"):
        add_sources(s, user_file, [str(tmp_path / "missing.pdf")])
    assert not (s.data_dir / "added").exists()


def test_adding_to_a_broken_managed_file_is_refused_and_leaves_it_as_is(user_file: Path, tmp_path: Path) -> None:
    managed_path(user_file).write_text("sources: [\n")
    with pytest.raises(ConfigError, match=MANAGED_NAME):
        add_sources(make_settings(tmp_path / "data"), user_file, ["https://example.org/new"])
    assert managed_path(user_file).read_text() == "sources: [\n"


def test_slugs() -> None:
    s = make_settings(Path("/nonexistent"))
    [c] = candidates(["http://127.0.0.1:8123/page.html"], s)
    assert slug_for(c) == "127.0.0.1-8123-page"
    [c] = candidates(["https://example.org/"], s)
    assert slug_for(c) == "example.org"
    [c] = candidates(["https://ex.org/" + "very-long-segment/" * 10], s)
    assert len(slug_for(c)) <= 60


def test_two_adds_in_two_processes_both_land(user_file: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from ingest.add import add_sources
        from kb.settings import Settings
        s = Settings(data_dir=Path({str(tmp_path / 'data')!r}))
        for i in range(25):
            add_sources(s, {str(user_file)!r}, [f"https://example.org/{{sys.argv[1]}}/{{i}}"])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, who], cwd=ROOT) for who in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=120) == 0
    urls = {e["url"] for e in managed_entries(user_file)}
    assert urls == {f"https://example.org/{who}/{i}" for who in "ab" for i in range(25)}
    assert len(load_all_sources(user_file).sources) == 51


def test_prune_refuses_while_the_managed_file_is_broken(user_file: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from ingest.cli import main
    from kb.registry import Registry

    Registry(tmp_path / "data" / "registry.sqlite").close()
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    managed_path(user_file).write_text("sources: [\n")
    assert main(["prune", "--sources", str(user_file), "--dry-run"]) == 2
    assert MANAGED_NAME in capsys.readouterr().err
    managed_path(user_file).unlink()
    assert main(["prune", "--sources", str(user_file), "--dry-run"]) == 0


def test_the_add_page_offers_the_document_types_of_the_sources_file() -> None:
    import ast

    from ingest.sources import DOCTYPES

    tree = ast.parse((ROOT / "pages" / "3_Add_sources.py").read_text(encoding="utf-8"))
    [value] = [n.value for n in tree.body if isinstance(n, ast.Assign)
               and any(getattr(t, "id", "") == "DOCTYPES" for t in n.targets)]
    assert ast.literal_eval(value) == list(DOCTYPES)

"""sources.yaml validation: every mistake names the file, the entry and the fix."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.sources import load_sources, parse_duration
from kb.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sources.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_sources_file_is_valid() -> None:
    sources = load_sources(ROOT / "sources.yaml")
    names = {s.name for s in sources}
    assert "demo-briefs" in names
    kinds = {s.kind for s in sources}
    assert {"path", "url", "urls", "feed"} <= kinds
    demo = next(s for s in sources if s.name == "demo-briefs")
    assert Path(demo.targets[0]).is_dir()


def test_all_kinds_and_defaults_parse(tmp_path: Path) -> None:
    p = write(tmp_path, """
defaults: {refresh: 2h, doctype: news}
sources:
  - {name: one, url: "https://example.org/a"}
  - {name: many, urls: ["https://example.org/a", "https://example.org/b"], doctype: tos, refresh: 1d}
  - {name: feed, feed: "https://example.org/feed.xml"}
  - {name: map, sitemap: "https://example.org/sitemap.xml", language: en}
  - {name: local, path: docs/, exclude: ["README.md"]}
""")
    s = {x.name: x for x in load_sources(p)}
    assert s["one"].refresh_seconds == 7200 and s["one"].doctype == "news"
    assert s["many"].targets == ("https://example.org/a", "https://example.org/b")
    assert s["many"].refresh_seconds == 86400 and s["many"].doctype == "tos"
    assert s["local"].targets[0] == str(tmp_path / "docs") and s["local"].exclude == ("README.md",)


@pytest.mark.parametrize("body, expected", [
    ("sources:\n  - {name: a, url: 'https://x.org', colour: red}\n", "unknown key(s) colour"),
    ("sources:\n  - {url: 'https://x.org'}\n", "missing 'name'"),
    ("sources:\n  - {name: a, url: 'https://x.org'}\n  - {name: a, url: 'https://y.org'}\n", "used twice"),
    ("sources:\n  - {name: a}\n", "needs exactly one of url, urls, feed, sitemap, path"),
    ("sources:\n  - {name: a, url: 'https://x.org', feed: 'https://x.org/f'}\n", "found url, feed"),
    ("sources:\n  - {name: a, url: 'ftp://x.org'}\n", "not an http(s) URL"),
    ("sources:\n  - {name: a, url: 'https://x.org', doctype: memo}\n", "doctype 'memo' is not one of"),
    ("sources:\n  - {name: a, url: 'https://x.org', refresh: soon}\n", "not a duration"),
    ("sources:\n  - {name: A B, url: 'https://x.org'}\n", "lowercase slug"),
    ("sources: [\n", "not valid YAML"),
    ("feeds: []\n", "expected a mapping with a 'sources:' list"),
])
def test_config_errors_name_entry_and_fix(tmp_path: Path, body: str, expected: str) -> None:
    p = write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_sources(p)
    assert expected in str(err.value)
    assert str(p) in str(err.value)


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--sources FILE"):
        load_sources(tmp_path / "nope.yaml")


def test_durations() -> None:
    assert parse_duration("30m", "x") == 1800
    assert parse_duration(90, "x") == 90
    with pytest.raises(ConfigError):
        parse_duration("0h", "x")


def test_nested_aliases_are_a_config_error_not_a_memory_bomb(tmp_path) -> None:
    """A 1 KB 'billion laughs' file fails fast with a clear error instead of expanding to gigabytes."""
    import time

    from ingest.sources import load_sources
    from kb.errors import ConfigError

    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\nsources:\n  - name: x\n    url: https://example.org/\n    title: *i\n",
                    encoding="utf-8")
    t = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases"):
        load_sources(path)
    assert time.perf_counter() - t < 5


def test_a_few_aliases_still_work(tmp_path) -> None:
    from ingest.sources import load_sources

    path = tmp_path / "s.yaml"
    path.write_text("defaults:\n  publisher: &pub Agency\nsources:\n  - name: a\n    url: https://example.org/a\n"
                    "    publisher: *pub\n"
                    "  - name: b\n    url: https://example.org/b\n    publisher: *pub\n", encoding="utf-8")
    assert [s.publisher for s in load_sources(path)] == ["Agency", "Agency"]


def test_a_missing_path_names_the_sources_file_that_declares_it(tmp_path: Path) -> None:
    from ingest.pipeline import discover
    from kb.settings import Settings

    other = tmp_path / "newsroom-sources.yml"
    other.write_text(f"sources:\n  - name: gone\n    path: {tmp_path / 'nowhere'}\n", encoding="utf-8")
    (src,) = load_sources(other)
    with pytest.raises(Exception) as info:
        discover(src, Settings(data_dir=tmp_path / "data"))
    assert str(other) in str(info.value) and "sources.yaml" not in str(info.value)

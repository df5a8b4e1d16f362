"""``python -m ingest add`` and the Add sources page against a real local web server and the real pipeline.

Each corpus is one tiny page or file (one chunk), so each embeds in well under a second; every child
process is bounded by a timeout.
"""
from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.fixtures.settings import ROOT, TEST_CACHE
from tests.fixtures.webserver import page, serve

pytestmark = pytest.mark.integration

BRIDGE = ("<html><head><title>Harbour bridge reopens</title></head><body><article><h1>Harbour bridge reopens</h1>"
          "<p>The Alfama harbour bridge will reopen to traffic on 14 March 2026 after repairs that cost "
          "3.2 million euros, the city council said on Tuesday.</p></article></body></html>")
NOTES = ("---\ntitle: Ferry notes\npublisher: Desk\n---\n\nThe night ferry to Barreiro stops running in June "
         "because its only boat needs a new engine, the operator confirmed.\n")
TIMEOUT = 300


def env_for(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "KB_DATA_DIR": str(tmp_path / "data"), "KB_EMBED_CACHE": str(TEST_CACHE),
            "KB_EMBED_THREADS": "2", "KB_ALLOW_PRIVATE_HOSTS": "1", "HF_HUB_OFFLINE": "1",
            "ANONYMIZED_TELEMETRY": "False"}


def user_sources(tmp_path: Path) -> Path:
    f = tmp_path / "sources.yaml"
    f.write_text("sources: []\n", encoding="utf-8")
    return f


def cli(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def test_add_a_url_then_ask_cites_it(tmp_path: Path) -> None:
    env, sources = env_for(tmp_path), user_sources(tmp_path)
    with serve({"/page.html": page(BRIDGE)}) as srv:
        url = srv.url("/page.html")
        out = cli("ingest", "add", url, "--doctype", "news", "--sources", str(sources), "--json", env=env)
        assert out.returncode == 0, out.stderr
        rep = json.loads(out.stdout)
        [r] = rep["results"]
        assert r["status"] == "added" and r["ingest_status"] == "ok" and r["documents"] == 1, rep
        assert rep["run"]["totals"]["documents_new"] == 1
        assert sources.read_text() == "sources: []\n"
        entries = yaml.safe_load((tmp_path / "sources.added.yaml").read_text())["sources"]
        assert entries == [{"name": r["name"], "url": url, "doctype": "news"}]

        again = cli("ingest", "add", url, "--sources", str(sources), env=env)
        assert again.returncode == 0 and f"already a source: {r['name']}" in again.stderr

    ans = cli("kb", "ask", "When will the harbour bridge reopen?", "--json", env=env)
    assert ans.returncode == 0, ans.stderr
    answer = json.loads(ans.stdout)
    assert not answer["abstained"], answer
    assert "14 March 2026" in answer["answer"]
    assert [c["url"] for c in answer["citations"]] == [url]

    st = cli("ingest", "status", "--json", "--sources", str(sources), env=env)
    assert st.returncode == 0, st.stderr
    [row] = json.loads(st.stdout)["sources"]
    assert row["name"] == r["name"] and row["documents"] == 1 and row["origin"] == str(tmp_path / "sources.added.yaml")


def test_add_a_file_and_refusals(tmp_path: Path) -> None:
    env, sources = env_for(tmp_path), user_sources(tmp_path)
    notes = tmp_path / "ferry-notes.md"
    notes.write_text(NOTES, encoding="utf-8")
    exe = tmp_path / "setup.exe"
    exe.write_bytes(b"MZ\x90\x00")

    refused = cli("ingest", "add", str(exe), "--sources", str(sources), env=env)
    assert refused.returncode == 2
    assert "cannot add .exe" in refused.stderr and ".pdf" in refused.stderr
    bad_url = cli("ingest", "add", "file:///etc/passwd", "--sources", str(sources), env=env)
    assert bad_url.returncode == 2 and "not an http(s) URL" in bad_url.stderr
    assert not (tmp_path / "sources.added.yaml").exists(), "bad input writes nothing"

    out = cli("ingest", "add", str(notes), "--sources", str(sources), "--json", env=env)
    assert out.returncode == 0, out.stderr
    [r] = json.loads(out.stdout)["results"]
    assert r["name"] == "ferry-notes" and r["ingest_status"] == "ok" and r["documents"] == 1
    copy = Path(r["target"])
    assert copy.parent.parent == tmp_path / "data" / "added" and copy.read_text(encoding="utf-8") == NOTES

    ans = cli("kb", "ask", "Why does the night ferry to Barreiro stop running?", "--json", env=env)
    assert ans.returncode == 0, ans.stderr
    answer = json.loads(ans.stdout)
    assert not answer["abstained"] and "new engine" in answer["answer"], answer


def test_a_404_url_exits_1_with_the_reason(tmp_path: Path) -> None:
    env, sources = env_for(tmp_path), user_sources(tmp_path)
    with serve({}) as srv:
        url = srv.url("/missing.html")
        out = cli("ingest", "add", url, "--sources", str(sources), env=env)
    assert out.returncode == 1, out.stderr
    assert "failed" in out.stderr and "404" in out.stderr, out.stderr


def test_run_with_a_broken_managed_file_reports_it_and_ingests_the_users_sources(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    notes = tmp_path / "notes.md"
    notes.write_text(NOTES, encoding="utf-8")
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - name: notes\n    path: {notes}\n", encoding="utf-8")
    (tmp_path / "sources.added.yaml").write_text("sources:\n  - name: [broken\n", encoding="utf-8")
    out = cli("ingest", "run", "--sources", str(sources), "--json", "--quiet", env=env)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "sources.added.yaml") in out.stderr and "broken" in out.stderr
    assert "Fix" in out.stderr and "your own sources" in out.stderr
    assert json.loads(out.stdout)["totals"]["documents_new"] == 1


# -- the Add sources page ---------------------------------------------------------------------------------
def press_add_and_wait(at) -> None:
    """Press Add, then re-run the page (as its one-second poll does) until the background add reports."""
    def done() -> bool:
        return "add-result" in at.session_state and "add-job" not in at.session_state

    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    deadline = time.monotonic() + TIMEOUT
    shown: list[str] = []
    while not done() and time.monotonic() < deadline:
        shown += [t.value for t in at.text]
        time.sleep(1)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    assert done(), "the add did not finish in time"
    assert any("starting" in t or "added" in t or "ingesting" in t for t in shown), "progress is shown while it runs"


def test_add_sources_page_adds_a_url_and_reports_it_ingested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    for name, value in env_for(tmp_path).items():
        if name.startswith(("KB_", "HF_", "ANONYMIZED")):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("KB_APP_PASSWORD", raising=False)
    sources = user_sources(tmp_path)
    monkeypatch.setenv("KB_SOURCES_FILE", str(sources))
    with serve({"/page.html": page(BRIDGE)}) as srv:
        url = srv.url("/page.html")
        at = AppTest.from_file(str(ROOT / "pages" / "3_Add_sources.py"), default_timeout=60)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        at.text_area(key="add-urls").input(url)
        at.selectbox(key="add-doctype").select("news")
        press_add_and_wait(at)
        rows = at.dataframe[0].value.to_dict("records")
        assert rows == [{"input": url, "source name": "127.0.0.1-" + url.split(":")[2].split("/")[0] + "-page",
                         "result": "ingested 1 document(s)"}]
        assert any("Ingested 1 new source" in html.unescape(s.value) for s in at.success)

        # an uploaded file, and the same URL again
        at.text_area(key="add-urls").input(url)
        at.file_uploader(key="add-files").upload("ferry-notes.md", NOTES.encode(), "text/markdown")
        press_add_and_wait(at)
        again = at.dataframe[0].value.to_dict("records")
        assert again[0] == {"input": url, "source name": rows[0]["source name"],
                            "result": f"already a source: {rows[0]['source name']}"}
        assert again[1] == {"input": "ferry-notes.md", "source name": "ferry-notes", "result": "ingested 1 document(s)"}
    assert not list((tmp_path / "data" / "uploads-tmp").glob("job-*")), "the job folder is cleaned up"
    assert [p.name for p in (tmp_path / "data" / "added").glob("*/*")] == ["ferry-notes.md"]

    sources_page = AppTest.from_file(str(ROOT / "pages" / "1_Sources.py"), default_timeout=60)
    sources_page.run()
    assert not sources_page.exception
    health = [df.value for df in sources_page.dataframe if "run status" in df.value.columns]
    assert health and health[0].to_dict("records")[0]["source"] == rows[0]["source name"]
    assert health[0].to_dict("records")[0]["documents"] == 1

    # ...and the chat answers from the page added in the app, citing its URL
    monkeypatch.setenv("KB_APP_STREAM_DELAY", "0")
    chat = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    chat.run()
    assert not chat.exception
    chat.chat_input[0].set_value("When will the harbour bridge reopen?").run()
    turn = chat.session_state["kb_history"][-1]
    assert not turn.answer.abstained and url in {c.url for c in turn.answer.citations}

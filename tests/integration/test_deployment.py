"""The reference deployment of docs/deploy.md in one test, every piece a real process on 127.0.0.1.

- the registry on a throwaway PostgreSQL (``KB_REGISTRY_URL``, ``tests.fixtures.postgres``);
- the vectors on a real ``chroma run`` server (``KB_CHROMA_HOST``/``KB_CHROMA_PORT``, the ``chroma_server``
  fixture of ``test_store_modes``);
- one shared ``KB_DATA_DIR`` (the "shared storage": raw snapshots, the BM25 cache, ``changes.atom``);
- one ingester (``python -m ingest run``), two ``python -m kb ask --batch - --json`` loops that stay up the
  whole test, and one ``streamlit run app.py`` server driven by headless Chromium.

It checks that the two loops give the same answer and citations, that a document ingested while they run
becomes answerable in both loops and in the app without restarting anything (the retriever reloads when
the registry's generation changes), and that two ``ingest run`` at once never overlap: the second is
refused with the lock holder's ``pid@host``, a third with ``--wait`` waits, and the recorded runs do not
overlap. Every child has a timeout and is stopped in teardown.
"""
from __future__ import annotations

import contextlib
import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from kb.registry import Registry
from tests.browser.test_app_browser import ask as ask_in_browser
from tests.browser.test_app_browser import last_answer, open_chat, streamlit_server
from tests.fixtures.browser import CHROMIUM, launch_chromium
from tests.fixtures.procs import stop_process
from tests.fixtures.settings import ROOT
from tests.fixtures.webserver import page, serve
from tests.integration.test_registry_postgres import cli, env_for, notes_sources, wait_for_holder
from tests.integration.test_store_modes import chroma_server  # noqa: F401 - the fixture, used by name

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT = 240
LIBRARY = ("Central library hours. The central library on Rua Augusta will open on Sundays from 3 May 2026, "
           "from ten in the morning until six in the evening, the city's culture department announced.\n")
BRIDGE_Q = "When will the harbour bridge reopen?"
LIBRARY_Q = "From when will the central library open on Sundays?"
SLOW_PAGE = ("<html><head><title>Tram timetable</title></head><body><h1>Tram timetable</h1><p>Tram 28 runs every "
             "twelve minutes on weekdays and every fifteen minutes at weekends, the transport office said.</p>"
             "</body></html>")


class AskLoop:
    """``python -m kb ask --batch - --json`` kept running: one question in on stdin, one JSON answer out."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.stderr.log"
        self._log: IO[bytes] = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "kb", "ask", "--batch", "-", "--json"], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, encoding="utf-8", bufsize=1)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def ask(self, question: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.poll() is None, f"{self.name} exited: {self.stderr()}"
        self.proc.stdin.write(question + "\n")
        self.proc.stdin.flush()
        try:
            return dict(json.loads(self._lines.get(timeout=timeout)))
        except queue.Empty:
            raise AssertionError(f"{self.name} gave no answer to {question!r} in {timeout} s: {self.stderr()}") from None

    def stderr(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()   # end of the batch: the loop exits by itself
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                stop_process(self.proc)
            self._log.close()


def same(answer: dict[str, Any]) -> tuple[Any, ...]:
    """What two processes over the same index must agree on (not timings or passage scores)."""
    return answer["answer"], answer["abstained"], answer["citations"]


def cited_files(answer: dict[str, Any]) -> list[str]:
    return [c["url"].rsplit("/", 1)[-1] for c in answer["citations"]]


def test_one_ingester_two_ask_loops_and_the_app_share_postgres_chroma_and_the_data_dir(
        tmp_path: Path, postgres_url: str, chroma_server: int) -> None:  # noqa: F811 - the imported fixture
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium (or set KB_CHROMIUM)")
    pytest.importorskip("playwright", reason="playwright is not installed (pip install -r requirements-dev.txt)")
    from playwright.sync_api import expect

    data = tmp_path / "shared-storage" / "data"
    env = {**env_for(data, postgres_url), "KB_CHROMA_HOST": "127.0.0.1", "KB_CHROMA_PORT": str(chroma_server)}
    notes_yaml = notes_sources(tmp_path)          # bridge.txt and ferry.txt in tmp_path/notes
    notes = tmp_path / "notes"

    # Upgrades and first start: migrate, then the first ingest (2 documents).
    migrated = cli("ingest", "migrate", "--json", env=env)
    assert migrated.returncode == 0, migrated.stderr
    first = cli("ingest", "run", "--sources", str(notes_yaml), "--quiet", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["totals"]["documents_new"] == 2
    assert not (data / "registry.sqlite").exists() and not (data / "chroma").exists(), \
        "registry on PostgreSQL, vectors on the Chroma server: neither in the data directory"

    logs = tmp_path / "logs"
    logs.mkdir()
    reg = Registry(data / "registry.sqlite", readonly=True, url=postgres_url)
    with contextlib.ExitStack() as stack:
        stack.callback(reg.close)
        loops = [AskLoop(name, env, logs) for name in ("ask-a", "ask-b")]
        for loop in loops:
            stack.callback(loop.close)
        app_env = {k: env[k] for k in ("KB_REGISTRY_URL", "KB_CHROMA_HOST", "KB_CHROMA_PORT")}
        app_url = stack.enter_context(streamlit_server(data, logs / "streamlit.log", KB_APP_STREAM_DELAY="0",
                                                       **app_env))
        browser = stack.enter_context(launch_chromium())
        context = browser.new_context(viewport={"width": 1280, "height": 1100})
        stack.callback(context.close)
        tab = context.new_page()
        tab.set_default_timeout(120_000)

        # Both loops answer the same question with the same verified quote and citation.
        bridge = [loop.ask(BRIDGE_Q) for loop in loops]
        assert not bridge[0]["abstained"] and "14 March 2026" in bridge[0]["answer"], bridge[0]
        assert cited_files(bridge[0]) == ["bridge.txt"]
        assert same(bridge[0]) == same(bridge[1])
        before = [loop.ask(LIBRARY_Q) for loop in loops]
        assert all("library.txt" not in cited_files(a) for a in before)

        # The app serves, answers from the same index, and lists what is indexed.
        open_chat(tab, app_url)
        ask_in_browser(tab, BRIDGE_Q, timeout=180_000)
        expect(last_answer(tab).locator(".kb-answer")).to_contain_text("14 March 2026")
        expect(last_answer(tab).locator(".kb-card-title").first).to_contain_text(bridge[0]["citations"][0]["title"])

        # A third document arrives; run A holds the lock (one slow page), B is refused, C waits.
        (notes / "library.txt").write_text(LIBRARY, encoding="utf-8")
        with serve({"/tram.html": page(SLOW_PAGE, delay=15.0)}) as web:
            both = tmp_path / "both.yaml"
            both.write_text(f"sources:\n  - name: notes\n    path: {notes}\n    doctype: news\n"
                            f"  - name: tram\n    url: {web.url('/tram.html')}\n    doctype: news\n", encoding="utf-8")
            run_a = subprocess.Popen([sys.executable, "-m", "ingest", "run", "--sources", str(both), "--quiet",
                                      "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
            stack.callback(stop_process, run_a)
            holder = wait_for_holder(reg, "ingest-run", run_a)
            assert holder.startswith(f"{run_a.pid}@")
            refused = cli("ingest", "run", "--sources", str(notes_yaml), "--quiet", env=env)
            assert refused.returncode == 1, refused.stderr
            assert f"another ingest (pid {run_a.pid}@" in refused.stderr, refused.stderr
            run_c = subprocess.Popen([sys.executable, "-m", "ingest", "run", "--sources", str(notes_yaml), "--quiet",
                                      "--wait"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
            stack.callback(stop_process, run_c)
            assert run_a.poll() is None, "run C must start while run A still holds the lock"

            # Neither loop is restarted: both pick the new document up as soon as it is indexed.
            deadline = time.monotonic() + TIMEOUT
            after: list[dict[str, Any]] = []
            for loop in loops:
                while True:
                    got = loop.ask(LIBRARY_Q)
                    if "library.txt" in cited_files(got):
                        after.append(got)
                        break
                    assert time.monotonic() < deadline, f"{loop.name} never saw library.txt: {got}"
                    time.sleep(1.0)
            out_a, err_a = run_a.communicate(timeout=TIMEOUT)
            assert run_a.returncode == 0, err_a
            totals = json.loads(out_a)["totals"]
            assert totals["documents_new"] == 2 and totals["failed"] == 0, totals   # library.txt + the tram page
            _, err_c = run_c.communicate(timeout=TIMEOUT)
            assert run_c.returncode == 0, err_c
        assert not after[0]["abstained"] and "3 May 2026" in after[0]["answer"], after[0]
        assert same(after[0]) == same(after[1])
        assert same(loops[0].ask(BRIDGE_Q)) == same(loops[1].ask(BRIDGE_Q))

        runs = sorted(reg.runs(), key=lambda r: r["started"])
        assert len(runs) == 3 and all(r["finished"] for r in runs), runs   # first, A, C (B never started one)
        for earlier, later in zip(runs, runs[1:]):
            assert later["started"] >= earlier["finished"], f"runs overlap: {earlier} / {later}"

        # The app, never restarted, answers the new document in the same session and counts it.
        ask_in_browser(tab, LIBRARY_Q, timeout=180_000)
        expect(last_answer(tab).locator(".kb-answer")).to_contain_text("3 May 2026")
        tab.goto(f"{app_url}/sources")
        expect(tab.get_by_text("Indexed documents")).to_be_visible()
        expect(tab.locator('[data-testid="stMetric"]').first).to_contain_text(re.compile(r"Documents\s*4\b"))
        for loop in loops:
            assert loop.proc.poll() is None, f"{loop.name} exited: {loop.stderr()}"
            assert "Traceback" not in loop.stderr(), loop.stderr()
    assert "Traceback" not in (logs / "streamlit.log").read_text(errors="replace")

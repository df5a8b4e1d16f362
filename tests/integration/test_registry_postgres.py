"""The registry on a real PostgreSQL (``KB_REGISTRY_URL``): a tiny ingest, ``ingest migrate``, the advisory
run lock between real ``ingest run`` processes, and a killed holder's lock freed by the server.

The cluster is the session's throwaway one (``tests.fixtures.postgres``); every child process has a
timeout and talks only to 127.0.0.1. Snapshots stay under ``KB_DATA_DIR``; no ``registry.sqlite`` appears.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ingest import scheduler
from ingest.lock import LockBusy, run_lock
from kb.registry import Registry
from kb.registry.schema import LATEST
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.settings import ROOT, TEST_CACHE, make_settings
from tests.fixtures.webserver import page, serve

pytestmark = pytest.mark.integration

TIMEOUT = 240
BRIDGE = ("Harbour bridge works. The harbour bridge will reopen to traffic on 14 March 2026, the city's transport "
          "office said on Monday, after eleven weeks of repairs to its deck and cables.\n")
FERRY = ("Night ferry notes. The night ferry to Barreiro stops running in April because its boat is being fitted "
         "with a new engine; a replacement bus leaves the river station every forty minutes.\n")


def env_for(data: Path, url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    return {**base, "KB_DATA_DIR": str(data), "KB_REGISTRY_URL": url, "KB_EMBED_CACHE": str(TEST_CACHE),
            "KB_EMBED_THREADS": "1", "KB_ALLOW_PRIVATE_HOSTS": "1", "HF_HUB_OFFLINE": "1",
            "ANONYMIZED_TELEMETRY": "False"}


def cli(module: str, *args: str, env: dict[str, str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def notes_sources(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "bridge.txt").write_text(BRIDGE, encoding="utf-8")
    (folder / "ferry.txt").write_text(FERRY, encoding="utf-8")
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - name: notes\n    path: {folder}\n    doctype: news\n", encoding="utf-8")
    return sources


def wait_for_holder(reg: Registry, name: str, proc: subprocess.Popen[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = reg.lock_holder(name)
        if holder:
            return holder
        assert proc.poll() is None, f"the holder exited early: {proc.communicate(timeout=10)}"
        time.sleep(0.2)
    raise AssertionError(f"nobody took the {name} lock within {timeout} s")


def test_ingest_on_postgres_then_migrate_status_and_one_run_at_a_time(
        tmp_path: Path, postgres_url: str, postgres_server: PostgresServer) -> None:
    data = tmp_path / "data"
    env = env_for(data, postgres_url)
    sources = notes_sources(tmp_path)
    secret = postgres_server.password

    migrated = cli("ingest", "migrate", "--json", env=env)
    assert migrated.returncode == 0, migrated.stderr
    report = json.loads(migrated.stdout)
    assert (report["dialect"], report["schema_version_before"], report["schema_version"]) == ("postgresql", 0, LATEST)
    assert report["applied"] == list(range(1, LATEST + 1)) and "***" in report["registry"]

    run = cli("ingest", "run", "--sources", str(sources), "--quiet", "--json", env=env)
    assert run.returncode == 0, run.stderr
    totals = json.loads(run.stdout)["totals"]
    assert totals["documents_new"] == 2 and totals["failed"] == 0, totals
    assert not (data / "registry.sqlite").exists(), "the registry is on PostgreSQL, not in the data directory"
    assert len(list((data / "snapshots").rglob("*.gz"))) == 2, "snapshots stay on the filesystem"

    reg = Registry(data / "registry.sqlite", readonly=True, url=postgres_url)
    assert {d["url"].rsplit("/", 1)[-1] for d in reg.documents()} == {"bridge.txt", "ferry.txt"}
    assert reg.pending_version_ids() == [] and reg.index_counts()["documents"] == 2
    for d in reg.documents():
        version = reg.current_version(d["doc_id"])
        assert version is not None and reg.read_snapshot(version.snapshot_sha or "")  # raw bytes, hash-checked

    status = cli("ingest", "status", "--json", "--sources", str(sources), env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["documents"] == 2
    again = cli("ingest", "migrate", env=env)
    assert again.returncode == 0 and f"schema version {LATEST}, up to date" in again.stdout, again.stderr
    verify = cli("ingest", "verify", "--json", env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # A real run holds the advisory lock while it fetches a slow page; a second run is refused, a third waits.
    with serve({"/slow.html": page(f"<html><body><h1>Slow page</h1><p>{BRIDGE * 3}</p></body></html>",
                                   delay=6.0)}) as srv:
        slow = tmp_path / "slow.yaml"
        slow.write_text(f"sources:\n  - name: slow\n    url: {srv.url('/slow.html')}\n    doctype: news\n",
                        encoding="utf-8")
        first = subprocess.Popen([sys.executable, "-m", "ingest", "run", "--sources", str(slow), "--quiet"], cwd=ROOT,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            holder = wait_for_holder(reg, "ingest-run", first)
            assert holder.startswith(f"{first.pid}@")
            refused = cli("ingest", "run", "--sources", str(sources), "--quiet", env=env)
            assert refused.returncode == 1
            assert f"another ingest (pid {first.pid}@" in refused.stderr and "is running on the registry" in refused.stderr
            waiting = subprocess.Popen([sys.executable, "-m", "ingest", "run", "--sources", str(sources), "--quiet",
                                        "--wait"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            try:
                time.sleep(2.0)
                assert first.poll() is None and waiting.poll() is None, "--wait waits for the lock"
                _, err = first.communicate(timeout=TIMEOUT)
                assert first.returncode == 0, err
                _, err = waiting.communicate(timeout=TIMEOUT)
                assert waiting.returncode == 0, err
            finally:
                waiting.kill()
        finally:
            first.kill()
            first.wait(timeout=30)
    runs = sorted(reg.runs(), key=lambda r: r["started"])
    assert [r["status"] for r in runs] and all(r["finished"] for r in runs)
    for earlier, later in zip(runs, runs[1:]):
        assert later["started"] >= earlier["finished"], "runs never overlap"
    reg.close()

    outputs = migrated.stdout + migrated.stderr + run.stdout + run.stderr + refused.stderr + status.stdout
    assert secret not in outputs, "the registry password is never printed"


def test_a_killed_holders_lock_is_released_by_the_server(tmp_path: Path, postgres_url: str) -> None:
    settings = make_settings(tmp_path / "data", registry_url=postgres_url)
    settings.data_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom ingest.lock import run_lock\nfrom kb.settings import load_settings\n"
         "with run_lock(load_settings()):\n    print('locked', flush=True)\n    time.sleep(600)\n"],
        cwd=ROOT, env=env_for(settings.data_dir, postgres_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        reg = Registry(settings.registry_path, url=postgres_url)
        assert wait_for_holder(reg, "ingest-run", holder).startswith(f"{holder.pid}@")
        with pytest.raises(LockBusy, match=f"another ingest \\(pid {holder.pid}@"):
            with run_lock(settings):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        started = time.monotonic()
        with run_lock(settings, wait=True, timeout=30):
            assert reg.lock_holder("ingest-run") == f"{os.getpid()}@{os.uname().nodename}"[:60]
        assert time.monotonic() - started < 30
        reg.close()
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_kb_ask_answers_with_a_citation_from_a_postgres_registry(tmp_path: Path, postgres_url: str) -> None:
    env = env_for(tmp_path / "data", postgres_url)
    run = cli("ingest", "run", "--sources", str(notes_sources(tmp_path)), "--quiet", env=env)
    assert run.returncode == 0, run.stderr
    ans = cli("kb", "ask", "When will the harbour bridge reopen?", "--json", env=env)
    assert ans.returncode == 0, ans.stderr
    answer = json.loads(ans.stdout)
    assert not answer["abstained"] and "14 March 2026" in answer["answer"], answer
    assert [c["url"].rsplit("/", 1)[-1] for c in answer["citations"]] == ["bridge.txt"]


def test_a_second_watcher_on_the_same_postgres_registry_is_refused(tmp_path: Path, postgres_url: str) -> None:
    from ingest.scheduler import watch_lock

    settings = make_settings(tmp_path / "data", registry_url=postgres_url)
    elsewhere = make_settings(tmp_path / "other-machine", registry_url=postgres_url)   # another data dir, same registry
    with watch_lock(settings):
        with pytest.raises(LockBusy, match=r"`ingest watch` \(pid \d+@.*\) is already running on the registry "
                                           r"postgresql://kb:\*\*\*@127\.0\.0\.1"):
            with watch_lock(elsewhere):
                pass
        with run_lock(elsewhere):   # the watcher's lock is not the run lock
            pass
    with watch_lock(elsewhere):
        pass


def test_the_app_answers_and_lists_sources_from_a_postgres_registry(tmp_path: Path, postgres_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    env = env_for(tmp_path / "data", postgres_url)
    run = cli("ingest", "run", "--sources", str(notes_sources(tmp_path)), "--quiet", env=env)
    assert run.returncode == 0, run.stderr
    for name in ("KB_DATA_DIR", "KB_REGISTRY_URL", "KB_EMBED_CACHE"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("KB_APP_STREAM_DELAY", "0")
    monkeypatch.delenv("KB_APP_PASSWORD", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not (tmp_path / "data" / "registry.sqlite").exists()
    at.chat_input[0].set_value("When will the harbour bridge reopen?").run()
    turn = at.session_state["kb_history"][-1]
    assert not turn.answer.abstained and "14 March 2026" in turn.answer.answer
    at = at.switch_page("pages/1_Sources.py").run()
    assert not at.exception and int(at.metric[0].value) >= 1


def test_a_registry_reconnects_after_the_server_ends_its_session(tmp_path: Path, postgres_url: str) -> None:
    """A server restart or an idle-session kill ends the connection; the next read or write opens a new one."""
    import psycopg

    writer = Registry(tmp_path / "registry.sqlite", url=postgres_url)
    writer.set_meta("probe", "one")
    reader = Registry(tmp_path / "registry.sqlite", url=postgres_url, readonly=True)
    assert reader.get_meta("probe") == "one"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                               "AND datname = current_database()").fetchall()
    assert killed and all(row[0] for row in killed)
    assert reader.get_meta("probe") == "one"          # reconnected for this read
    writer.set_meta("probe", "two")                   # and for this write
    assert reader.get_meta("probe") == "two"
    reader.close()
    writer.close()


def _kill_lock_session(postgres_url: str, name: str) -> int:
    """End the server session that holds the advisory lock ``name`` (as a server restart or an idle kill would),
    and wait until it has ended."""
    import psycopg

    from kb.registry.database import lock_key

    key = lock_key(name) & 0xFFFFFFFFFFFFFFFF
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        # with a timeout, pg_terminate_backend waits until the session has ended (and its locks are free)
        rows = admin.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                             "AND objsubid = 1 AND classid::bigint = %s AND objid::bigint = %s",
                             (key >> 32, key & 0xFFFFFFFF)).fetchall()
    return len(rows)


def _start_watcher(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch,
                   check_seconds: float) -> tuple[scheduler.Watcher, list[scheduler.WatchEvent], threading.Thread]:
    monkeypatch.setattr(scheduler, "LOCK_CHECK_SECONDS", check_seconds)
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources: []\n", encoding="utf-8")
    events: list[scheduler.WatchEvent] = []
    watcher = scheduler.Watcher(make_settings(tmp_path / "data", registry_url=postgres_url), sources, duration=60,
                                on_event=events.append)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    return watcher, events, thread


def test_a_watcher_that_lost_its_postgres_session_takes_its_lock_again(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    watcher, events, thread = _start_watcher(tmp_path, postgres_url, monkeypatch, check_seconds=0.3)
    me = f"{os.getpid()}@{os.uname().nodename}"[:60]
    reg = Registry(tmp_path / "registry.sqlite", url=postgres_url)
    try:
        deadline = time.monotonic() + 30
        while reg.lock_holder("ingest-watch") != me:
            assert time.monotonic() < deadline and thread.is_alive(), [e.message for e in events]
            time.sleep(0.1)
        assert _kill_lock_session(postgres_url, "ingest-watch") == 1
        deadline = time.monotonic() + 30
        while not any(e.kind == "lock" for e in events):
            assert time.monotonic() < deadline, [e.message for e in events]
            time.sleep(0.1)
        assert reg.lock_holder("ingest-watch") == me          # held again, on a new session
        assert not reg.try_lock("ingest-watch")               # so a second watcher is still refused
        assert thread.is_alive() and not watcher.lost_lock
    finally:
        watcher.stop()
        thread.join(timeout=30)
        reg.close()
    assert not thread.is_alive()


def test_a_watcher_stops_when_another_took_its_lock_while_its_session_was_lost(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    watcher, events, thread = _start_watcher(tmp_path, postgres_url, monkeypatch, check_seconds=2.0)
    other = Registry(tmp_path / "registry.sqlite", url=postgres_url)   # the "other machine's" watcher session
    try:
        deadline = time.monotonic() + 30
        while not other.lock_holder("ingest-watch"):
            assert time.monotonic() < deadline and thread.is_alive(), [e.message for e in events]
            time.sleep(0.1)
        for _ in range(5):   # kill, then take it before the watcher's next check (retried if the watcher won)
            assert _kill_lock_session(postgres_url, "ingest-watch") == 1
            if other.try_lock("ingest-watch"):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the watcher always retook its lock first")
        thread.join(timeout=30)
        assert not thread.is_alive() and watcher.lost_lock
        assert any(e.kind == "error" and "another `ingest watch`" in e.message and "stopping this one" in e.message
                   for e in events), [e.message for e in events]
    finally:
        watcher.stop()
        thread.join(timeout=30)
        other.close()


@pytest.mark.parametrize("taken", [True, False], ids=["another-run-took-it", "nobody-took-it"])
def test_a_run_that_lost_its_postgres_lock_stops_or_takes_it_again(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, taken: bool) -> None:
    """The run lock's session is ended (as a server restart would) right after the first document is written.
    When another ingest took the lock in the gap the run stops before the next document (``LockLost``);
    when nobody did, the run takes it again and finishes. The real server ends the real session; only
    the moment is chosen by wrapping ``Ingestor.commit``."""
    from ingest import lock as locks
    from ingest import pipeline
    from ingest.lock import LockLost
    from ingest.pipeline import run_ingest
    from ingest.sources import load_sources

    monkeypatch.setattr(locks, "RUN_LOCK_CHECK_SECONDS", 0.0)   # check before every document
    settings = make_settings(tmp_path / "data", registry_url=postgres_url)
    other = Registry(tmp_path / "registry.sqlite", url=postgres_url)   # the "other machine's" ingest
    commit = pipeline.Ingestor.commit
    calls: list[str] = []

    def commit_then_lose_the_lock(self, p, rep) -> None:   # type: ignore[no-untyped-def]
        commit(self, p, rep)
        if not calls:
            assert _kill_lock_session(postgres_url, "ingest-run") == 1
            if taken:
                assert other.try_lock("ingest-run")
        calls.append(p.doc_id)

    monkeypatch.setattr(pipeline.Ingestor, "commit", commit_then_lose_the_lock)
    try:
        sources = load_sources(notes_sources(tmp_path))
        reg = Registry(tmp_path / "registry.sqlite", url=postgres_url)
        if taken:
            with pytest.raises(LockLost, match="lost its lock .* another ingest .* took it: stopped before"):
                run_ingest(settings, sources, progress=False)
            assert len(calls) == 1 and len(reg.documents()) == 1
            assert reg.runs()[0]["status"] == "failed"
        else:
            report = run_ingest(settings, sources, progress=False)
            assert report.exit_code == 0 and len(calls) == 2 and len(reg.documents()) == 2
        reg.close()
    finally:
        other.close()

"""The app keeps answering while an ingest writes, and new documents become answerable without a restart.

A long-lived query process (what the Streamlit app is: one process holding one ``Engine``) asks a
question every 100 ms (plain, filtered and ``--as-of`` questions, so both the store's fast path and
its filtered ``where`` path are exercised) while ``python -m ingest run`` adds documents in another
process, against the same embedded Chroma directory and registry. No question may fail, and the new
document must be cited once the ingest has indexed it (chroma-core/chroma#3792 is why this needs care:
an embedded client does not see another process's vectors until it is re-opened).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from ingest.sources import load_sources
from tests.fixtures.faults import article_text, wait_until, write_article
from tests.fixtures.settings import ROOT, make_settings

pytestmark = pytest.mark.integration

NEW_TOPIC = ("The Zephyr Lighthouse Accord was signed by the harbour authority on 3 March 2026. "
             "Under the accord, the harbour authority must publish every lighthouse inspection report within "
             "ten days. The accord also created an independent Zephyr beacon review board.")
NEW_QUESTION = "What must the harbour authority publish under the Zephyr Lighthouse Accord?"

QUERY_LOOP = textwrap.dedent("""
    import json, sys, time, traceback
    from datetime import datetime, timezone
    from kb.answer.engine import get_engine
    from kb.retrieval.filters import Filters
    from kb.settings import load_settings

    out, stop = sys.argv[1], sys.argv[2]
    questions = [(sys.argv[3], {}), (sys.argv[4], {"doctype": "news"}), (sys.argv[3], {"as_of": "NOW"}),
                 (sys.argv[3], {"language": "en"})]
    engine = get_engine(load_settings())
    engine.warm_up()
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"ready": True, "t": time.time()}) + "\\n"); fh.flush()
        i = 0
        while True:
            try:
                open(stop).close()
                break
            except FileNotFoundError:
                pass
            q, f = questions[i % len(questions)]
            i += 1
            if f.get("as_of") == "NOW":
                f = {"as_of": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            t = time.time()
            rec = {"t": t, "q": q, "filters": f}
            try:
                ans = engine.ask(q, filters=Filters(**f))
                rec.update(ok=True, abstained=ans.abstained, urls=sorted({c.url for c in ans.citations}),
                           quotes=[c.quote for c in ans.citations])
            except Exception as exc:
                rec.update(ok=False, error=f"{type(exc).__name__}: {exc}", tb=traceback.format_exc())
            rec["took"] = time.time() - t
            fh.write(json.dumps(rec) + "\\n"); fh.flush()
            time.sleep(max(0.0, 0.1 - (time.time() - t)))
""")


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_queries_every_100ms_never_fail_while_an_ingest_writes(tmp_path) -> None:
    base, more = tmp_path / "base", tmp_path / "more"
    base.mkdir()
    more.mkdir()
    for n in range(3):
        write_article(base / f"b{n}.txt", 800 + n)
    for n in range(12):
        write_article(more / f"m{n:02d}.txt", 900 + n, sentences=6)
    (more / "zephyr.txt").write_text("Zephyr Lighthouse Accord\n\n" + NEW_TOPIC + "\n", encoding="utf-8")
    first = tmp_path / "first.yaml"
    first.write_text(f"sources:\n  - name: base\n    path: {base}\n    doctype: news\n", encoding="utf-8")
    both = tmp_path / "both.yaml"
    both.write_text(first.read_text(encoding="utf-8") + f"  - name: more\n    path: {more}\n    doctype: news\n",
                    encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    assert run_ingest(settings, load_sources(first), progress=False).exit_code == 0

    log, stop = tmp_path / "queries.jsonl", tmp_path / "stop"
    script = tmp_path / "query_loop.py"
    script.write_text(QUERY_LOOP, encoding="utf-8")
    env = {**os.environ, "KB_DATA_DIR": str(settings.data_dir), "KB_EMBED_CACHE": str(settings.embed_cache_path),
           "PYTHONPATH": str(ROOT), "KB_EMBED_THREADS": "1"}
    old_question = " ".join(article_text(800)[1][0].split()[:12]) + "?"
    querier = subprocess.Popen([sys.executable, str(script), str(log), str(stop), NEW_QUESTION, old_question],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: any(r.get("ready") for r in read_log(log)) or querier.poll() is not None, 180)
        assert querier.poll() is None, querier.stderr.read()
        time.sleep(1.0)
        # The ingest embeds with a fresh cache so that its writes are spread over several seconds.
        ingest_env = {**env, "KB_EMBED_CACHE": str(tmp_path / "ingest-cache.sqlite"), "KB_EMBED_THREADS": "1"}
        t_start = time.time()
        ingest = subprocess.run([sys.executable, "-m", "ingest", "run", "--sources", str(both), "--quiet"], cwd=ROOT,
                                env=ingest_env, capture_output=True, text=True, timeout=600)
        t_end = time.time()
        assert ingest.returncode == 0, ingest.stderr

        def answered_new() -> bool:
            return any(r.get("ok") and r["t"] > t_end and r["q"] == NEW_QUESTION and not r["filters"]
                       and any("zephyr" in u for u in r["urls"]) for r in read_log(log))
        assert wait_until(answered_new, 30), "the new document never became answerable without a restart"
        time.sleep(0.5)
    finally:
        stop.touch()
        try:
            querier.wait(timeout=30)
        except subprocess.TimeoutExpired:
            querier.kill()
    records = [r for r in read_log(log) if "q" in r]
    failures = [r for r in records if not r["ok"]]
    assert not failures, failures[0]["tb"]
    during = [r for r in records if t_start <= r["t"] <= t_end]
    assert len(during) >= 20, f"only {len(during)} queries ran during the {t_end - t_start:.1f}s ingest"
    assert {next(iter(r["filters"]), "none") for r in during} == {"none", "doctype", "as_of", "language"}
    before = [r for r in records if r["t"] < t_start and r["q"] == NEW_QUESTION]
    assert before and not any(any("zephyr" in u for u in r["urls"]) for r in before)
    first_new = min(r["t"] for r in records if r["t"] > t_start and any("zephyr" in u for u in r.get("urls", [])))
    slow = sorted(r["took"] for r in records)[int(len(records) * 0.95)]
    print(f"\n{len(records)} queries, {len(during)} during the {t_end - t_start:.1f}s ingest, 0 failed; "
          f"new document cited {first_new - t_end:+.1f}s after the ingest ended; p95 {slow * 1000:.0f} ms")

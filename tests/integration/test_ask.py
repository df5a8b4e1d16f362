"""``kb ask`` / ``kb eval`` on a real index of ../shared (real pipeline, real embedder, real Chroma)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path

import pytest

from kb.answer.engine import Engine
from kb.answer.phrases import phrases
from kb.retrieval.filters import Filters

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CONTRACT_KEYS = {"question", "question_language", "answer", "answer_language", "abstained", "citations", "passages"}
CITATION_KEYS = {"n", "doc_id", "version_id", "chunk_id", "title", "publisher", "url", "doctype", "language",
                 "published", "retrieved", "quote", "start", "end"}


@pytest.fixture(scope="module")
def engine(shared_index):
    eng = Engine(shared_index)
    eng.warm_up()
    yield eng
    eng.close()


def env_for(settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KB_DATA_DIR=str(settings.data_dir), KB_EMBED_CACHE=str(settings.embed_cache_path),
               KB_EMBED_THREADS="2", HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    return env


def run_kb(settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kb", *args], cwd=ROOT, env=env_for(settings), input=stdin,
                          capture_output=True, text=True, timeout=300)


def assert_verified(engine: Engine, answer) -> None:
    for c in answer.citations:
        assert engine.registry.version_text(c.version_id)[c.start:c.end] == c.quote


@pytest.mark.parametrize("question,lang,expect", [
    ("In which court did Musk testify that xAI used OpenAI models to train Grok?", "en", "court"),
    ("哪些公司一直在打击通过提示词来训练新模型的蒸馏行为？", "zh", "OpenAI"),
    ("OpenAI की Terms of Service API outputs के किस उपयोग को prohibit करती है?", "hi", "compet"),
    ("¿La política de uso de Anthropic permite el raspado de modelos (model scraping)?", "es", "scraping"),
])
def test_answers_in_the_question_language_with_verbatim_quotes(engine, question, lang, expect) -> None:
    ans = engine.ask(question)
    assert ans.question_language == lang and ans.answer_language == lang
    assert not ans.abstained, ans.answer
    assert ans.citations and all(f"[{c.n}]" in ans.answer for c in ans.citations)
    assert ans.answer.startswith(phrases(lang).intro)
    assert expect.casefold() in (ans.answer + " ".join(c.quote for c in ans.citations)).casefold()
    assert_verified(engine, ans)


@pytest.mark.parametrize("question,lang", [
    ("What stock price did xAI reach after the testimony?", "en"),          # on topic, fact absent
    ("How many tokens did xAI use to train Grok?", "en"),                   # on topic, number absent
    ("Wie hoch war die Strafe, die Grok wegen Urheberrechtsverletzung zahlen musste?", "de"),
    ("明日の東京の天気はどうなりますか？", "ja"),                                # off topic
    ("Quelle est la capitale de l'Australie ?", "fr"),
])
def test_abstains_in_the_question_language(engine, question, lang) -> None:
    ans = engine.ask(question)
    assert ans.abstained, ans.answer
    assert ans.citations == []
    assert ans.answer == phrases(lang).abstain
    assert ans.passages, "retrieval still reports what it ranked"


def test_filters_restrict_every_passage(engine) -> None:
    ans = engine.ask("What do the terms say about using outputs to build competing models?",
                     filters=Filters(publisher="anthropic", doctype="tos"))
    assert ans.passages
    assert all("anthropic" in p.publisher.casefold() and p.doctype == "tos" for p in ans.passages)
    court = engine.ask("Who is the judge?", filters=Filters(doctype="court", since="2025-01-01"))
    assert all(p.doctype == "court" and p.published >= "2025-01-01" for p in court.passages)
    nothing = engine.ask("Who is the judge?", filters=Filters(language="sw"))
    assert nothing.abstained and not nothing.passages


def test_latest_version_by_default_for_documents_sharing_a_url(engine) -> None:
    """The 2025 and 2026 xAI policies share one URL: only the 2026 text answers by default."""
    ans = engine.ask("Does the xAI Acceptable Use Policy forbid distilling model outputs?", top_k=10)
    xai = [p for p in ans.passages if "x.ai" in p.url]
    assert xai and all(p.published == "2026-06-26" for p in xai)


def test_quote_offsets_point_into_the_stored_version(engine) -> None:
    ans = engine.ask("Above how many monthly active users must a Llama 2 licensee request a license from Meta?")
    assert not ans.abstained
    assert any("700 million" in c.quote for c in ans.citations)
    assert_verified(engine, ans)


def test_answer_latency_after_load(engine) -> None:
    questions = ["Which court order denied Musk's motion for a preliminary injunction?",
                 "¿Qué ley rige los términos de Anthropic para consumidores?",
                 "Llama 2 のライセンス契約はどの州の法律に準拠していますか？"]
    engine.ask(questions[0])  # warm the sentence cache path once
    times = []
    for q in questions:
        t = time.perf_counter()
        engine.ask(q)
        times.append(time.perf_counter() - t)
    assert max(times) < 5.0, times  # the 2 s budget is for an idle 2-core machine; CI shares its cores


def test_cli_ask_json_contract(shared_index, engine) -> None:
    r = run_kb(shared_index, "ask", "Which section of the OpenAI Services Agreement lists the customer restrictions?",
               "--json", "--top-k", "5")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= CONTRACT_KEYS
    assert len(out["passages"]) <= 5
    assert out["citations"] and all(set(c) >= CITATION_KEYS for c in out["citations"])
    for c in out["citations"]:
        assert engine.registry.version_text(c["version_id"])[c["start"]:c["end"]] == c["quote"]


def test_cli_batch_jsonl_one_answer_per_line(shared_index, tmp_path) -> None:
    batch = tmp_path / "q.jsonl"
    batch.write_text('{"question": "Who testified about distillation?"}\n'
                     '{"question": "Quelle est la capitale de l\'Australie ?"}\n', encoding="utf-8")
    r = run_kb(shared_index, "ask", "--batch", str(batch), "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["abstained"] for x in lines] == [False, True]


def test_cli_bad_invocations_exit_2_with_one_line(shared_index, tmp_path) -> None:
    r = run_kb(shared_index, "ask", "anything", "--since", "yesterday")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "YYYY-MM-DD" in r.stderr
    r = run_kb(shared_index.with_(data_dir=tmp_path / "none"), "ask", "anything")
    assert r.returncode == 2 and "ingest run" in r.stderr
    r = run_kb(shared_index, "eval", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_cli_eval_on_dev_questions(shared_index, shared_dir) -> None:
    r = run_kb(shared_index, "eval", str(shared_dir / "eval" / "dev_questions.jsonl"), "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)["metrics"]
    assert m["quotes_verified"] == 1.0
    assert m["hit@5"] >= 0.85
    assert m["false_abstention"] <= 0.15
    assert m["correct_abstention"] >= 0.5


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, shared_dir):
    """A tiny index: one article, a syndicated copy of it, and a page that changes between two runs."""
    from ingest.pipeline import run_ingest
    from ingest.sources import load_sources
    from tests.fixtures.settings import make_settings

    root = tmp_path_factory.mktemp("small-index")
    folder = root / "docs"
    folder.mkdir()
    article = (shared_dir / "seeds" / "seed-summary-1.txt").read_text(encoding="utf-8")
    (folder / "original.txt").write_text(article, encoding="utf-8")
    (folder / "syndicated-copy.txt").write_text(article, encoding="utf-8")
    policy = folder / "policy.md"
    policy.write_text("# Example policy\n\nCustomers may share outputs with anyone for any purpose whatsoever.\n",
                      encoding="utf-8")
    src = root / "sources.yaml"
    src.write_text(f"sources:\n  - name: docs\n    path: {folder}\n    doctype: news\n", encoding="utf-8")
    settings = make_settings(root / "data")
    run_ingest(settings, load_sources(src), progress=False)
    time.sleep(1.1)  # the second version starts at a later second
    policy.write_text("# Example policy\n\nCustomers must never use outputs to train competing models.\n",
                      encoding="utf-8")
    run_ingest(settings, load_sources(src), progress=False)
    eng = Engine(settings)
    yield eng
    eng.close()


def test_syndicated_copy_is_named_also_reported_by_not_cited_twice(small_index) -> None:
    ans = small_index.ask("In which courtroom did Elon Musk confirm that xAI used OpenAI's models to train Grok?")
    assert not ans.abstained, ans.answer
    docs = {c.doc_id for c in ans.citations}
    assert len(docs) == 1, "the copy is never cited next to the original"
    also = [a["url"] for c in ans.citations for a in c.also_reported_by]
    assert any(u.endswith(("syndicated-copy.txt", "original.txt")) for u in also), ans.citations
    assert_verified(small_index, ans)


def test_as_of_answers_from_the_version_held_then(small_index) -> None:
    reg = small_index.registry
    doc = next(d for d in reg.documents() if d["location"].endswith("policy.md"))
    old, new = reg.versions(doc["doc_id"])
    q = "What may customers do with outputs under the example policy?"
    latest = small_index.ask(q, top_k=3)
    assert all(p.version_id != old.version_id for p in latest.passages)
    from datetime import datetime

    from kb.times import iso

    then = iso(datetime.fromtimestamp(old.valid_from, tz=UTC))
    earlier = small_index.ask(q, filters=Filters(as_of=then), top_k=3)
    ids = {p.version_id for p in earlier.passages}
    assert old.version_id in ids and new.version_id not in ids
    assert all(c.version_id != new.version_id for c in earlier.citations)
    assert_verified(small_index, earlier)


def test_a_loaded_engine_sees_documents_ingested_later(small_index, monkeypatch) -> None:
    import kb.retrieval.retriever
    from ingest.pipeline import run_ingest
    from ingest.sources import load_sources

    root = small_index.settings.data_dir.parent
    (root / "docs" / "late.md").write_text(
        "# Late notice\n\nThe zeppelin hangar in Friedrichshafen opens to visitors every Sunday morning.\n",
        encoding="utf-8")
    run_ingest(small_index.settings, load_sources(root / "sources.yaml"), progress=False)
    monkeypatch.setattr(kb.retrieval.retriever, "RELOAD_CHECK_SECONDS", 0.0)  # in use it looks once a second
    ans = small_index.ask("When does the zeppelin hangar open to visitors?", top_k=3)
    assert ans.passages and ans.passages[0].url.endswith("late.md")

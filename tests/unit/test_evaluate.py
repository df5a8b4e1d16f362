"""``kb eval`` metrics without an index: containment, per-language rates, bootstrap intervals, a fake engine."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from kb.evaluate import (
    bootstrap_ci,
    contains_gold,
    evaluate,
    evidence_hits,
    format_report,
    gold_strings,
    load_questions,
    normalise,
    overlaps,
    summarise,
)
from kb.models import Citation, Passage


def row(qid: str, lang: str, *, unanswerable: bool = False, abstained: bool = False, rank: int | None = None,
        contained: bool | None = None, keyword: bool = False, latency: float = 0.05) -> dict:
    return {"id": qid, "lang": lang, "unanswerable": unanswerable, "abstained": abstained, "rank": rank,
            "contained": contained, "keyword": keyword, "latency": latency, "retrieval": 0.01,
            "citations": 0 if abstained else 1, "verified": 0 if abstained else 1, "reason": "", "top_files": []}


# -- containment -----------------------------------------------------------------------------------
def test_normalise_folds_case_and_whitespace() -> None:
    assert normalise("  The\u00a0Saxon\n\tGARDEN ") == "the saxon garden"
    assert normalise("Straße") == normalise("STRASSE")


def test_gold_strings_joins_keywords_and_gold_answers_once() -> None:
    q = {"keywords": ["Saxon Garden", ""], "gold_answer_en": "Saxon Garden", "gold_answer": "Jardín Sajón"}
    assert gold_strings(q) == ["Saxon Garden", "Jardín Sajón"]
    assert gold_strings({"keywords": [], "gold_answer_en": "   "}) == []
    assert gold_strings({"keywords": "1973"}) == ["1973"]


def test_contains_gold_in_answer_or_quote_ignoring_case_and_line_breaks() -> None:
    assert contains_gold(["Answer text [1]", "it was built in the Saxon\n  Garden in 1748"], ["saxon garden"])
    assert contains_gold(["OGRÓD  SASKI is the name"], ["Ogród Saski"])
    assert not contains_gold(["the Saxon Gardens' wall"], ["Saxon Garden wall"])
    assert not contains_gold(["anything"], [])
    assert not contains_gold([], ["anything"])


# -- quotes against gold evidence -------------------------------------------------------------------
PARA = ("We collect the device identifiers you provide. We share location data with advertising partners "
        "only with your consent. You may withdraw that consent at any time in the settings.")


def test_overlap_needs_containment_or_a_long_shared_run() -> None:
    assert overlaps(normalise("we share location data with advertising partners"), normalise(PARA))
    assert overlaps(normalise(PARA), normalise("location data"))            # the quote holds the span
    # A quote that runs past the passage still overlaps it by a long shared run.
    assert overlaps(normalise("that consent at any time in the settings. Other section: cookies are small files."), normalise(PARA))
    assert not overlaps(normalise("you may withdraw from the programme"), normalise(PARA))  # 17 shared chars
    assert not overlaps("", normalise(PARA))


def test_evidence_hits_quote_in_passage_and_on_span() -> None:
    q = {"gold_evidence": PARA, "gold_span": "only with your consent", "unanswerable": False}
    on_span = "We share location data with advertising partners only with your consent."
    assert evidence_hits(q, [on_span], abstained=False) == (True, True)
    assert evidence_hits(q, ["We collect the device identifiers you provide."], False) == (True, False)
    # The span's words in another passage do not count while a gold passage is given.
    assert evidence_hits(q, ["Transfers happen only with your consent, says another policy."], False) == (False, False)
    assert evidence_hits(q, [on_span], abstained=True) == (False, False)
    assert evidence_hits({"gold_span": "seven", "unanswerable": False}, ["It has seven layers."], False) == (None, True)
    assert evidence_hits({"unanswerable": False}, [on_span], False) == (None, None)
    assert evidence_hits({**q, "unanswerable": True}, [on_span], False) == (None, None)


# -- bootstrap -------------------------------------------------------------------------------------
def test_bootstrap_is_deterministic_and_brackets_the_mean() -> None:
    values = [1.0] * 30 + [0.0] * 70
    a, b = bootstrap_ci(values), bootstrap_ci(values)
    assert a == b
    low, high = a
    assert low < 0.3 < high
    # The normal approximation: 0.3 +- 1.96 * sqrt(0.3 * 0.7 / 100) = [0.21, 0.39].
    assert low == pytest.approx(0.21, abs=0.03) and high == pytest.approx(0.39, abs=0.03)
    assert bootstrap_ci(values, seed=1) != a or bootstrap_ci(values, seed=2) != a


def test_bootstrap_degenerate_cases() -> None:
    assert bootstrap_ci([]) is None
    assert bootstrap_ci([1.0, 1.0, 1.0]) == [1.0, 1.0]
    assert bootstrap_ci([0.0]) == [0.0, 0.0]
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 0.0], clusters=["a"])


def test_bootstrap_resamples_clusters_together() -> None:
    """The same question in several languages is one draw: the interval is wider than if independent."""
    values = [1.0] * 20 + [0.0] * 20
    ids = [f"q{i}" for i in range(40)]
    independent = bootstrap_ci(values * 4, clusters=[f"{lang}-{i}" for lang in "abcd" for i in ids])
    clustered = bootstrap_ci(values * 4, clusters=ids * 4)
    assert clustered == bootstrap_ci(values)  # four identical copies of each cluster change nothing
    assert clustered[1] - clustered[0] > 1.5 * (independent[1] - independent[0])


# -- summaries -------------------------------------------------------------------------------------
@pytest.fixture
def rows() -> list[dict]:
    return [
        row("q1", "en", rank=1, contained=True, keyword=True),
        row("q2", "en", rank=3, contained=False),
        row("q3", "en", rank=None, abstained=True, contained=False),
        row("q4", "en", unanswerable=True, abstained=True),
        row("q1", "hi", rank=2, contained=True),
        row("q2", "hi", rank=None, contained=None),          # no gold string: out of the containment rate
        row("q4", "hi", unanswerable=True, abstained=False),
        row("q5", "hi", unanswerable=True, abstained=True),
    ]


def test_summarise_overall_rates(rows: list[dict]) -> None:
    m = summarise(rows)["metrics"]
    assert (m["questions"], m["answerable"], m["unanswerable"]) == (8, 5, 3)
    assert m["hit@1"] == pytest.approx(1 / 5)
    assert m["hit@5"] == pytest.approx(3 / 5)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 5)
    assert m["answer_containment"] == pytest.approx(2 / 4) and m["answer_containment_n"] == 4
    assert m["keyword_accuracy"] == pytest.approx(1 / 5)
    assert m["false_abstention"] == pytest.approx(1 / 5)
    assert m["correct_abstention"] == pytest.approx(2 / 3)
    for name in ("hit@1", "hit@5", "mrr", "answer_containment", "false_abstention", "correct_abstention"):
        low, high = m["ci95"][name]
        assert low <= m[name] <= high, name
    assert m["bootstrap"]["resamples"] == 1000


def test_summarise_per_language_rows(rows: list[dict]) -> None:
    by = summarise(rows)["metrics"]["by_language"]
    assert set(by) == {"en", "hi"}
    en, hi = by["en"], by["hi"]
    assert (en["n"], en["answerable"], en["unanswerable"]) == (3, 3, 1)
    assert en["hit@1"] == pytest.approx(1 / 3) and en["hit@5"] == pytest.approx(2 / 3)
    assert en["mrr"] == pytest.approx((1 + 1 / 3) / 3)
    assert en["answer_containment"] == pytest.approx(1 / 3)
    assert en["false_abstention"] == pytest.approx(1 / 3) and en["correct_abstention"] == 1.0
    assert hi["hit@1"] == 0.0 and hi["hit@5"] == 0.5 and hi["mrr"] == pytest.approx(0.25)
    assert hi["answer_containment"] == 1.0 and hi["answer_containment_n"] == 1
    assert hi["false_abstention"] == 0.0 and hi["correct_abstention"] == 0.5
    assert en["ci95"]["correct_abstention"] == [1.0, 1.0]
    assert hi["ci95"]["answer_containment"] == [1.0, 1.0]


def test_language_without_answerable_questions_has_no_rates() -> None:
    m = summarise([row("a", "en", rank=1, contained=True), row("b", "de", unanswerable=True, abstained=True)])
    de = m["metrics"]["by_language"]["de"]
    assert de["n"] == 0 and de["hit@1"] is None and de["ci95"]["hit@1"] is None and de["correct_abstention"] == 1.0
    text = format_report(m, details=True)
    assert "answer containment   1.000" in text and "de" in text


# -- question files and a fake engine -----------------------------------------------------------------
def test_load_questions_old_and_xquad_formats(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in [
        {"id": "a", "lang": "en", "question": "Where?", "supporting": ["doc-a", "doc-b"], "keywords": ["x", "y"]},
        {"lang": "de", "question": "Wann?", "supporting": [], "keywords": []},
        {"id": "c", "lang": "es", "question": "¿Qué?", "supporting": ["Geology"], "keywords": ["rocks"],
         "gold_answer_en": "rocks", "gold_answer": "rocas"},
    ]) + "\n", encoding="utf-8")
    qs = load_questions(path)
    assert [q["unanswerable"] for q in qs] == [False, True, False]
    assert qs[1]["id"] == "q002"
    assert gold_strings(qs[0]) == ["x", "y"] and gold_strings(qs[2]) == ["rocks", "rocas"]


TEXT = "Geology studies rocks. James Hutton is often viewed as the first modern geologist. The end."


class FakeEngine:
    """Just what ``evaluate`` reads: a registry (documents, versions, texts) and ``ask``."""

    def __init__(self, answers: dict[str, tuple[bool, list[tuple[str, str]], list[str]]]) -> None:
        docs = {"d-geo": "/data/corpus/Geology.md", "d-fresno": "/data/corpus/Fresno_California.md"}
        self.answers = answers
        self.registry = SimpleNamespace(
            document=lambda doc_id: {"doc_id": doc_id, "url": f"https://en.wikipedia.org/wiki/{doc_id}",
                                     "location": docs[doc_id]},
            version=lambda vid: SimpleNamespace(meta={}, title=""),
            version_text=lambda vid: TEXT)

    def warm_up(self) -> None:
        pass

    def ask(self, question: str, top_k: int = 8) -> SimpleNamespace:
        abstained, quotes, docs = self.answers[question]
        cites = []
        for i, (doc, quote) in enumerate(quotes, start=1):
            s = TEXT.find(quote)
            cites.append(Citation(n=i, doc_id=doc, version_id=f"v-{doc}", chunk_id=f"v-{doc}-0", title="",
                                  publisher="", url="", doctype="other", language="en", published="",
                                  retrieved="", quote=quote, start=s, end=s + len(quote)))
        passages = [Passage(chunk_id=f"v-{d}-0", doc_id=d, version_id=f"v-{d}", text="", start=0, end=0)
                    for d in docs]
        # An abstention may echo the question (and so the gold string): it still contains no answer.
        answer = f"The sources do not say: {question}" if abstained else " ".join(f"{q} [{i}]" for i, (_, q) in
                                                                     enumerate(quotes, start=1))
        return SimpleNamespace(question_language="en", answer=answer, abstained=abstained, citations=cites,
                               passages=passages, timings={"dense": 0.01}, reason="weak" if abstained else "")


def test_evaluate_maps_markdown_files_and_checks_containment() -> None:
    engine = FakeEngine({
        "Who was the first modern geologist?": (
            False, [("d-geo", "James Hutton is often viewed as the first modern geologist.")], ["d-fresno", "d-geo"]),
        "What does geology study?": (False, [("d-geo", "The end.")], ["d-geo"]),
        "Who founded Fresno?": (True, [], ["d-geo"]),
        "What did Hutton eat?": (False, [("d-geo", "Geology studies rocks.")], ["d-geo"]),
    })
    questions = [
        {"id": "1", "lang": "en", "question": "Who was the first modern geologist?", "supporting": ["Geology"],
         "keywords": ["James  HUTTON"], "unanswerable": False},
        {"id": "2", "lang": "en", "question": "What does geology study?", "supporting": ["Geology"],
         "keywords": [], "gold_answer_en": "rocks", "unanswerable": False},
        {"id": "3", "lang": "en", "question": "Who founded Fresno?", "supporting": ["Fresno_California"],
         "keywords": ["Fresno"], "unanswerable": False},
        {"id": "4", "lang": "en", "question": "What did Hutton eat?", "supporting": [], "keywords": [],
         "unanswerable": True},
    ]
    report = evaluate(engine, questions)
    got = {r["id"]: r for r in report["questions"]}
    assert got["1"]["top_files"] == ["Fresno_California", "Geology"] and got["1"]["rank"] == 2
    assert got["1"]["contained"] is True and got["1"]["verified"] == 1
    assert got["2"]["contained"] is False                  # the quote does not say "rocks"
    assert got["3"]["contained"] is False and got["3"]["rank"] is None  # abstained; Fresno not retrieved
    assert got["4"]["contained"] is None
    m = report["metrics"]
    assert m["answer_containment"] == pytest.approx(1 / 3)
    assert m["hit@1"] == pytest.approx(1 / 3) and m["mrr"] == pytest.approx((0.5 + 1) / 3)
    assert m["false_abstention"] == pytest.approx(1 / 3) and m["correct_abstention"] == 0.0
    assert m["evidence_hit_n"] == 0 and m["evidence_hit"] is None  # no question gives a gold passage

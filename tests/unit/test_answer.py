"""Extractive answer logic without an index: sentence spans, answer types, abstention, composition."""
from __future__ import annotations

import numpy as np
import pytest

from kb.answer import phrases as templates
from kb.answer.abstention import Thresholds, abstain_reason
from kb.answer.answer_types import asked_type, carries_type
from kb.answer.engine import question_language
from kb.answer.quotes import choose_quotes
from kb.answer.scoring import Candidate
from kb.models import Passage
from kb.retrieval.retriever import FusedHit, Retrieval
from kb.text.spans import candidate_spans


def passage(vid: str = "v1", lang: str = "en") -> Passage:
    return Passage(chunk_id=f"{vid}-0000", doc_id="d", version_id=vid, text="", start=0, end=0, language=lang)


def cand(text: str, dense: float, score: float | None = None, start: int = 0, vid: str = "v1") -> Candidate:
    return Candidate(passage(vid), 0, start, start + len(text), text, lex=0.5, dense=dense,
                     score=dense if score is None else score)


def retrieval(top_dense: float, median: float | None = None) -> Retrieval:
    """A retrieval whose best dense candidate has ``top_dense`` and whose other candidates sit at ``median``."""
    median = top_dense - 0.08 if median is None else median
    return Retrieval(passages=[passage()], hits=[FusedHit(row=0, fused=0.1, dense=top_dense)], query_tokens=[],
                     query_vector=np.zeros(3), dense_scores=[top_dense] + [median] * 19)


@pytest.mark.parametrize("q,kind", [
    ("How many tokens did xAI use?", "quantity"),
    ("What stock price did xAI reach after the testimony?", "amount"),
    ("Wie hoch war die Strafe, die Grok zahlen musste?", "amount"),
    ("Quanto a OpenAI pagou de indenização a Musk?", "amount"),
    ("¿Cuántos empleados tiene xAI?", "quantity"),
    ("xAI ने कितने tokens इस्तेमाल किए?", "quantity"),
    ("xAI 使用了多少个令牌？", "quantity"),
    ("When was the order denying the injunction issued?", "date"),
    ("Quand le procès a-t-il commencé ?", "date"),
    ("An welchem Tag ging xAI an die Börse?", "day"),
    ("On what day did Musk testify?", "day"),
    ("马斯克是哪天出庭作证的？", "day"),
    ("In which court did Musk testify?", None),
])
def test_asked_type(q: str, kind: str | None) -> None:
    assert asked_type(q) == kind


def test_carries_type() -> None:
    assert carries_type("He characterized xAI as a company with a few hundred employees.", "quantity")
    assert not carries_type("Musk said distillation was a general practice.", "quantity")
    assert carries_type("The order was filed on March 4, 2025.", "date")
    assert not carries_type("The court denied the motion.", "date")
    assert carries_type("anything", None)
    assert carries_type("The court awarded $2.5 million in damages.", "amount")
    # A list's item number is not a quantity.
    assert not carries_type("3. ChatGPT Enterprise, Edu, Healthcare and Business", "quantity")
    assert carries_type("3 ChatGPT plans are offered to businesses.", "quantity")
    # A year does not say on which day; a day with its month does, in the sources' languages too.
    assert not carries_type("xAI, which started in 2023, would try to learn from the leader.", "day")
    assert carries_type("The order was filed on March 4, 2025.", "day")
    assert carries_type("Musk declaró el 30 de abril ante el tribunal.", "day")
    assert carries_type("Die Anhörung fand am 4. März statt.", "day")
    assert carries_type("马斯克于4月30日出庭作证。", "day")
    assert not carries_type("Musk was one of OpenAI's largest donors in 2016.", "amount")
    assert not carries_type("Defendants[1] move for summary judgment (Dkt. No. 390).", "quantity")


def test_abstains_when_nothing_stands_out_from_the_background() -> None:
    th = Thresholds()
    # Everything about as (dis)similar: the best passage is no better than the median candidate.
    assert "support" in abstain_reason("What is the capital of Peru?", retrieval(0.76, 0.755),
                                       [cand("Lima is far.", 0.75)], th)
    # A strong passage but no sentence that says it.
    assert abstain_reason("What did Musk say?", retrieval(0.86, 0.80), [cand("Musk said it.", 0.70)], th)
    assert abstain_reason("What did Musk say?", retrieval(0.86), [], th)


def test_support_is_relative_to_the_question_and_its_language() -> None:
    from kb.answer.abstention import Evidence, support

    strong = Evidence(passage_dense=0.88, sentence_dense=0.89, median_dense=0.80)
    flat = Evidence(passage_dense=0.88, sentence_dense=0.885, median_dense=0.875)
    assert support(strong) > 0.9 > 0.3 > support(flat)
    # The same margins count for more across languages, where cosines sit lower.
    low = Evidence(passage_dense=0.80, sentence_dense=0.80, median_dense=0.76)
    assert support(Evidence(**{**low.__dict__, "cross_lingual": True})) > support(low)
    # A first document that stands out from the next one, and a best sentence that shares the question's
    # words, are both signs that the index holds the subject.
    assert support(Evidence(**{**low.__dict__, "doc_gap": 0.08})) > support(Evidence(**{**low.__dict__, "doc_gap": 0.0}))
    assert support(Evidence(**{**low.__dict__, "lexical": 0.6})) > support(low)
    # Arabic questions over English passages sit lower still than the average cross-lingual pair.
    xl = {**low.__dict__, "cross_lingual": True}
    assert support(Evidence(**{**xl, "qlang": "ar"})) > support(Evidence(**{**xl, "qlang": "es"}))


def test_abstains_when_the_asked_fact_type_is_missing() -> None:
    th = Thresholds()
    ev = [cand("Musk said xAI partly used distillation on OpenAI models.", 0.88)]
    assert "quantity" in abstain_reason("How many tokens did xAI use?", retrieval(0.88), ev, th)
    assert abstain_reason("Did xAI use OpenAI models?", retrieval(0.88), ev, th) is None


def test_answers_when_evidence_is_strong() -> None:
    th = Thresholds()
    ev = [cand("He characterized xAI as a much smaller company with just a few hundred employees.", 0.9)]
    assert abstain_reason("How many employees does xAI have?", retrieval(0.9), ev, th) is None


def test_choose_quotes_limits_and_skips_overlaps() -> None:
    a = cand("First sentence about the court.", 0.9, start=0)
    b = cand("First sentence about the court and more.", 0.89, start=5)  # overlaps a
    c = cand("A different sentence about distillation practice.", 0.88, start=100)
    d = cand("Weak sentence.", 0.1, start=300)
    chosen = choose_quotes([a, b, c, d])
    assert chosen == [a, c]
    assert choose_quotes([]) == []


def test_candidate_spans_cut_long_sentences_at_clauses() -> None:
    long = "You may not " + ", ".join(f"do thing number {i} with the outputs" for i in range(40)) + "."
    spans = candidate_spans(long, 0, len(long), max_chars=200)
    assert len(spans) > 1
    assert all(e - s <= 200 for s, e in spans)
    assert all(long[s:e] for s, e in spans)


def test_candidate_spans_trim_markdown_and_skip_tiny_pieces() -> None:
    text = "# Title\n\n**3.3 Restrictions.** You will not use Output to develop competing models.\n\n---\n"
    quotes = [text[s:e] for s, e in candidate_spans(text, 0, len(text))]
    assert any(q.startswith("3.3 Restrictions") for q in quotes)
    assert "---" not in quotes and "Title" not in quotes


@pytest.mark.parametrize("lang", ["en", "hi", "zh", "es", "fr", "de", "ja", "pt"])
def test_templates_cover_required_languages(lang: str) -> None:
    p = templates.phrases(lang)
    assert templates.answer_language(lang) == lang
    text = templates.compose(lang, [("Quote one.", 1), ("Quote two.", 2)])
    assert "Quote one." in text and "[1]" in text and "[2]" in text and text.index("[1]") < text.index("[2]")
    assert p.abstain and p.intro


def test_templates_fall_back_to_english() -> None:
    assert templates.answer_language("sw") == "en"
    assert templates.phrases("xx").abstain == templates.PHRASES["en"].abstain


def test_question_language_short_questions() -> None:
    assert question_language("Who is Musk?") == "en"
    assert question_language("¿Qué es xAI?") == "es"
    assert question_language("xAIとは？") == "ja"


def test_candidate_spans_keep_the_section_heading_with_its_first_sentence() -> None:
    text = ("2\\. Provision.\n\n*   3.3. Restrictions. Customer will not, and will not permit End Users to: "
            "(a) break laws; (b) do other bad things.\n*   3.4. Suspension. OpenAI may suspend access.")
    quotes = [text[s:e] for s, e in candidate_spans(text, text.index("Customer"), len(text))]
    assert quotes[0].startswith("3.3. Restrictions. Customer will not")
    assert "3.4. Suspension. OpenAI may suspend access." in quotes
    assert "Restrictions." not in quotes


def test_candidate_spans_rejoin_hard_wrapped_lines() -> None:
    text = ("If, on the release date, the \nmonthly active users of the products \nis greater than 700 million "
            "monthly active users, you must request a license.\n\nNext paragraph starts here again.")
    quotes = [text[s:e] for s, e in candidate_spans(text, 0, len(text))]
    assert quotes[0].startswith("If, on the release date") and quotes[0].endswith("request a license.")


def test_how_many_needs_a_number_of_the_counted_thing() -> None:
    """Regression: "How many tokens did xAI use?" was answered with "twenty-six claims"."""
    from kb.answer.abstention import evidence_of
    from kb.answer.answer_types import counted_terms

    known = {"token", "employe", "claim", "xai"}
    idf = lambda t: 1.0 if t in known else 0.0  # noqa: E731
    assert counted_terms("How many tokens did xAI use?", "en", idf) == ["token"]
    assert counted_terms("¿Cuántos empleados tiene xAI?", "es", idf) == []  # not an index word: not checked
    claims = [cand("xAI assert twenty-six claims against Samuel Altman.", 0.9)]
    ev = evidence_of("How many tokens did xAI use?", retrieval(0.9), claims, "en", idf)
    assert not ev.has_type
    staff = [cand("He characterized xAI as a much smaller company with just a few hundred employees.", 0.9)]
    assert evidence_of("How many employees does xAI have?", retrieval(0.9), staff, "en", idf).has_type


# -- widening a quote to its neighbour sentence ------------------------------------------------------
WIDEN_TEXT = ("The court set a schedule for the motions. Three filings were due in May. The first was the reply.\n\n"
              "A new paragraph starts here with its own sentence.")


def test_neighbours_stay_within_the_paragraph_and_skip_question_windows() -> None:
    from kb.answer.scoring import _neighbours
    spans = candidate_spans(WIDEN_TEXT, 0, len(WIDEN_TEXT))
    before, after = _neighbours(WIDEN_TEXT, spans + [(spans[0][0], spans[1][1])])  # plus a two-sentence window
    first, second, third, fourth = spans
    assert after[first] == second and before[second] == first and after[second] == third
    assert third not in after and fourth not in before  # a blank line ends the paragraph
    assert (spans[0][0], spans[1][1]) not in after


class _ScriptedEmbedder:
    """Scripted vectors (a stand-in: the real encoder gives no cosine on demand): texts that hold "Three
    filings" point at the question, everything else away from it."""

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return np.array([[0.9, 0.436] if "Three filings" in t else [0.0, 1.0] for t in texts], dtype=np.float32)


class _Engine:
    embedder = _ScriptedEmbedder()

    @staticmethod
    def version_text(_vid: str) -> str:
        return WIDEN_TEXT


def test_widen_quotes_takes_the_neighbour_only_when_the_pair_matches_better() -> None:
    from kb.answer.scoring import _neighbours, widen_quotes
    spans = candidate_spans(WIDEN_TEXT, 0, len(WIDEN_TEXT))
    before, after = _neighbours(WIDEN_TEXT, spans)
    s, e = spans[0]
    lead = Candidate(passage(), 0, s, e, WIDEN_TEXT[s:e], dense=0.5, score=1.0, after=after[spans[0]])
    ret = Retrieval(passages=[passage()], hits=[FusedHit(row=0, fused=0.1, dense=0.8)], query_tokens=[],
                    query_vector=np.array([1.0, 0.0]))
    (wide,) = widen_quotes([lead], ret, _Engine(), gain=0.05)  # type: ignore[arg-type]
    assert wide.text == "The court set a schedule for the motions. Three filings were due in May."
    assert WIDEN_TEXT[wide.start:wide.end] == wide.text and wide.dense == pytest.approx(0.9, abs=1e-3)
    # Not better by the gain: the sentence stays alone; a neighbour another quote holds is not taken.
    assert widen_quotes([lead], ret, _Engine(), gain=0.5) == [lead]  # type: ignore[arg-type]
    other = cand(WIDEN_TEXT[spans[1][0]:spans[1][1]], 0.4, start=spans[1][0])
    assert widen_quotes([lead, other], ret, _Engine(), gain=0.05)[0] is lead  # type: ignore[arg-type]


def test_definition_lines_are_recognised_with_their_term() -> None:
    from kb.text.spans import defined_term
    assert defined_term('"Documentation" means the manuals that come with the model.') == "Documentation"
    assert defined_term("(b) “**Outputs**” refers to what the service returns.") == "Outputs"
    assert defined_term("1.2 'Agreement' shall mean these terms.") == "Agreement"
    assert defined_term("These Terms (“Terms”) are an agreement between you and us.") is None
    assert defined_term('The word "means" is not a definition here.') is None


def test_definition_of_another_term_is_penalised_but_not_the_one_asked_about() -> None:
    from kb.answer.scoring import _defines_other_term
    c = cand('"Documentation" means the manuals that come with the model.', 0.8)
    assert _defines_other_term(c, {"state", "law", "govern"})
    assert not _defines_other_term(c, {"document", "what"})  # the tokenizer stems "documentation"
    assert not _defines_other_term(cand("The model comes with manuals.", 0.8), {"state"})
    assert not _defines_other_term(cand('"We" means Acme and its affiliates.', 0.8), {"state"})  # no word to tell


def test_lexical_only_sentences_are_no_abstention_evidence() -> None:
    from kb.answer.abstention import evidence_of
    ranked = cand("A weak sentence about something else entirely here.", 0.70)
    extra = cand("A sentence from a passage only BM25 found, very close.", 0.95, start=200)
    extra.lexical_only = True
    ev = evidence_of("What is asked here?", retrieval(0.75), [extra, ranked])
    assert ev.sentence_dense == pytest.approx(0.70)


@pytest.mark.parametrize("question", [
    "How did Musk answer when asked if xAI distilled OpenAI's models?",
    "¿Qué respondió Musk cuando le preguntaron por la destilación?",
    "Was hat Musk geantwortet, als er gefragt wurde?",
    "Qu'a répondu Musk quand on lui a demandé si xAI avait distillé ?",
    "Что ответил Маск на вопрос о дистилляции?",
    "当被问到是否使用了蒸馏技术时，马斯克是怎么回答的？",
    "マスク氏は何と答えましたか？",
])
def test_a_question_for_someones_words_asks_for_a_reply(question: str) -> None:
    from kb.answer.answer_types import asked_entity, carries_entity

    assert asked_entity(question) == "reply"
    assert carries_entity("Asked if that meant “yes,” he said, “Partly.”", "reply")
    assert carries_entity("他回答说:“部分是。", "reply")  # the sentence ends before the closing mark
    assert not carries_entity("Musk was asked if xAI had used distillation.", "reply")  # no words of his


def test_which_court_is_still_a_court_question() -> None:
    from kb.answer.answer_types import asked_entity

    assert asked_entity("In which court did Musk testify?") == "court"
    assert asked_entity("Who denied the motion?") == "person"

"""Follow-up questions: which questions lean on the previous turn, and what is carried over."""
from __future__ import annotations

import pytest

from kb.answer.followup import PriorTurn, content_terms, is_follow_up, resolve, searched_display

PRIOR = PriorTurn("What did Musk say about distillation in court?", "en", frozenset({"doc-brief"}),
                  (("Brief: Musk says xAI 'partly' distilled OpenAI models to train Grok", "en"),))


@pytest.mark.parametrize("question,lang", [
    ("And when did he testify?", "en"), ("When was that?", "en"), ("¿Y cuándo declaró?", "es"),
    ("Et quand a-t-il témoigné ?", "fr"), ("Und wann war das?", "de"), ("और उन्होंने कब गवाही दी?", "hi"),
    ("他是什么时候作证的？", "zh"), ("那它什么时候生效？", "zh"), ("それはいつですか？", "ja"), ("А когда он дал показания?", "ru"),
])
def test_follow_ups_in_many_languages_are_recognised(question: str, lang: str) -> None:
    assert is_follow_up(question, lang)


@pytest.mark.parametrize("question,lang", [
    ("Which court did Musk testify in?", "en"), ("What does the Llama 2 license say about improving other LLMs?", "en"),
    ("¿Qué ley rige los términos de consumo de Anthropic?", "es"), ("OpenAI 的条款禁止什么？", "zh"),
])
def test_questions_with_their_own_subject_stand_alone(question: str, lang: str) -> None:
    assert not is_follow_up(question, lang)
    r = resolve(question, lang, [PRIOR])
    assert not r.follow_up and r.resolved == question and r.prefer_docs == frozenset()


def test_a_follow_up_carries_the_names_and_the_cited_title_not_the_predicate() -> None:
    r = resolve("And when did he testify?", "en", [PRIOR])
    assert r.follow_up and r.prefer_docs == {"doc-brief"}
    assert r.terms[0] == "Musk"                      # the previous question's name first
    assert "xAI" in r.terms and "Grok" not in r.terms[:1] and "Brief" not in r.terms
    assert r.resolved == "And when did he testify? " + " ".join(r.terms)
    assert searched_display(r.question, r.resolved) == f"And when did he testify? (+ {' · '.join(r.terms)})"


def test_without_a_cited_document_the_previous_question_gives_the_subject() -> None:
    prior = PriorTurn("मस्क ने अदालत में डिस्टिलेशन के बारे में क्या कहा?", "hi")
    r = resolve("और उन्होंने कब गवाही दी?", "hi", [prior])
    assert r.terms[:3] == ["मस्क", "अदालत", "डिस्टिलेशन"] and "बारे" not in r.terms


def test_no_previous_turn_means_no_resolution() -> None:
    r = resolve("And when did he testify?", "en", [])
    assert not r.follow_up and r.resolved == "And when did he testify?"
    assert searched_display("q", None) == "q"


def test_content_terms_drop_question_and_stop_words_in_each_script() -> None:
    assert content_terms("What did Musk say about xAI's distillation in court?", "en") == [
        "Musk", "xAI's", "distillation", "court"]
    zh = content_terms("马斯克在法庭上关于蒸馏说了什么？", "zh")
    assert "马斯克" in zh and "蒸馏" in zh and "什么" not in zh

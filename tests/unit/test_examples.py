"""Example questions: from what is indexed, in the reader's language, only those that are answered."""
from __future__ import annotations

from kb.examples import TEMPLATES, candidates, example_questions, reader_language
from kb.listings import DocumentEntry


def doc(doc_id: str, doctype: str, title: str, publisher: str = "Agency", language: str = "en",
        published: str = "2026-01-01", chunks: int = 3) -> DocumentEntry:
    return DocumentEntry(doc_id=doc_id, title=title, url=f"https://x.example/{doc_id}", publisher=publisher,
                         doctype=doctype, language=language, source="s", published=published, versions=1,
                         indexed_versions=1, current_version=f"{doc_id}-v", last_retrieved="2026-02-01", chunks=chunks)


DOCS = [doc("n1", "news", "Brief: Musk testifies about distillation", published="2026-05-01"),
        doc("n2", "news", "Older story", published="2025-01-01"),
        doc("t1", "tos", "Terms of Use", publisher="OpenAI"),
        doc("c1", "court", "Order Denying Motion for a Preliminary Injunction", publisher="N.D. Cal."),
        doc("e1", "news", "Empty", chunks=0)]


def test_reader_language_from_the_browser_locale() -> None:
    assert reader_language("hi-IN") == "hi" and reader_language("es_ES") == "es"
    assert reader_language("tlh") == "en" and reader_language(None) == "en"


def test_candidates_take_types_in_turn_in_the_readers_language() -> None:
    got = candidates(DOCS, "en")
    assert got[:3] == ["What does Agency report in “Musk testifies about distillation”?",   # label dropped
                       "What do OpenAI's terms forbid users to do with the output?",
                       "What did the court decide, according to “Order Denying Motion for a Preliminary Injunction”?"]
    assert not any("Empty" in q for q in got), "a document without passages is never suggested"
    hindi = candidates(DOCS, "hi")
    assert hindi[1] == TEMPLATES["hi"]["tos"].format(publisher="OpenAI", title="Terms of Use")


def test_documents_in_the_readers_language_come_first_within_a_type() -> None:
    docs = [doc("a", "news", "English story", published="2026-06-01"),
            doc("b", "news", "Historia", language="es", published="2025-01-01")]
    assert "Historia" in candidates(docs, "es")[0]


def test_long_titles_are_cut_at_a_word() -> None:
    q = candidates([doc("l", "other", "word " * 40)], "en")[0]
    assert "word…” say?" in q and len(q) < 100


def test_only_answered_candidates_are_kept() -> None:
    asked: list[str] = []

    def answers(q: str) -> bool:
        asked.append(q)
        return "terms" not in q

    got = example_questions(DOCS, "en", answers, n=2)
    assert len(got) == 2 and all("terms" not in q for q in got)
    assert len(asked) == 3

"""Quote location and verification against stored version text."""
from __future__ import annotations

import unicodedata

from kb.answer.citations import is_cluster_start, locate_quote, verify_citations, verify_quote
from kb.models import Citation
from kb.text.spans import candidate_spans

TEXT = ("Musk testified in a California federal court. He said distillation was a general practice. "
        "OpenAI did not respond to a request for comment.")


def cite(quote: str, start: int, end: int, version: str = "v1") -> Citation:
    return Citation(n=1, doc_id="d", version_id=version, chunk_id=f"{version}-0000", title="t", publisher="p",
                    url="u", doctype="news", language="en", published="", retrieved="", quote=quote,
                    start=start, end=end)


def test_verify_quote_exact_slice() -> None:
    s = TEXT.index("He said")
    q = "He said distillation was a general practice."
    assert verify_quote(TEXT, q, s, s + len(q))
    assert not verify_quote(TEXT, q, s + 1, s + 1 + len(q))
    assert not verify_quote(TEXT, "", 0, 0)


def test_quote_crossing_a_chunk_boundary_is_completed_from_the_version_text() -> None:
    """A chunk ending mid-sentence still yields the whole sentence, verbatim, from the stored text."""
    chunk_end = TEXT.index("distillation")  # the chunker cut the second sentence here
    spans = candidate_spans(TEXT, 0, chunk_end, window=200)
    quotes = [TEXT[s:e] for s, e in spans]
    assert "He said distillation was a general practice." in quotes
    next_chunk_start = chunk_end
    spans2 = candidate_spans(TEXT, next_chunk_start, len(TEXT), window=200)
    assert any(TEXT[s:e].startswith("He said") for s, e in spans2)
    for s, e in spans + spans2:
        assert verify_quote(TEXT, TEXT[s:e], s, e)


def test_quote_must_not_cut_a_devanagari_cluster() -> None:
    text = "मस्क ने कहा कि किताबें पढ़ीं।"
    word = "किताबें"
    s = text.index(word)
    assert verify_quote(text, word, s, s + len(word))
    # "किताब" stops before the vowel sign "े" + anusvara: a verbatim slice, but it cuts a character apart
    assert not verify_quote(text, "किताब", s, s + len("किताब"))
    assert not is_cluster_start(text, s + len("किताब"))


def test_quote_must_not_cut_a_combining_accent() -> None:
    text = unicodedata.normalize("NFD", "Le café est fermé.")
    cut = text.index("cafe") + 4  # before U+0301
    assert not verify_quote(text, text[text.index("cafe"):cut], text.index("cafe"), cut)


def test_locate_quote_across_normalisation_returns_a_verbatim_slice() -> None:
    text = unicodedata.normalize("NFD", "La política   de uso prohíbe el “model scraping”.")
    s_e = locate_quote(text, 'La política de uso prohíbe el "model scraping"')
    assert s_e is not None
    s, e = s_e
    assert text[s:e].startswith("La poli")
    assert verify_quote(text, text[s:e], s, e)
    assert unicodedata.normalize("NFC", text[s:e]).endswith("scraping”")


def test_locate_quote_picks_occurrence_nearest_hint() -> None:
    text = "alpha beta. alpha beta. alpha beta."
    assert locate_quote(text, "alpha beta", hint=14) == (12, 22)
    assert locate_quote(text, "gamma") is None


def test_verify_citations_keeps_good_repairs_offsets_and_drops_bad() -> None:
    good_q = "OpenAI did not respond to a request for comment."
    s = TEXT.index(good_q)
    texts = {"v1": TEXT}
    kept, dropped = verify_citations(
        [cite(good_q, s, s + len(good_q)),
         cite(good_q, 0, len(good_q)),                       # right quote, wrong offsets -> repaired
         cite("Musk admitted everything.", 0, 25),           # not in the text -> dropped
         cite(good_q, s, s + len(good_q), version="gone")],  # unknown version -> dropped
        lambda v: texts[v])
    assert len(kept) == 2 and all(TEXT[c.start:c.end] == c.quote for c in kept)
    assert [why for _, why in dropped] == ["quote is not a verbatim slice of the stored text",
                                           "stored text unavailable or altered"]


def test_verify_citations_without_repair_drops_moved_quotes() -> None:
    q = "OpenAI did not respond to a request for comment."
    kept, dropped = verify_citations([cite(q, 0, len(q))], lambda v: TEXT, repair=False)
    assert not kept and len(dropped) == 1


def test_a_reported_question_is_also_quoted_with_its_reply() -> None:
    """'He was asked if ...' and the next sentence's "Partly." form a window, in English and in Chinese."""
    text = ("On the stand, Musk was asked if xAI had used distillation, and he called it a general practice. "
            "Asked if that meant “yes,” he said, “Partly.” The hearing went on.")
    quotes = [text[s:e] for s, e in candidate_spans(text, 0, len(text))]
    assert any(q.startswith("On the stand, Musk was asked") and q.endswith("he said, “Partly.") for q in quotes)
    zh = "当被问及 xAI 是否使用蒸馏技术时,马斯克断言这是普遍做法。当被问及这是否意味着“是”时,他回答说:“部分是。”此后庭审继续。"
    assert any(q.startswith("当被问及 xAI") and "部分是" in q for q in (zh[s:e] for s, e in candidate_spans(zh, 0, len(zh))))
    # A sentence that reports no question gets no window.
    plain = "Musk testified on Thursday. He said “Partly.” The hearing went on."
    assert all(plain[s:e].count(".") <= 2 for s, e in candidate_spans(plain, 0, len(plain)))
    assert "Musk testified on Thursday. He said “Partly.”" not in [plain[s:e] for s, e in candidate_spans(plain, 0, len(plain))]

"""Contextual chunk embeddings: section headings found in a document, the text embedded for a chunk."""
from __future__ import annotations

from ingest.context import contextual_texts, heading_before, heading_lines, section_headings

TERMS = """Acme Terms of Use

1. Who we are

Acme runs the service described here.

2. Restrictions

You may not use Output to develop models that compete with Acme.
- a bullet that ends without a stop
- another one.

## Governing law

These terms are governed by the laws of California.
"""


def test_headings_are_short_lines_standing_alone() -> None:
    got = [h for _, h in heading_lines(TERMS)]
    assert got == ["Acme Terms of Use", "1. Who we are", "2. Restrictions", "Governing law"]


def test_a_sentence_or_a_bullet_is_no_heading() -> None:
    text = "Intro line\nThis sentence follows directly.\n\nA whole sentence alone.\n\n- item one\n"
    assert [h for _, h in heading_lines(text)] == ["Intro line"]


def test_wrapped_lines_lead_ins_dates_and_page_headers_are_no_headings() -> None:
    page = "Case 4:24-cv-04722 Document 121 Page 3\n\n"
    text = (page + "\"Agreement\" means the terms and conditions for use, reproduction and\n"
            "distribution set out here.\n\nPublic record: https://example.org/docket/1\n\nYou agree that:\n\n1. you are an adult.\n\nEffective: January 1, 2026\n\n"
            + page + "II. LEGAL STANDARD\n\nThe court reviews it.\n\n" + page)
    assert [h for _, h in heading_lines(text)] == ["II. LEGAL STANDARD"]


def test_heading_before_is_the_last_one_above_the_chunk() -> None:
    heads = heading_lines(TERMS)
    at = TERMS.index("You may not")
    assert heading_before(heads, at) == "2. Restrictions"
    assert heading_before(heads, 0) == "Acme Terms of Use"
    assert heading_before(heads, TERMS.index("2. Restrictions")) == "2. Restrictions", "a chunk starting at its heading"
    assert heading_before(heads, TERMS.index("2. Restrictions") - 1) == "1. Who we are"
    assert heading_before(heads, TERMS.index("These terms")) == "Governing law"


def test_contextual_text_is_title_heading_then_the_chunk() -> None:
    s = TERMS.index("You may not")
    e = TERMS.index("Acme.", s) + len("Acme.")
    (got,) = contextual_texts("title", "Acme Terms of Use", TERMS, [(s, e)])
    assert got == "Acme Terms of Use\n2. Restrictions\n\n" + TERMS[s:e]
    assert contextual_texts("heading", "Acme Terms of Use", TERMS, [(s, e)]) == ["2. Restrictions\n\n" + TERMS[s:e]]
    assert contextual_texts("none", "Acme Terms of Use", TERMS, [(s, e)]) == [TERMS[s:e]]


def test_context_the_chunk_already_carries_is_not_repeated() -> None:
    (first,) = contextual_texts("title", "Acme Terms of Use", TERMS, [(0, TERMS.index("Acme runs") + 20)])
    assert first == TERMS[:TERMS.index("Acme runs") + 20]
    text = "Intro\n\nBody text of the paper goes here."
    (got,) = contextual_texts("title", "Intro", text, [(7, len(text))])
    assert got == "Intro\n\nBody text of the paper goes here.", "a heading equal to the title is said once"


def test_a_chunk_that_starts_with_its_heading_is_not_given_the_previous_one() -> None:
    s = TERMS.index("2. Restrictions")
    e = TERMS.index("Acme.", s) + len("Acme.")
    assert contextual_texts("heading", "Acme Terms of Use", TERMS, [(s, e)]) == [TERMS[s:e]]


def test_crlf_text_and_numbered_page_headers() -> None:
    pages = "".join(f"Case 4:24-cv-04722 Document 121 Page {n} of 16\r\n\r\nText of page {n}.\r\n\r\n" for n in range(1, 4))
    text = "I. BACKGROUND\r\n\r\n" + pages
    got = heading_lines(text)
    assert [h for _, h in got] == ["I. BACKGROUND"]
    assert text[got[0][0]:].startswith("I. BACKGROUND")


def test_headings_in_other_scripts_and_a_url_title() -> None:
    text = "नियम और शर्तें\n\nयह एक वाक्य है।\n\nهل هذا سؤال؟\n\n## 服务条款\n\n正文。"
    assert [h for _, h in heading_lines(text)] == ["नियम और शर्तें", "服务条款"]
    s = text.index("正文")
    assert contextual_texts("title", "https://example.org/terms", text, [(s, len(text))]) == ["服务条款\n\n正文。"]


def test_a_heading_above_most_of_a_long_document_is_no_section() -> None:
    body = "The customer will not resell the service to anyone. " * 80
    text = ("Acme Terms\n\nDownload PDF of these terms\n\n" + body
            + "\n\n9. Feedback\n\nFeedback may be used freely.\n")
    assert [h for _, h in heading_lines(text)] == ["Acme Terms", "Download PDF of these terms", "9. Feedback"]
    assert [h for _, h in section_headings(text)] == ["Acme Terms", "", "9. Feedback"]
    s = text.index("The customer")
    assert contextual_texts("heading", "", text, [(s, s + 60)]) == [text[s:s + 60]]


def test_numbered_titles_setext_headings_and_lines_that_go_on() -> None:
    text = ("3. Disclaimer. UNLESS REQUIRED BY LAW, THE\nSERVICE IS PROVIDED AS IS.\n\n"
            "7. Governing Law and Jurisdiction. This Agreement is governed by the laws of California.\n\n"
            "K.1. **Claims Against Customer.** Acme will defend Customer.\n\n"
            "2\\. Provision.\n--------------\n\nThe Agreement governs access.\n\n"
            "\"Materials\" means, collectively, the model and\nDocumentation made available here.\n\n"
            "Unless noted, the record below is undisputed.[3]\n\nMore text follows here.\n")
    got = [h for _, h in heading_lines(text)]
    assert got == ["3. Disclaimer.", "7. Governing Law and Jurisdiction.", "K.1. Claims Against Customer.",
                   "2. Provision."]
    # A chunk in section 7 gets section 7's title, not the heading of section 3 above it.
    assert heading_before(heading_lines(text), text.index("This Agreement")) == "7. Governing Law and Jurisdiction."


def test_versions_exhibits_and_quoted_headings_stay_headings_and_abbreviations_are_no_titles() -> None:
    text = ("Version 2.0\n\nSome text here.\n\nExhibit A\n\nMore text here.\n\n“Why it matters.”\n\nText.\n\n"
            "2. Mr. Smith said so.\n\nText again.\n\nJ. R. R. Tolkien wrote it.\n\nEnd.\n\n"
            "A sentence right above a rule.\n-----\n")
    assert [h for _, h in heading_lines(text)] == ["Version 2.0", "Exhibit A", "“Why it matters.”"]

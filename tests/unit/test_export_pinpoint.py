"""Pinpoints of quotes: section (§3.3(e)), paragraph, page, heading; and the export model's language rules."""
from __future__ import annotations

from pathlib import Path

import pytest

from kb.export.model import quote_language, same_language, split_markers
from kb.export.pinpoint import Pinpoint, compute_pinpoint, nearest_heading, page_range, paragraph_number, section_label
from kb.text.language import language_name


def _at(text: str, needle: str) -> tuple[int, int]:
    start = text.index(needle)
    return start, start + len(needle)


def _body(path: Path) -> str:
    """A corpus file without its front-matter block (what ingest stores)."""
    text = path.read_text(encoding="utf-8")
    return text.split("---", 2)[2] if text.startswith("---") else text


# -- paragraph and page ---------------------------------------------------------------------------
def test_paragraph_number_counts_blank_line_breaks_before_start() -> None:
    text = "Title\n\nFirst para line one.\nline two.\n\n\nSecond para."
    assert paragraph_number(text, 0) == 1
    assert paragraph_number(text, text.index("line two")) == 2  # a single newline is not a break
    assert paragraph_number(text, text.index("Second")) == 3    # several blank lines are one break


def test_paragraph_number_ignores_leading_blank_lines() -> None:
    text = "\n\n\nOnly paragraph."
    assert paragraph_number(text, text.index("Only")) == 1


def test_page_range_from_page_start_offsets() -> None:
    pages = [0, 100, 250]
    assert page_range(pages, 0, 10) == (1, 1)
    assert page_range(pages, 120, 140) == (2, 2)
    assert page_range(pages, 240, 260) == (2, 3)
    assert page_range(None, 5, 9) == (None, None)
    assert page_range([], 5, 9) == (None, None)


def test_pinpoint_label_with_pages_and_section() -> None:
    assert Pinpoint(paragraph=4, section="§2.1(b)", page=3).label() == "§2.1(b), p. 3, para. 4"
    assert Pinpoint(paragraph=9, page=3, page_end=4).label() == "pp. 3–4, para. 9"
    assert Pinpoint(paragraph=2, heading="What you cannot do").label() == "under “What you cannot do”, para. 2"
    data = Pinpoint(paragraph=1, section="§4").to_json()
    assert data["label"] == "§4, para. 1" and data["page"] is None


def test_compute_pinpoint_uses_version_meta_pages() -> None:
    text = "1. Scope. Applies.\n\n2. Payment. Customer pays (a) fees; (b) taxes.\n\nEnd."
    start, end = _at(text, "(b) taxes")
    pp = compute_pinpoint(text, start, end, {"pages": [0, text.index("2. Payment")]})
    assert (pp.section, pp.paragraph, pp.page) == ("§2(b)", 2, 2)


# -- sections -------------------------------------------------------------------------------------
CONTRACT = """Agreement

1\\. Services.
--------------

*   1.1. Term. This runs for the Term.
*   3.3. Restrictions. Customer will not: (a) break laws; (b) resell access; (c) copy the Services; (d) probe the systems; (e) except for a Permitted Exception, train competing models; (f) scrape data.
*   8.2. Suspension. OpenAI may suspend if: (a) required by law; (b) Customer violates the Agreement; or (c) an emergency requires it. OpenAI will try to: (i) narrow the suspension; and (ii) restore access.
*   13.3. Remedies. OpenAI may: (a) modify; (b) replace; or (c) if (a) and (b) are not practicable, terminate.
*   14.1. Caps. EXCEPT FOR: (A) FRAUD; (B) BREACH OF SECTION 3.3 (RESTRICTIONS).

Section 5 Notices

Notices go by email.

§ 7 Final words

Article 9 Definitions
"""


@pytest.mark.parametrize("needle, expected", [
    ("(e) except for a Permitted Exception", "§3.3(e)"),
    ("train competing models", "§3.3(e)"),                # inside (e), not at its marker
    ("(e) except for a Permitted Exception, train competing models;", "§3.3(e)"),  # (f) follows the end
    ("Customer will not:", "§3.3"),                        # the clause's own words, before any marker
    ("(d) probe the systems; (e) except for a Permitted Exception, train", "§3.3(d)–(e)"),
    ("narrow the suspension", "§8.2(c)(i)"),              # roman numerals under a letter
    ("restore access", "§8.2(c)(ii)"),
    ("or (c) if (a) and (b) are not practicable", "§13.3(c)"),  # "(a) and (b)" are cross-references
    ("terminate.", "§13.3(c)"),
    ("(B) BREACH OF SECTION 3.3", "§14.1(B)"),             # a cross-reference to 3.3 is not a heading
    ("This runs for the Term", "§1.1"),
    ("Notices go by email", "§5"),
    ("Final words", "§7"),
    ("Definitions", "Art. 9"),
])
def test_section_label_for_numbered_clauses(needle: str, expected: str) -> None:
    start, end = _at(CONTRACT, needle)
    assert section_label(CONTRACT, start, end) == expected


def test_section_label_empty_without_headings() -> None:
    text = "A news story.\n\nNothing numbered here (really)."
    assert section_label(text, *_at(text, "Nothing")) == ""


def test_subclause_markers_in_an_earlier_paragraph_do_not_leak() -> None:
    text = "17. Definitions.\n\n“Affiliate” means (a) one thing or (b) another.\n\n“Reverse Engineer” means decompile."
    assert section_label(text, *_at(text, "“Reverse Engineer”")) == "§17"


def test_subclauses_on_their_own_lines_count_across_paragraphs() -> None:
    text = "4.2 Restrictions. You shall not:\n\n(a) copy;\n\n(b) distil the models."
    assert section_label(text, *_at(text, "distil the models")) == "§4.2(b)"


def test_court_outline_and_numbered_paragraphs() -> None:
    order = "I. BACKGROUND\n\nFacts.\n\nIII. ANALYSIS\n\nA. Likelihood of Success\n\nPlaintiff has not shown it."
    assert section_label(order, *_at(order, "Plaintiff has not"), doctype="court") == "Part III.A"
    complaint = "INTRODUCTION\n\n1. This case is about a promise.\n\n2. The promise was broken."
    assert section_label(complaint, *_at(complaint, "The promise was broken"), doctype="court") == "¶ 2"
    assert section_label(complaint, *_at(complaint, "The promise was broken"), doctype="tos") == "§2"


def test_list_items_nest_under_their_heading() -> None:
    text = "**3\\. Use of our Services.**\n\nYou may not:\n\n1.  Break the law.\n2.  Build competing models.\n    1.  Including by distillation."
    assert section_label(text, *_at(text, "Build competing")) == "§3, item 2"
    assert section_label(text, *_at(text, "Including by distillation")) == "§3, item 2.1"


def test_nearest_heading_reads_markdown_underlined_and_bold_leads() -> None:
    text = "## Using our services\n\n**What you cannot do**. You may not:\n\n*   Use Output to compete."
    assert nearest_heading(text, text.index("Use Output")) == "What you cannot do"
    text2 = "4\\. Customer Content.\n---------------------\n\nCustomer owns Output."
    assert nearest_heading(text2, text2.index("Customer owns")) == "4. Customer Content"


def test_openai_services_agreement_competing_models_clause_is_3_3_e(shared_dir: Path) -> None:
    """The acceptance example of the issue: the restriction on competing models is §3.3(e)."""
    text = _body(shared_dir / "corpus" / "tos-openai-services-agreement.txt")
    start, end = _at(text, "(e) except for a Permitted Exception, use Output to develop artificial intelligence models")
    pp = compute_pinpoint(text, start, end, {}, "tos")
    assert pp.section == "§3.3(e)"
    assert pp.label().startswith("§3.3(e), para. ")
    start, end = _at(text, "use Output to develop artificial intelligence models that compete")
    assert section_label(text, start, end) == "§3.3(e)"


# -- language and markers -----------------------------------------------------------------------------
def test_quote_language_prefers_the_script_of_the_quote() -> None:
    zh = "近期，OpenAI 和 Anthropic 一直在严厉打击第三方通过提示词来训练新模型的行为。"
    assert quote_language(zh, "en") == "zh"   # a Chinese sentence from a passage labelled English
    assert quote_language("Customer will not use Output to develop competing models.", "en") == "en"
    assert quote_language("short", "en") == "en"  # too short to detect: the passage's language


def test_same_language_and_names() -> None:
    assert same_language("en", "en-US") and not same_language("hi", "en") and same_language("und", "zh")
    assert language_name("hi") == "Hindi (hi)" and language_name("xx") == "xx"


def test_split_markers_keeps_only_existing_citations() -> None:
    assert split_markers("A “x” [1] and “y” [2]. [9]", [1, 2]) == ["A “x” ", 1, " and “y” ", 2, ". [9]"]


def test_paragraph_number_counts_lines_when_a_text_has_no_blank_lines() -> None:
    """Regression: every quote of a one-paragraph-a-line article was cited as "para. 1"."""
    text = "Title line\nFirst paragraph here.\nSecond paragraph there.\n"
    assert paragraph_number(text, 0) == 1
    assert paragraph_number(text, text.index("Second")) == 3

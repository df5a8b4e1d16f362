"""ui.render: scraped text never becomes Markdown or HTML; quotes are highlighted in their context."""
from __future__ import annotations

import re

import pytest

from ui import render

HOSTILE = ("<script>alert(1)</script> ![x](http://127.0.0.1:1/x.png) [click](javascript:alert(1)) "
           "**bold** `code` $x^2$ :red[red] :smile: <img src=x onerror=alert(1)> www.example.com "
           "http://example.com/a_b_c | a | b |")


def test_escape_markdown_leaves_no_markup_characters() -> None:
    out = render.escape_markdown(HOSTILE)
    assert not re.search(r"[<>\[\]()!*`$:_|]", out), out
    assert "&#60;script&#62;" in out and "&#91;click&#93;" in out


@pytest.mark.parametrize("line", ["# heading", "> quote", "- item", "1. item", "    indented code", "===", "```"])
def test_escape_markdown_block_constructs_stay_text(line: str) -> None:
    out = render.escape_markdown(f"first line\n{line}\nlast")
    for piece in out.split("  \n"):
        assert not piece.startswith((" ", "#", ">", "-", "1.", "=", "`")), piece


def test_escape_markdown_keeps_letters_of_any_script_and_paragraphs() -> None:
    text = "Musk ने गवाही दी।\n\n马斯克作证。\nsecond line"
    out = render.escape_markdown(text)
    assert "Musk ने गवाही दी।" in out and "马斯克作证。" in out
    assert out.count("\n\n") == 1 and "  \nsecond line" in out


def test_escape_markdown_breaks_autolinks_without_visible_change() -> None:
    out = render.escape_markdown("see http://127.0.0.1:1/x.png or www.example.com or a@b.org")
    decoded = __import__("html").unescape(out)
    assert "http://" not in decoded and "www." not in decoded and "a@b" not in decoded
    assert decoded.replace(render.WORD_JOINER, "") == "see http://127.0.0.1:1/x.png or www.example.com or a@b.org"


def test_escape_html_keeps_lines_and_escapes_tags() -> None:
    assert render.escape_html('<script>alert("x")</script>\n\n\n\nnext') == \
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<br><br>next"


def test_quote_context_is_a_slice_around_the_quote() -> None:
    text = "word " * 200 + "THE QUOTE here." + " tail" * 200
    s = text.index("THE QUOTE")
    e = s + len("THE QUOTE here.")
    ctx = render.quote_context(text, s, e, width=50)
    assert ctx.quote == "THE QUOTE here."
    assert text[s - len(ctx.before):e + len(ctx.after)] == ctx.before + ctx.quote + ctx.after
    assert ctx.clipped_start and ctx.clipped_end
    assert len(ctx.before) <= 50 and not ctx.before.startswith("ord")


def test_context_html_marks_only_the_quote() -> None:
    text = "Before <b>x</b>. The quoted ![img](http://x/y.png) <script>s</script>. After."
    s = text.index("The quoted")
    e = text.index("</script>.") + len("</script>.")
    out = render.context_html(render.quote_context(text, s, e))
    assert re.findall(r"<mark[^>]*>(.*?)</mark>", out) == [
        "The quoted ![img](http://x/y.png) &lt;script&gt;s&lt;/script&gt;."]
    assert out.startswith("Before &lt;b&gt;x&lt;/b&gt;. ") and out.endswith(" After.")
    assert re.findall(r"<(\w+)", out) == ["mark"]


def test_card_html_shows_provenance_and_only_safe_links() -> None:
    cite = {"title": "<script>alert(1)</script>", "publisher": "P ![i](http://127.0.0.1:1/i.png)",
            "url": "javascript:alert(1)", "published": "2025-03-04", "language": "hi", "doctype": "news",
            "quote": "q", "version_id": "v" * 20, "retrieved": "2026-01-01T00:00:00Z", "start": 3, "end": 4,
            "also_reported_by": [{"publisher": "Copy", "url": "https://copy.example/a"}]}
    out = render.card_html("kb-cite-a-1", 1, cite, None, {"snapshot_sha": "ab" * 32})
    assert "<script" not in out and "Address (not linked): javascript:alert(1)" in out
    assert set(re.findall(r"<(\w+)", out)) <= {"div", "mark", "code", "a"}
    assert re.findall(r'href="([^"]+)"', out) == ["https://copy.example/a"]
    assert 'id="kb-cite-a-1"' in out and "abababababababab" in out and "Hindi" in out


def test_answer_segments_link_markers_after_their_quotes_only() -> None:
    quote1 = "Section [2] says no competing models."
    answer = f"According to the indexed sources: “{quote1}” [1] In addition: “Other text.” [2]"
    segs = render.answer_segments(answer, [(1, quote1), (2, "Other text.")])
    markers = [s.n for s in segs if s.n]
    assert markers == [1, 2]
    assert "".join(s.text for s in segs) == answer


def test_answer_segments_french_and_cjk_closing_marks() -> None:
    fr = "D'après les sources indexées : « Le texte. » [1]"
    assert [s.n for s in render.answer_segments(fr, [(1, "Le texte.")]) if s.n] == [1]
    zh = "根据已索引的资料：“禁止蒸馏。” [1]。"
    segs = render.answer_segments(zh, [(1, "禁止蒸馏。")])
    assert [s.n for s in segs if s.n] == [1] and segs[-1].text == "。"


def test_answer_html_escapes_quotes_and_links_markers_to_cards() -> None:
    quote = "<script>alert(1)</script> ![x](http://127.0.0.1:1/x.png)"
    out = render.answer_html(f"According to: “{quote}” [1]", [(1, quote)], "a1")
    assert "<script" not in out and re.findall(r"<(\w+)", out) == ["div", "a"]
    assert out.endswith('” <a class="kb-ref" href="#kb-cite-a1-1">[1]</a></div>')


def test_answer_html_steps_grow_to_the_full_answer() -> None:
    text, quotes = "One two three four five six seven “q” [1]", [(1, "q")]
    steps = render.answer_html_steps(text, quotes, "z", steps=4)
    assert 2 <= len(steps) <= 4 and steps[-1] == render.answer_html(text, quotes, "z")
    assert all(s.endswith("</div>") and s.count("<a") == s.count("</a>") for s in steps)


def test_safe_url_refuses_scripts_and_markdown_breakers() -> None:
    assert render.safe_url("https://openai.com/policies/terms-of-use/") == "https://openai.com/policies/terms-of-use/"
    assert render.safe_url("javascript:alert(1)") is None
    assert render.safe_url("https://x.org/a) ![i](http://y") is None
    assert render.link("t", "javascript:alert(1)") == "t"


def test_filters_summary_names_active_filters() -> None:
    assert render.filters_summary({}) == ""
    out = render.filters_summary({"language": "hi", "as_of": "2025-06-01"})
    assert "language&#58; hi" in out and "as of&#58; 2025&#45;06&#45;01" in out


def test_language_label() -> None:
    assert render.language_label("hi") == "Hindi · हिन्दी (hi)"
    assert render.language_label("xx") == "xx"


def test_publisher_filter_keeps_names_with_commas_specific() -> None:
    from kb.listings import publisher_filter

    assert publisher_filter([]) is None
    assert publisher_filter(["Meta", "U.S. District Court, N.D. Cal. (Judge Yvonne Gonzalez Rogers)"]) == \
        "Meta,N.D. Cal. (Judge Yvonne Gonzalez Rogers)"


def test_markdown_export_escapes_scraped_fields_and_fences_quotes() -> None:
    from kb.export.render_md import md_escape, quote_block

    title = "![x](http://127.0.0.1:1/x.png) <img src=y> [click](javascript:alert(1))"
    escaped = md_escape(title)
    assert "![" not in escaped and "](" not in escaped and "<img" not in escaped
    quote = "He wrote ``` and ![x](http://127.0.0.1:1/x.png)\nsecond line"
    block = quote_block(quote)
    assert block[0].startswith("> ````") and block[-1] == "> ````"       # a longer fence than any in the quote
    assert "\n".join(line[2:] for line in block[1:-1]) == quote            # the quote itself, byte for byte


def test_failed_sign_ins_slow_down_later_attempts() -> None:
    from ui.runtime import LoginThrottle

    now = [100.0]
    t = LoginThrottle(free=3, cap=60, clock=lambda: now[0])
    for _ in range(3):
        t.failure()
    assert t.wait_seconds() == 0                      # a few typos cost nothing
    t.failure()
    assert t.wait_seconds() == 1.0
    for _ in range(10):
        t.failure()
    assert t.wait_seconds() == 60.0                    # capped
    now[0] += 61
    assert t.wait_seconds() == 0
    t.success()
    assert t.failures == 0

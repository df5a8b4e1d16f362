"""Cited-summary exports from a real index: Markdown, JSON, DOCX and PDF, verified quotes, tampering.

Answers come from the real extractive answerer over the ../shared index (English, Hindi and Chinese
questions), plus a hand-made answer whose quotes are cut from the stored text of the OpenAI Services
Agreement (to pin §3.3(e) and the translation aid whatever the answerer picks). Every format is
rendered and read back: python-docx for DOCX, pdftotext/pdffonts/pdftoppm for PDF.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest

from kb.answer.phrases import compose
from kb.export import ExportError, render, summarize, write_export
from kb.export.model import display_url
from kb.models import Answer, Citation
from kb.registry import Registry
from tests.fixtures.registry_db import raw_connection

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = {
    "en": "What does the OpenAI Services Agreement say about using Output to develop competing AI models?",
    "hi": "OpenAI की Terms of Service API outputs के किस उपयोग को prohibit करती है?",
    "zh": "哪些公司一直在打击通过提示词来训练新模型的蒸馏行为？",
    "ja": "OpenAIのサービス契約は競合するモデルの開発について何を禁止していますか？",
}
SERVICES_URL = "https://openai.com/policies/services-agreement/"
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(shared_index):
    from kb.answer.engine import get_engine

    return get_engine(shared_index)


def _stored_citation(registry: Registry, url: str, phrase: str, stop: str, n: int) -> Citation:
    """A citation cut from the stored text of the current version of the document at ``url``."""
    doc = next(d for d in registry.documents() if d["url"] == url and not d["duplicate_of"])
    version = registry.latest_version(doc["doc_id"])
    text = registry.version_text(version.version_id)
    start = text.index(phrase)
    end = text.index(stop, start) + len(stop)
    chunk = next(c for c in registry.chunks(version.version_id) if c.start <= start < c.end)
    return Citation(n=n, doc_id=doc["doc_id"], version_id=version.version_id, chunk_id=chunk.chunk_id,
                    title=version.title, publisher=doc["publisher"], url=doc["url"], doctype=doc["doctype"],
                    language=version.language, published=version.published, retrieved=version.retrieved,
                    quote=text[start:end], start=start, end=end)


@pytest.fixture(scope="module")
def answers(engine) -> dict[str, Answer]:
    """Real answers, plus a Hindi question answered with §3.3(e) of the Services Agreement (stored text)."""
    out = {lang: engine.ask(q) for lang, q in QUESTIONS.items()}
    for lang in ("en", "hi", "zh"):  # the Japanese one is exported whether it is answered or not
        assert not out[lang].abstained and out[lang].citations, f"{lang} should be answerable: {out[lang].answer}"
    cite = _stored_citation(engine.registry, SERVICES_URL, "(e) except for a Permitted Exception", "services;", 1)
    out["hi-3.3e"] = Answer(question="OpenAI Services Agreement की कौन-सी धारा competing models बनाने पर रोक लगाती है?",
                            question_language="hi", answer=compose("hi", [(cite.quote, 1)]), answer_language="hi",
                            abstained=False, citations=[cite])
    return out


@pytest.fixture(scope="module")
def summary(answers, engine, shared_index):
    return summarize(list(answers.values()), shared_index, registry=engine.registry,
                     embedder_id=engine.embedder.model_id)


@pytest.fixture(scope="module")
def files(summary, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("exports")
    paths = {}
    for fmt in ("md", "json", "docx", "pdf"):
        paths[fmt] = out / f"summary.{fmt}"
        paths[fmt].write_bytes(render(summary, fmt))
    return paths


def _all_citations(answers: dict[str, Answer]) -> list[tuple[Answer, Citation]]:
    return [(a, c) for a in answers.values() for c in a.citations]


# -- model ----------------------------------------------------------------------------------------
def test_services_agreement_restriction_is_pinpointed_as_3_3_e(summary) -> None:
    entry = summary.entries[-1]
    (q,) = entry.quotes
    assert q.pinpoint.section == "§3.3(e)"
    assert q.quote.startswith("(e) except for a Permitted Exception, use Output to develop")
    assert q.source.snapshot_sha and q.source.url == SERVICES_URL and q.source.retrieved
    assert q.quote_language == "en" and q.foreign  # English quote for a Hindi question


def test_every_bibliography_entry_carries_the_pinpoint_fields(summary) -> None:
    for s in summary.sources:
        assert s.title and s.url and s.retrieved and re.fullmatch(r"[0-9a-f]{64}", s.snapshot_sha)
        assert s.doctype in ("news", "tos", "court", "blog", "other") and s.language
        assert s.version_number >= 1 and "version" in s.version_label
    for e in summary.entries:
        for q in e.quotes:
            assert q.pinpoint.paragraph >= 1


# -- Markdown -------------------------------------------------------------------------------------
def test_markdown_carries_the_same_citations_as_ask_json(files, answers, summary) -> None:
    from kb.export.render_md import md_escape, quote_block

    md = files["md"].read_text(encoding="utf-8")
    for ans in answers.values():
        asked = ans.to_json()
        assert md_escape(asked["question"]) in md and md_escape(asked["answer"]) in md
        for c in asked["citations"]:
            assert "\n".join(quote_block(c["quote"])) in md          # verbatim, fenced
            heading = md_escape(f"[{c['n']}] {c['title']},")
            assert f"**{heading}" in md
            assert md_escape(display_url(c["url"])) in md
            assert md_escape(f"characters {c['start']}–{c['end']} of version {c['version_id']}") in md
    assert md_escape("§3.3(e), para. ") in md
    assert md_escape("not translated (the question is in Hindi (hi)") in md
    for s in summary.sources:
        assert f"**[S{s.ref}]** {md_escape(s.title)}" in md and s.snapshot_sha in md
    assert "Every quote" in md and "verified against the stored snapshot at export time" in md
    assert summary.meta.data_dir in md and "/" not in summary.meta.data_dir
    assert "file:///" not in md, "a local file is named, never located"


# -- JSON -----------------------------------------------------------------------------------------
def test_json_is_the_ask_json_with_pinpoints_added(files, answers, summary) -> None:
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    assert data["format"] == "kb-export/1" and data["index"]["data_dir"] == summary.meta.data_dir
    assert data["verification"]["quotes_verified"] == len(_all_citations(answers))
    refs = {b["ref"]: b for b in data["bibliography"]}
    for exported, ans in zip(data["questions"], answers.values()):
        asked = ans.to_json()
        assert {k: v for k, v in exported.items() if k != "citations"} == {k: v for k, v in asked.items()
                                                                            if k != "citations"}
        assert len(exported["citations"]) == len(asked["citations"])
        for ec, ac in zip(exported["citations"], asked["citations"]):
            assert {k: ec[k] for k in ac} == ac  # every `kb ask --json` field, unchanged
            assert ec["verified"] is True and ec["pinpoint"]["paragraph"] >= 1 and ec["pinpoint"]["label"]
            src = refs[ec["source_ref"]]
            assert src["version_id"] == ec["version_id"] and src["snapshot_sha256"] == ec["snapshot_sha256"]
    last = data["questions"][-1]["citations"][0]
    assert last["pinpoint"]["section"] == "§3.3(e)" and last["language_differs_from_question"] is True


# -- DOCX -----------------------------------------------------------------------------------------
def _docx_footnotes(document) -> list[str]:
    from lxml import etree

    part = next(p for p in document.part.package.iter_parts() if str(p.partname) == "/word/footnotes.xml")
    root = etree.fromstring(part.blob)
    return ["".join(t.text or "" for t in note.iter(f"{W}t")) for note in root.iter(f"{W}footnote")
            if note.get(f"{W}type") is None]


def test_docx_opens_with_quotes_footnotes_and_bibliography(files, answers, summary) -> None:
    import docx

    document = docx.Document(str(files["docx"]))
    quotes = [p.text for p in document.paragraphs if p.style.name == "Quote"]
    cited = [c for _, c in _all_citations(answers)]
    assert quotes == [c.quote for c in cited]
    notes = _docx_footnotes(document)
    markers = sum(len(set(re.findall(r"\[(\d+)\]", a.answer))) for a in answers.values() if a.citations)
    assert len(notes) == markers == len(cited)
    for note, c in zip(notes, cited):
        assert c.quote in note and f"citation [{c.n}]" in note
    refs = document.element.body.findall(f".//{W}footnoteReference")
    assert [r.get(f"{W}id") for r in refs] == [str(i) for i in range(1, len(cited) + 1)]
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert "Bibliography" in headings and "Verification" in headings
    cells = "\n".join(cell.text for table in document.tables for row in table.rows for cell in row.cells)
    for s in summary.sources:
        assert s.snapshot_sha in cells and display_url(s.url) in cells and s.retrieved in cells
    assert "§3.3(e)" in "\n".join(p.text for p in document.paragraphs)
    hindi_runs = [r for r in document.element.body.iter(f"{W}lang") if r.get(f"{W}bidi") == "hi-IN"]
    chinese_runs = [r for r in document.element.body.iter(f"{W}lang") if r.get(f"{W}eastAsia") == "zh-CN"]
    assert hindi_runs and chinese_runs


# -- PDF ------------------------------------------------------------------------------------------
def _skeleton(text: str) -> str:
    """Letters without combining marks or spaces: pdftotext reorders Devanagari vowel signs (ि)."""
    return "".join(ch for ch in unicodedata.normalize("NFC", text)
                   if not ch.isspace() and not unicodedata.category(ch).startswith("M"))


@pytest.fixture(scope="module")
def pdf_text(files) -> str:
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext is not installed (Debian package poppler-utils)")
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(files["pdf"]), "-"], capture_output=True,
                          text=True, check=True).stdout


def test_pdf_text_has_every_quote_in_hindi_chinese_and_english(pdf_text, answers) -> None:
    flat = _skeleton(pdf_text)
    assert "\ufffd" not in pdf_text
    for ans, c in _all_citations(answers):
        assert _skeleton(c.quote) in flat, f"quote [{c.n}] of {ans.question!r} is missing from the PDF text"
    for q in QUESTIONS.values():
        assert _skeleton(q) in flat
    zh = answers["zh"].citations[0].quote
    assert "".join(zh.split()) in "".join(pdf_text.split())  # Han text extracts verbatim
    assert "§3.3(e)" in pdf_text and "Bibliography" in pdf_text
    assert "verified against the stored snapshot at export time" in " ".join(pdf_text.split())


def test_pdf_embeds_noto_fonts_for_devanagari_and_cjk(files) -> None:
    if not shutil.which("pdffonts"):
        pytest.skip("pdffonts is not installed (Debian package poppler-utils)")
    out = subprocess.run(["pdffonts", str(files["pdf"])], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    assert rows and all(r[-5] == "yes" for r in rows), out  # columns from the end: emb sub uni object ID
    embedded = {r[0].split("+", 1)[-1] for r in rows}
    assert any("Devanagari" in f for f in embedded), out
    assert any("CJK-SC" in f for f in embedded), out
    assert any("CJK-JP" in f for f in embedded), out  # the Japanese question is set in the JP variant


def test_pdf_pages_render_to_png(files, tmp_path) -> None:
    if not shutil.which("pdftoppm"):
        pytest.skip("pdftoppm is not installed (Debian package poppler-utils)")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(files["pdf"]), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    from PIL import Image

    with Image.open(pages[0]) as im:
        lo, hi = im.convert("L").getextrema()
    assert lo < 80 and hi > 200  # ink on paper, not a blank page


def test_pdf_refuses_characters_no_installed_font_can_draw(summary, monkeypatch) -> None:
    from kb.export import render_pdf

    monkeypatch.setattr(render_pdf, "_any_font_has", lambda ch: False)
    entry = summary.entries[0]
    odd = replace(entry.answer, question=entry.answer.question + " \U00013000")
    broken = type(summary)(meta=summary.meta, entries=[type(entry)(answer=odd, quotes=entry.quotes)],
                           sources=summary.sources, verified_at=summary.verified_at)
    with pytest.raises(ExportError, match=r"U\+13000.*apt-get install"):
        render_pdf.render_pdf(broken)


# -- verification at export -------------------------------------------------------------------------
@pytest.fixture
def registry_copy(shared_index, tmp_path):
    """A registry-only copy of the shared index (registry + snapshots) that a test may tamper with."""
    data = tmp_path / "data"
    data.mkdir()
    src = sqlite3.connect(str(shared_index.registry_path))
    dst = sqlite3.connect(str(data / "registry.sqlite"))
    src.backup(dst)
    src.close()
    dst.close()
    shutil.copytree(shared_index.snapshot_dir, data / "snapshots")
    settings = shared_index.with_(data_dir=data)
    reg = Registry(settings.registry_path)
    try:
        yield settings, reg
    finally:
        reg.close()


def test_tampered_snapshot_fails_the_export_naming_the_quote(answers, registry_copy, tmp_path) -> None:
    settings, reg = registry_copy
    ans = answers["hi-3.3e"]
    sha = reg.version(ans.citations[0].version_id).snapshot_sha
    path = reg.snapshot_path(sha)
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    with gzip.open(path, "wb") as fh:
        fh.write(raw.replace(b"Permitted Exception", b"Permitted Exemption"))
    out = tmp_path / "refused.pdf"
    with pytest.raises(ExportError) as err:
        write_export([ans], "pdf", out, settings, registry=reg)
    message = str(err.value)
    assert "citation [1] of question 1" in message and "OpenAI Services Agreement" in message
    assert "(e) except for a Permitted Exception" in message and "altered" in message
    assert not out.exists() and not list(tmp_path.glob(".refused*"))


def test_tampered_stored_text_fails_the_export(answers, registry_copy) -> None:
    settings, reg = registry_copy
    cite = answers["zh"].citations[0]
    with raw_connection(reg) as db:
        db.execute("UPDATE versions SET text = replace(text, 'Anthropic', 'Anthrop1c') WHERE version_id=?",
                   (cite.version_id,))
    with pytest.raises(ExportError, match=r"citation \[1\] of question 1 .*does not match its SHA-256"):
        summarize([answers["zh"]], settings, registry=reg)


def test_altered_quote_fails_the_export_instead_of_being_dropped(answers, registry_copy) -> None:
    settings, reg = registry_copy
    ans = answers["en"]
    bad = replace(ans.citations[-1], quote=ans.citations[-1].quote + " (and more)")
    forged = replace(ans, citations=ans.citations[:-1] + [bad])
    with pytest.raises(ExportError, match=rf"citation \[{bad.n}\] of question 1 .*is not the stored text"):
        summarize([forged], settings, registry=reg)


def test_answer_without_citations_is_not_exported(answers, registry_copy) -> None:
    settings, reg = registry_copy
    ans = answers["en"]
    uncited = replace(ans, citations=[])
    with pytest.raises(ExportError, match="without citations"):
        summarize([uncited], settings, registry=reg)


# -- command line ---------------------------------------------------------------------------------
def _env(settings) -> dict[str, str]:
    return {**os.environ, "KB_DATA_DIR": str(settings.data_dir), "KB_EMBED_CACHE": str(settings.embed_cache_path),
            "KB_EMBED_THREADS": "2", "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}


def _kb(*args: str, settings, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kb", *args], cwd=ROOT, env=_env(settings), capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_cli_export_carries_the_citations_of_kb_ask_json(shared_index, tmp_path) -> None:
    question = QUESTIONS["zh"]
    asked = _kb("ask", "--json", question, settings=shared_index)
    assert asked.returncode == 0, asked.stderr
    ask_json = json.loads(asked.stdout)
    saved = tmp_path / "ask.jsonl"
    saved.write_text(asked.stdout, encoding="utf-8")
    # the saved `kb ask --json` output, exported to JSON and Markdown (no model is loaded for this)
    for fmt in ("json", "md"):
        done = _kb("export", "--answers", str(saved), "-o", str(tmp_path / f"zh.{fmt}"), settings=shared_index)
        assert done.returncode == 0, done.stderr
    exported = json.loads((tmp_path / "zh.json").read_text(encoding="utf-8"))["questions"][0]
    assert [{k: c[k] for k in a} for c, a in zip(exported["citations"], ask_json["citations"])] == ask_json["citations"]
    assert {k: v for k, v in exported.items() if k != "citations"} == {k: v for k, v in ask_json.items()
                                                                        if k != "citations"}
    md = (tmp_path / "zh.md").read_text(encoding="utf-8")
    assert ask_json["citations"] and all(f"> {c['quote']}" in md for c in ask_json["citations"])
    # asking and exporting in one command: the same form, every quote verified
    out = tmp_path / "direct.json"
    done = _kb("export", question, "--format", "json", "-o", str(out), settings=shared_index)
    assert done.returncode == 0, done.stderr
    direct = json.loads(out.read_text(encoding="utf-8"))
    assert direct["questions"][0]["question"] == question and direct["questions"][0]["citations"]
    assert direct["verification"]["quotes_verified"] == len(direct["questions"][0]["citations"])


def test_cli_export_of_a_tampered_index_exits_1_and_writes_nothing(answers, registry_copy, tmp_path) -> None:
    settings, reg = registry_copy
    ans = answers["hi-3.3e"]
    saved = tmp_path / "ask.jsonl"
    saved.write_text(json.dumps(ans.to_json(), ensure_ascii=False) + "\n", encoding="utf-8")
    path = reg.snapshot_path(reg.version(ans.citations[0].version_id).snapshot_sha)
    path.write_bytes(gzip.compress(b"not the document"))
    out = tmp_path / "x.docx"
    done = _kb("export", "--answers", str(saved), "--format", "docx", "-o", str(out), settings=settings, timeout=120)
    assert done.returncode == 1
    assert "export failed, nothing written" in done.stderr and "OpenAI Services Agreement" in done.stderr
    assert not out.exists()


@pytest.mark.slow
def test_docx_footnotes_render_in_libreoffice(files, answers, tmp_path) -> None:
    """A second reader besides python-docx: LibreOffice lays out the footnotes and the quotes."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice or not shutil.which("pdftotext"):
        pytest.skip("LibreOffice (libreoffice-writer-nogui) or pdftotext is not installed")
    subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{tmp_path}/lo-profile", "--convert-to",
                    "pdf", "--outdir", str(tmp_path), str(files["docx"])], check=True, capture_output=True,
                   timeout=300)
    text = subprocess.run(["pdftotext", str(tmp_path / "summary.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = _skeleton(text)
    for _ans, c in _all_citations(answers):
        assert _skeleton(c.quote) in flat
    assert "Question 1, citation [1]:" in text  # the first footnote's text


def test_quotes_from_a_pdf_source_carry_their_page(tmp_path) -> None:
    """A PDF ingested by the real pipeline: the pinpoint names the page from the version's page offsets."""
    from weasyprint import HTML

    from ingest.pipeline import run_ingest
    from ingest.sources import load_sources
    from tests.fixtures.settings import make_settings

    folder = tmp_path / "filings"
    folder.mkdir()
    HTML(string="<h1>Sample Model Licence</h1><p>1. Scope. This licence covers the sample model.</p>"
                "<p style='break-before: page'>2.1 Restrictions. The licensee shall not: (a) resell the model; "
                "(b) use outputs to train a competing model; (c) remove notices.</p>").write_pdf(folder / "licence.pdf")
    (tmp_path / "sources.yaml").write_text(f"sources:\n  - name: filings\n    path: {folder}\n    doctype: tos\n",
                                           encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    report = run_ingest(settings, load_sources(tmp_path / "sources.yaml"), progress=False)
    assert report.failed == 0, report.to_json()
    reg = Registry(settings.registry_path)
    try:
        (doc,) = reg.documents()
        version = reg.latest_version(doc["doc_id"])
        assert len(version.meta.get("pages", [])) == 2
        text = reg.version_text(version.version_id)
        start = text.index("use outputs to train")
        end = text.index("model;", start) + len("model")
        (chunk,) = [c for c in reg.chunks(version.version_id) if c.start <= start < c.end]
        cite = Citation(n=1, doc_id=doc["doc_id"], version_id=version.version_id, chunk_id=chunk.chunk_id,
                        title=version.title, publisher=doc["publisher"], url=doc["url"], doctype="tos",
                        language=version.language, published="", retrieved=version.retrieved,
                        quote=text[start:end], start=start, end=end)
        ans = Answer(question="What may the licensee not do with outputs?", question_language="en",
                     answer=compose("en", [(cite.quote, 1)]), answer_language="en", abstained=False,
                     citations=[cite])
        summary = summarize([ans], settings, registry=reg)
        (q,) = summary.entries[0].quotes
        assert (q.pinpoint.page, q.pinpoint.section) == (2, "§2.1(b)")
        md = render(summary, "md").decode("utf-8")
        assert "§2.1\\(b\\), p. 2, para. " in md  # Markdown-escaped
    finally:
        reg.close()

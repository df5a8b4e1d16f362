"""The app in headless Chromium against ``streamlit run app.py`` on 127.0.0.1 over a real index.

A failing test saves a screenshot to ``test-artifacts/`` (git-ignored); ``KB_TEST_SCREENSHOTS=1``
saves them for passing tests too.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.fixtures.browser import CHROMIUM, DONE, app_command, free_port, launch_chromium
from tests.fixtures.procs import stop_process
from tests.fixtures.settings import ROOT, TEST_CACHE, make_settings

ARTIFACTS = ROOT / "test-artifacts"
HINDI_Q = "OpenAI की Terms of Service API outputs के किस उपयोग को prohibit करती है?"
ENGLISH_Q = "Which court order denied Musk's motion for a preliminary injunction, and when?"
FILTER_Q = "Did Musk testify that xAI used OpenAI models to train Grok?"

pytestmark = [pytest.mark.browser, pytest.mark.integration]


# -- servers --------------------------------------------------------------------------------------
@contextlib.contextmanager
def streamlit_server(data_dir: Path, log: Path, **env: str) -> Iterator[str]:
    """``streamlit run app.py`` on a free loopback port; yields its URL; terminated (then killed) after."""
    port = free_port()
    environ = {**os.environ, "KB_DATA_DIR": str(data_dir), "KB_EMBED_CACHE": str(TEST_CACHE),
               "KB_EMBED_THREADS": "1", "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False", **env}
    environ.pop("KB_APP_PASSWORD", None)
    cmd = app_command(port)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (exit {proc.poll()}):\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def app_url(shared_index, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with streamlit_server(shared_index.data_dir, log) as url:
        yield url


PLANTED = """Zebra licensing terms for the planted test page.

The zebra licence forbids model distillation: <script>alert(1)</script> is not allowed and \
![x](http://127.0.0.1:1/x.png) neither, nor [click](javascript:alert(1)) links.

Another paragraph about zebra licensing with <img src=x onerror=alert(2)> and __bold__ text and $x^2$ maths.
"""


@pytest.fixture(scope="module")
def planted_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Its own tiny index holding one page full of markup, and a server over it."""
    from ingest.pipeline import run_ingest
    from ingest.sources import load_sources

    root = tmp_path_factory.mktemp("planted")
    (root / "pages").mkdir()
    (root / "pages" / "planted-page.txt").write_text(
        "---\ntitle: Planted <script>alert('title')</script> page\nurl: https://planted.example.org/terms\n"
        "publisher: Planted ![logo](http://127.0.0.1:1/logo.png) Press\ndate: 2026-05-01\n---\n" + PLANTED,
        encoding="utf-8")
    (root / "sources.yaml").write_text(f"sources:\n  - name: planted\n    path: {root / 'pages'}\n    doctype: news\n",
                                       encoding="utf-8")
    settings = make_settings(root / "data")
    report = run_ingest(settings, load_sources(root / "sources.yaml"), progress=False)
    assert report.failed == 0, report.to_json()
    from kb.registry import Registry
    from tests.fixtures.registry_db import rows

    reg = Registry(settings.registry_path, readonly=True)
    stored = rows(reg, "SELECT text FROM versions")[0][0]
    reg.close()
    assert "<script>alert(1)</script>" in stored and "![x](http://127.0.0.1:1/x.png)" in stored, \
        "precondition: the stored text must keep the markup literally"
    with streamlit_server(settings.data_dir, root / "server.log") as url:
        yield url


# -- browser --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium (or set KB_CHROMIUM)")
    with launch_chromium() as b:
        yield b


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser session (its own Streamlit session); a screenshot if the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    failures_before = request.session.testsfailed
    yield pg
    failed = request.session.testsfailed > failures_before  # the call phase is reported before teardown
    try:
        if failed or os.environ.get("KB_TEST_SCREENSHOTS") == "1":
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            pg.screenshot(path=str(ARTIFACTS / f"{name}{'-FAILED' if failed else ''}.png"))
    finally:
        context.close()


def open_chat(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector('[data-testid="stChatInput"] textarea:not([disabled])', timeout=120_000)


def ask(page, question: str, timeout: float = 120_000) -> None:
    """Type a question, send it and wait until its answer (text, cards, timing line) is complete."""
    settle(page)
    before = page.locator(DONE).count()
    page.fill('[data-testid="stChatInput"] textarea', question)
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelectorAll(\"{DONE}\").length > {before}", timeout=timeout)


def settle(page, timeout: float = 60_000) -> None:
    """Wait until no rerun is in flight: while one runs, the previous run's elements stay on the page
    marked stale beside the new ones, so counting answers then would count some twice."""
    page.wait_for_function("document.querySelectorAll('[data-stale=\"true\"]').length === 0", timeout=timeout)


def last_answer(page):
    return page.locator('[data-testid="stChatMessage"]').last


def card_languages(message) -> list[str]:
    return message.locator(".kb-card .kb-meta").all_inner_texts()


# -- tests ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_hindi_and_english_questions_get_cited_answers_and_cards_open(page, app_url: str) -> None:
    from playwright.sync_api import expect

    open_chat(page, app_url)
    ask(page, HINDI_Q)
    msg = last_answer(page)
    expect(msg.get_by_text("Question in Hindi")).to_be_visible()
    expect(msg.locator(".kb-answer a.kb-ref").first).to_be_visible()

    ask(page, ENGLISH_Q)
    msg = last_answer(page)
    expect(msg.get_by_text("Question in English")).to_be_visible()
    ref = msg.locator(".kb-answer a.kb-ref").first
    target = ref.get_attribute("href")
    ref.click()
    card = page.locator(target)
    expect(card).to_be_in_viewport()
    quote = card.locator("mark.kb-quote")
    expect(quote).to_be_visible()
    assert len(quote.inner_text().strip()) > 20
    link = card.locator(".kb-link a")
    expect(link).to_have_attribute("href", re.compile(r"^https?://"))
    expect(link).to_have_attribute("target", "_blank")
    expect(card.locator(".kb-prov")).to_contain_text("snapshot sha256")


@pytest.mark.slow
def test_language_filter_changes_the_answer(page, app_url: str) -> None:
    from playwright.sync_api import expect

    open_chat(page, app_url)
    ask(page, FILTER_Q)
    before = card_languages(last_answer(page))
    assert before and not all("Hindi" in m for m in before), before

    page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first.click()
    page.get_by_role("option", name=re.compile("Hindi")).click()
    page.keyboard.press("Escape")
    ask(page, FILTER_Q)
    msg = last_answer(page)
    expect(msg.get_by_text("Filters: language: hi")).to_be_visible()
    after = card_languages(msg)
    assert after and all("Hindi" in m for m in after), after


@pytest.mark.slow
def test_sources_page_lists_documents_and_opens_the_cited_text(page, app_url: str) -> None:
    from playwright.sync_api import expect

    open_chat(page, app_url)
    ask(page, ENGLISH_Q)
    card = last_answer(page).locator("[class*='st-key-kb-card-']").first
    quote = card.locator("mark.kb-quote").inner_text().strip()
    card.get_by_text("Read the stored text").click()
    expect(page.get_by_text("Cited passage")).to_be_visible()
    expect(page.locator(".kb-context mark.kb-quote")).to_have_text(quote)
    expect(page.locator('[data-testid="stText"]').first).to_contain_text(quote[:40])

    page.goto(f"{app_url}/sources")
    expect(page.get_by_text("Indexed documents")).to_be_visible()
    expect(page.get_by_text("Sources and their last ingest run")).to_be_visible()
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    expect(page.locator('[data-testid="stMetric"]').first).to_contain_text("Documents")


@pytest.mark.slow
def test_planted_markup_renders_inert(page, planted_url: str) -> None:
    from playwright.sync_api import expect

    dialogs: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url) if "127.0.0.1:1/" in r.url else None)
    open_chat(page, planted_url)
    ask(page, "What does the zebra licence forbid?")
    msg = last_answer(page)
    expect(msg.locator(".kb-card").first).to_be_visible()
    expect(msg.get_by_text("<script>alert(1)</script>").first).to_be_visible()
    expect(msg.get_by_text("![x](http://127.0.0.1:1/x.png)").first).to_be_visible()
    expect(msg.locator(".kb-card-title").first).to_contain_text("<script>alert('title')</script>")
    expect(msg.locator(".kb-meta").first).to_contain_text("![logo](http://127.0.0.1:1/logo.png)")

    msg.get_by_text("Read the stored text").first.click()
    expect(page.locator('[data-testid="stText"]').first).to_contain_text("[click](javascript:alert(1))")
    page.wait_for_timeout(500)
    assert page.locator("img[src*='127.0.0.1:1'], img[src='x']").count() == 0
    assert page.locator("a[href^='javascript:']").count() == 0
    assert page.evaluate("[...document.scripts].filter(s => s.textContent.includes('alert(')).length") == 0
    assert not dialogs and not requests


@pytest.mark.slow
def test_concurrent_sessions_all_get_answers(browser, app_url: str) -> None:
    """Three browser sessions ask at the same time; each gets its own complete answer."""
    contexts = [browser.new_context() for _ in range(3)]
    try:
        pages = [c.new_page() for c in contexts]
        for pg in pages:
            open_chat(pg, app_url)
        questions = [ENGLISH_Q, HINDI_Q, FILTER_Q]
        for pg, q in zip(pages, questions):
            pg.fill('[data-testid="stChatInput"] textarea', q)
            pg.keyboard.press("Enter")
        for pg, q in zip(pages, questions):
            pg.wait_for_selector(DONE, timeout=180_000)
            assert q in pg.locator('[data-testid="stChatMessage"]').first.inner_text()
            assert pg.locator(".kb-answer").count() + pg.locator('[data-testid="stAlert"]').count() >= 1
    finally:
        for c in contexts:
            c.close()


@pytest.mark.slow
def test_clear_filters_then_the_session_download_holds_every_question(page, app_url: str) -> None:
    from playwright.sync_api import expect

    open_chat(page, app_url)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.locator('[data-testid="stMultiSelect"]').first.click()
    page.get_by_role("option", name=re.compile("Hindi")).click()
    page.keyboard.press("Escape")
    since = sidebar.locator('[data-testid="stDateInput"]').first      # "Published from": yyyy / mm / dd segments
    since.locator('[role="spinbutton"]').first.click()
    page.keyboard.type("20200101")                # before every indexed publication date
    page.keyboard.press("Tab")
    page.wait_for_timeout(1500)                   # the rerun that takes the new value
    ask(page, FILTER_Q)
    msg = last_answer(page)
    expect(msg.get_by_text(re.compile(r"Filters: language: hi · published from: 2020-01-01"))).to_be_visible()
    expect(page.get_by_text("outside allowed range")).to_have_count(0)

    sidebar.get_by_role("button", name="Clear filters").click()
    expect(sidebar.locator('[data-testid="stMultiSelect"]').first).not_to_contain_text("Hindi")
    expect(since).not_to_contain_text("2020")
    ask(page, FILTER_Q)
    expect(last_answer(page).get_by_text("No filters: all sources, latest versions")).to_be_visible()
    ask(page, "What was the price of a kilogram of saffron in Madrid in 1850?")   # not in the sources
    expect(last_answer(page).locator('[data-testid="stAlert"]').first).to_be_visible()

    button = sidebar.get_by_role("button", name=re.compile(r"Download 3 question\(s\)"))
    expect(button).to_be_visible()
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert re.fullmatch(r"kb-session-\d{8}-\d{4}-3q\.md", download.suggested_filename), download.suggested_filename
    text = Path(download.path()).read_text(encoding="utf-8")
    assert "saffron" in text and text.count(FILTER_Q) >= 2


@pytest.mark.slow
def test_a_follow_up_is_searched_with_the_first_questions_subject(page, app_url: str) -> None:
    from playwright.sync_api import expect

    open_chat(page, app_url)
    ask(page, "What do Anthropic's consumer terms say about cancelling a subscription?")
    ask(page, "And which law governs them?")
    msg = last_answer(page)
    expect(msg.get_by_text(re.compile(r"Searching for: And which law governs them\? \(\+ Anthropic"))).to_be_visible()
    expect(msg.locator(".kb-card mark.kb-quote").filter(has_text="Irish").first).to_be_visible()


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shipped demo briefs plus a source on a closed loopback port (it fails), as `make run` offline."""
    from tests.fixtures.demo import build_offline_demo

    root = tmp_path_factory.mktemp("demo")
    settings = build_offline_demo(root)
    with streamlit_server(settings.data_dir, root / "server.log") as url:
        yield url


@pytest.mark.slow
def test_landing_shows_failed_sources_and_example_questions_that_answer(page, demo_url: str) -> None:
    from playwright.sync_api import expect

    open_chat(page, demo_url)
    expect(page.get_by_text(re.compile(r"What is indexed: 5 documents"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"1 of 2 sources failed on their last run"))).to_be_visible()
    expect(page.get_by_role("link", name="See the failed sources and their errors")).to_be_visible()
    example = page.locator("[class*='st-key-kb-example-0'] button")
    expect(example).to_be_visible()
    asked = example.inner_text().strip().split("\n")[-1]     # without the icon's name
    before = page.locator(DONE).count()
    example.click()
    page.wait_for_function(f"document.querySelectorAll(\"{DONE}\").length > {before}", timeout=120_000)
    msg = last_answer(page)
    assert asked in page.locator('[data-testid="stChatMessage"]').first.inner_text()
    expect(msg.locator(".kb-answer a.kb-ref").first).to_be_visible()
    expect(msg.locator(".kb-link").filter(has_text="Summary of:").first).to_be_visible()

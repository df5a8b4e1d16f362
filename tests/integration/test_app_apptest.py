"""The Streamlit app through ``streamlit.testing`` (no browser): notices, password, filters, caching."""
from __future__ import annotations

import hashlib
import html
import socket
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.fixtures.settings import TEST_CACHE

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
SOURCES_PAGE = "pages/1_Sources.py"

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def app_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings the app reads; no password unless a test sets one; answers shown at once."""
    for name in ("KB_APP_PASSWORD", "KB_CHROMA_HOST", "KB_CHROMA_PORT", "KB_COLLECTION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KB_APP_STREAM_DELAY", "0")
    monkeypatch.setenv("KB_EMBED_CACHE", str(TEST_CACHE))
    monkeypatch.setenv("KB_EMBED_THREADS", "2")


def use_index(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("KB_DATA_DIR", str(data_dir))


def start(timeout: float = 180) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    return [html.unescape(str(e.value)) for e in elements]


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def last_turn(at: AppTest):
    return at.session_state["kb_history"][-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- notices ----------------------------------------------------------------------------------------
def test_app_without_index_shows_the_ingest_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_index(monkeypatch, tmp_path / "nothing-here")
    at = start()
    assert any("There is no index yet" in e for e in texts(at.error))
    assert any("python -m ingest run" in c for c in texts(at.code))
    assert at.chat_input[0].disabled


def test_app_with_empty_index_says_empty_and_how_to_fill_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kb.registry import Registry

    Registry(tmp_path / "data" / "registry.sqlite").close()  # schema, no documents
    use_index(monkeypatch, tmp_path / "data")
    at = start()
    assert any("The index is empty" in e for e in texts(at.error)), texts(at.error)
    assert any(f"KB_DATA_DIR={tmp_path / 'data'} python -m ingest run" in c for c in texts(at.code))
    assert at.chat_input[0].disabled


def test_app_with_unreachable_store_names_the_server_and_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from kb.registry import Registry

    Registry(tmp_path / "data" / "registry.sqlite").close()
    use_index(monkeypatch, tmp_path / "data")
    port = free_port()
    monkeypatch.setenv("KB_CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("KB_CHROMA_PORT", str(port))
    at = start()
    assert any("The vector store is unreachable" in e and f"127.0.0.1:{port}" in e for e in texts(at.error))
    assert any(c.startswith("chroma run") and f"--port {port}" in c for c in texts(at.code))
    assert at.chat_input[0].disabled


def test_bad_setting_stops_with_the_variable_to_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_index(monkeypatch, tmp_path)
    monkeypatch.setenv("KB_CHROMA_PORT", "eighty")
    at = start()
    assert any("KB_CHROMA_PORT" in e for e in texts(at.error))


# -- access -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("configured", ["s3cret-pass", "sha256:" + hashlib.sha256(b"s3cret-pass").hexdigest()])
def test_password_gate_blocks_until_the_right_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                       configured: str) -> None:
    use_index(monkeypatch, tmp_path)
    monkeypatch.setenv("KB_APP_PASSWORD", configured)
    at = start()
    assert not at.chat_input and at.text_input[0].label == "Password"
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert any("Wrong password" in e for e in texts(at.error)) and not at.chat_input
    at.text_input[0].input("s3cret-pass")
    at.button[0].click().run()
    assert at.chat_input, "the chat should open after the right password"


def test_no_password_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_index(monkeypatch, tmp_path)
    at = start()
    assert at.chat_input and not at.text_input


# -- a real index -----------------------------------------------------------------------------------
@pytest.fixture
def indexed(monkeypatch: pytest.MonkeyPatch, shared_index) -> AppTest:
    use_index(monkeypatch, shared_index.data_dir)
    return start()


QUESTION = "Did Musk testify that xAI used OpenAI models to train Grok?"


@pytest.mark.slow
def test_answer_shows_language_filters_and_verified_cards(indexed: AppTest) -> None:
    at = ask(indexed, QUESTION)
    turn = last_turn(at)
    assert turn.answer.question_language == "en" and not turn.answer.abstained
    captions = texts(at.caption)
    assert any("Question in **English (en)**" in c for c in captions)
    assert any("No filters" in c for c in captions)
    bodies = [h.proto.body for h in at.get("html")]
    assert any('class="kb-answer"' in b and 'href="#kb-cite-' in b for b in bodies)
    cards = [b for b in bodies if 'class="kb-card"' in b]
    assert len(cards) == len(turn.answer.citations) >= 1
    assert all('<mark class="kb-quote">' in c and "snapshot sha256" in c for c in cards)


@pytest.mark.slow
def test_sidebar_filters_apply_to_retrieval_and_show_with_the_answer(indexed: AppTest) -> None:
    at = ask(indexed, QUESTION)
    unfiltered = last_turn(at)
    assert {c.language for c in unfiltered.answer.citations} != {"hi"}, "pick a question English sources answer"
    at.multiselect(key="f_lang").set_value(["hi"]).run()
    at = ask(at, QUESTION)
    hindi = last_turn(at)
    assert hindi.filters == {"language": "hi"}
    assert hindi.answer.citations and all(c.language == "hi" for c in hindi.answer.citations)
    assert any("Filters: language: hi" in c for c in texts(at.caption))
    at.multiselect(key="f_lang").set_value([]).run()
    at.multiselect(key="f_doctype").set_value(["court"]).run()
    at = ask(at, "Which court order denied Musk's motion for a preliminary injunction?")
    court = last_turn(at)
    assert court.filters == {"doctype": "court"}
    assert all(c.doctype == "court" for c in court.answer.citations) and court.answer.passages
    assert all(p.doc_id for p in court.answer.passages)


@pytest.mark.slow
def test_second_question_does_no_loading_work(indexed: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.answer.engine import Engine
    from kb.vectors.embedding import KBEmbedding

    built: list[str] = []

    def counting(cls: type) -> None:
        original = cls.__init__

        def init(self, *args, **kwargs):
            built.append(cls.__name__)
            original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)

    at = ask(indexed, QUESTION)
    counting(Engine)
    counting(KBEmbedding)  # a model is wrapped in a new KBEmbedding only when it is loaded
    at = ask(at, "Which court order denied Musk's motion for a preliminary injunction?")
    assert built == []
    assert len(at.session_state["kb_history"]) == 2


@pytest.mark.slow
def test_sources_page_lists_documents_sources_and_opens_a_text(indexed: AppTest) -> None:
    at = indexed.switch_page(SOURCES_PAGE).run()
    assert not at.exception
    assert [m.label for m in at.metric][:2] == ["Documents", "Versions"] and int(at.metric[0].value) > 0
    doc = at.selectbox(key="src-doc")
    doc.select_index(0).run()
    assert at.query_params.get("doc")
    assert at.text and len(at.text[0].value) > 100, "the stored text should be shown"


@pytest.mark.slow
def test_store_failing_during_a_question_shows_a_notice_not_a_traceback(indexed: AppTest,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.errors import StoreUnavailable
    from kb.vectors.store import Store

    def down(self, *args, **kwargs):
        raise StoreUnavailable("cannot reach the Chroma server at 127.0.0.1:9; start it or unset KB_CHROMA_HOST")

    monkeypatch.setattr(Store, "query", down)
    at = ask(indexed, QUESTION)
    assert not at.exception
    assert any("cannot reach the Chroma server" in e for e in texts(at.error))
    assert at.code, "the notice shows the command that fixes it"
    assert not at.session_state["kb_history"], "a failed question is not kept as an answer"


@pytest.mark.slow
def test_unexpected_failure_during_a_question_is_reported_in_one_line(indexed: AppTest,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.vectors.store import Store

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Store, "query", broken)
    monkeypatch.setattr(Store, "count", lambda self: 1)
    at = ask(indexed, QUESTION)
    assert not at.exception
    assert any("Answering failed (RuntimeError: boom)" in e for e in texts(at.error))


# -- the demo briefs with one failing source: landing, examples, follow-ups, filters ------------------
@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped demo briefs plus a terms-of-service source on a closed loopback port (it fails)."""
    from tests.fixtures.demo import build_offline_demo

    return build_offline_demo(tmp_path_factory.mktemp("demo")).data_dir


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch, demo_index: Path) -> AppTest:
    use_index(monkeypatch, demo_index)
    return start()


@pytest.mark.slow
def test_landing_says_what_is_indexed_what_failed_and_offers_answered_examples(demo: AppTest) -> None:
    md = texts(demo.markdown)
    assert any(m.startswith("**What is indexed:** 5 documents") for m in md), md
    captions = texts(demo.caption)
    assert any(c.startswith("By type:") and "our summaries 5" in c for c in captions), captions
    assert any(c.startswith("By language:") and "Hindi" in c and "Chinese" in c for c in captions)
    warnings = texts(demo.warning)
    assert any("1 of 2 sources failed" in w and "terms of service 1" in w for w in warnings), warnings
    examples = [b for b in demo.button if b.key and b.key.startswith("kb-example-")]
    assert examples, "example questions drawn from the index"
    question = examples[0].label
    examples[0].click().run()
    assert not demo.exception
    turn = last_turn(demo)
    assert turn.question == question and not turn.answer.abstained and turn.answer.citations
    assert not [b for b in demo.button if b.key and b.key.startswith("kb-example-")], "the landing gives way"


@pytest.mark.slow
@pytest.mark.parametrize("first,follow_up,fact", [
    ("What did Musk say about distillation in court?", "And when did he testify?", "30 April"),
    ("मस्क ने अदालत में डिस्टिलेशन के बारे में क्या कहा?", "और उन्होंने कब गवाही दी?", "30 अप्रैल"),
], ids=["en", "hi"])
def test_follow_up_is_answered_from_the_first_questions_context(demo: AppTest, first: str, follow_up: str,
                                                                fact: str) -> None:
    at = ask(demo, first)
    cited = {c.doc_id for c in last_turn(at).answer.citations}
    at = ask(at, follow_up)
    turn = last_turn(at)
    assert turn.answer.question == follow_up and turn.answer.resolved_question
    assert turn.answer.answer_language == ("hi" if fact == "30 अप्रैल" else "en"), "answered in the follow-up's language"
    assert any(c.startswith(":material/manage_search: Searching for: " + follow_up + " (+ ")
               for c in texts(at.caption)), texts(at.caption)
    assert not turn.answer.abstained and {c.doc_id for c in turn.answer.citations} & cited
    assert fact in " ".join(c.quote for c in turn.answer.citations)


@pytest.mark.slow
def test_clear_filters_clears_them_and_dates_outside_the_corpus_are_accepted(demo: AppTest) -> None:
    from datetime import date

    demo.multiselect(key="f_lang").set_value(["hi"]).run()
    demo.date_input(key="f_since").set_value(date(2020, 1, 1)).run()
    assert not demo.exception and not texts(demo.error)
    at = ask(demo, "What did Musk say about distillation in court?")
    assert last_turn(at).filters == {"language": "hi", "since": "2020-01-01"}
    next(b for b in at.button if b.label == "Clear filters").click().run()
    assert at.multiselect(key="f_lang").value == [] and at.date_input(key="f_since").value is None
    at = ask(at, "What did Musk say about distillation in court?")
    assert last_turn(at).filters == {}
    assert any("No filters" in c for c in texts(at.caption))


def test_session_file_is_named_by_date_and_question_count() -> None:
    from datetime import datetime

    from ui.runtime import session_file_name

    assert session_file_name(4, "pdf", datetime(2026, 12, 3, 9, 15)) == "kb-session-20261203-0915-4q.pdf"

"""Streamlit pieces shared by ``app.py`` and ``pages/``: settings, the cached engine, access, notices.

Only the app imports this module (the CLI never does). Heavy objects are created once per process
with ``st.cache_resource``; everything per user lives in ``st.session_state``.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
import time
from datetime import datetime
from typing import Any, Callable, NoReturn

import streamlit as st

from kb.errors import ConfigError, EmbedderMismatch, EmbedderUnavailable, EmbedServerError, KBError, StoreUnavailable
from kb.registry import Registry, open_registry, redact_url, registry_exists
from kb.settings import Settings, load_settings

INGEST_COMMAND = "python -m ingest run --sources sources.yaml"
PASSWORD_ENV = "KB_APP_PASSWORD"
PASSWORD_SECRET = "app_password"


# -- settings and cached resources ----------------------------------------------------------------
LLM_KEY_SECRET = "llm_api_key"


def settings_or_stop() -> Settings:
    """Settings from the ``KB_*`` environment (the LLM key may come from ``.streamlit/secrets.toml``);
    a wrong setting stops the page with what to fix."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        stop_with("The configuration is invalid", str(exc), "fix the KB_* environment variable and reload")
    if settings.llm != "extractive" and not settings.llm_api_key:
        key = _secret(LLM_KEY_SECRET)
        if key:
            settings = settings.with_(llm_api_key=key)
    return settings


def _secret(name: str) -> str | None:
    """A value from ``.streamlit/secrets.toml``, or None when there is no such file or key."""
    try:
        value = st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets.toml (or an unreadable one) means no secret
        return None
    return str(value) if value else None


def _settings_key(s: Settings) -> str:
    return "|".join(str(x) for x in (s.data_dir.resolve(), s.collection, s.chroma_host, s.chroma_port,
                                      s.embed_model, s.embed_threads, s.embed_cache_path))


@st.cache_resource(show_spinner="Loading the embedding model and the index (once per server)…")
def _load_engine(key: str, _settings: Settings) -> Any:
    """The answer engine (embedder, store, registry, retriever), warmed up; one per process and index."""
    from kb.answer.engine import Engine

    t = time.perf_counter()
    engine = Engine(_settings)
    engine.warm_up()
    engine.load_seconds = time.perf_counter() - t
    return engine


@st.cache_resource(show_spinner=False)
def _load_registry(where: str, _settings: Settings) -> Registry:
    """A read-only registry connection for listings (shared by all sessions; thread-safe), one per
    registry (``where``: the SQLite file or the redacted PostgreSQL URL)."""
    return open_registry(_settings, readonly=True)


def engine_or_none(settings: Settings) -> tuple[Any | None, KBError | None]:
    """The cached engine, or the error that prevents loading it (nothing is cached on failure)."""
    try:
        return _load_engine(_settings_key(settings), settings), None
    except KBError as exc:
        return None, exc


def forget_engine() -> None:
    """Drop the cached engine (after the store went away) so the next question reconnects."""
    _load_engine.clear()


def registry_or_none(settings: Settings) -> Registry | None:
    """A read-only registry for the sources page (None when the index does not exist yet)."""
    try:
        if not registry_exists(settings):
            return None
        return _load_registry(_registry_key(settings), settings)
    except StoreUnavailable:
        return None


def _registry_key(settings: Settings) -> str:
    return redact_url(settings.registry_url) if settings.registry_url else str(settings.registry_path.resolve())


def store_reachable(engine: Any) -> bool:
    """Whether the engine's vector store still answers (a Chroma server may have gone away)."""
    try:
        if engine.settings.chroma_host:
            engine.store.client.heartbeat()
        engine.store.count()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


# -- notices --------------------------------------------------------------------------------------
def fix_for(exc: BaseException, settings: Settings) -> tuple[str, str]:
    """A title and the command that fixes a failure to open the index."""
    if isinstance(exc, EmbedServerError):   # the message (shown above the command) says what to change
        return "The embeddings server does not answer as expected", \
            f"# fix the server at {settings.embed_url} or the KB_EMBED_* settings, then reload this page"
    if isinstance(exc, (EmbedderMismatch, EmbedderUnavailable)):
        return "The embedding model does not match the index", \
            f"KB_EMBED_MODEL=<the model that built it> streamlit run app.py   # or re-ingest: {INGEST_COMMAND}"
    try:   # the registry first: with both servers configured, a PostgreSQL outage is not the store's
        exists = registry_exists(settings)
    except StoreUnavailable:
        return "The registry database is unreachable", \
            f"# start PostgreSQL at {redact_url(settings.registry_url or '')} or unset KB_REGISTRY_URL"
    if settings.chroma_host:
        return "The vector store is unreachable", \
            (f"chroma run --path {settings.chroma_dir} --host {settings.chroma_host} --port {settings.chroma_port}"
             "   # or unset KB_CHROMA_HOST to use the embedded store")
    command = f"KB_DATA_DIR={settings.data_dir} {INGEST_COMMAND}"
    if not exists:
        return "There is no index yet", command
    if _indexed_chunks(settings) == 0:
        return "The index is empty", command
    return "The index cannot be opened", command


def _indexed_chunks(settings: Settings) -> int:
    """How many chunks the registry lists as indexed (-1 when it cannot be read)."""
    try:
        reg = open_registry(settings, readonly=True)
        try:
            return reg.indexed_chunk_total()
        finally:
            reg.close()
    except Exception:  # noqa: BLE001 - a damaged registry is "cannot be opened"
        return -1


def show_problem(title: str, detail: str, command: str) -> None:
    """One clear notice: what is wrong, the details, the command that fixes it."""
    st.error(f"**{title}.** {_plain(detail)}", icon=":material/error:")
    st.markdown("Fix it with:")
    st.code(command, language="bash")


def stop_without_registry(settings: Settings) -> NoReturn:
    """Stop a page that needs the registry: unreachable (PostgreSQL down) or not built yet, with the fix."""
    try:
        registry_exists(settings)
    except StoreUnavailable as exc:
        stop_with("The registry database is unreachable", str(exc),
                  f"# start PostgreSQL at {redact_url(settings.registry_url or '')} or unset KB_REGISTRY_URL")
    where = f"its registry at {redact_url(settings.registry_url)} has no tables" if settings.registry_url \
        else f"{settings.data_dir} holds no registry.sqlite"
    stop_with("There is no index yet", f"{where}.", f"KB_DATA_DIR={settings.data_dir} {INGEST_COMMAND}")


def stop_with(title: str, detail: str, command: str) -> NoReturn:
    show_problem(title, detail, command)
    st.stop()
    raise SystemExit  # pragma: no cover - st.stop() raises


def _plain(text: str) -> str:
    from ui.render import escape_inline

    return escape_inline(text)


# -- access ---------------------------------------------------------------------------------------
def configured_password() -> str | None:
    """The app password from ``KB_APP_PASSWORD`` or ``st.secrets["app_password"]`` (None: open access)."""
    try:
        env = load_settings().app_password
    except KBError:
        env = None
    return env or _secret(PASSWORD_SECRET)


def password_matches(given: str, expected: str) -> bool:
    """Constant-time check; ``expected`` may be the password or ``sha256:<hex digest>`` of it."""
    if expected.startswith("sha256:"):
        digest = hashlib.sha256(given.encode("utf-8")).hexdigest()
        return hmac.compare_digest(digest, expected[7:].strip().lower())
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def require_password() -> None:
    """Ask for the password when one is configured; stop the page until it is given."""
    expected = configured_password()
    if not expected or st.session_state.get("kb_authenticated"):
        return
    st.title("Knowledge base")
    with st.form("kb-login"):
        given = st.text_input("Password", type="password")
        ok = st.form_submit_button("Sign in")
    if ok:
        wait = LOGIN_THROTTLE.wait_seconds()
        if wait > 0:
            st.error(f"Too many failed attempts; try again in {wait:.0f} s.")
            st.stop()
        if password_matches(given, expected):
            LOGIN_THROTTLE.success()
            st.session_state.kb_authenticated = True
            st.rerun()
        LOGIN_THROTTLE.failure()
        st.error("Wrong password.")
    st.stop()


class LoginThrottle:
    """Failed sign-ins slow down every later attempt of this server process: after ``free`` failures each
    one doubles the wait (1 s, 2 s, 4 s ... up to ``cap``), so guessing is bounded whatever the session."""

    def __init__(self, free: int = 3, cap: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.free, self.cap, self.clock = free, cap, clock
        self.failures = 0
        self.locked_until = 0.0
        self._lock = threading.Lock()

    def wait_seconds(self) -> float:
        with self._lock:
            return max(0.0, self.locked_until - self.clock())

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.failures > self.free:
                self.locked_until = self.clock() + min(self.cap, 2.0 ** (self.failures - self.free - 1))

    def success(self) -> None:
        with self._lock:
            self.failures, self.locked_until = 0, 0.0


LOGIN_THROTTLE = LoginThrottle()


def exposed_without_password() -> bool:
    """True when the server listens beyond loopback and no password is set."""
    if configured_password():
        return False
    address = str(st.get_option("server.address") or "")
    if not address:
        return True  # Streamlit listens on every interface by default
    if address == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True



def session_file_name(questions: int, fmt: str, now: datetime | None = None) -> str:
    """``kb-session-20261203-0915-4q.md``: when the session was downloaded and how many questions it holds."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M")
    return f"kb-session-{stamp}-{questions}q.{fmt}"

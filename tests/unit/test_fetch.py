"""ingest.fetch against a real HTTP server on 127.0.0.1: every failure is a FetchError that says what to do."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from ingest import fetch
from ingest.fetch import FetchError, fetch_url, read_file
from kb.settings import Settings
from tests.fixtures.webserver import Route, Server, page, redirect, serve, status

LM = "Wed, 01 Jan 2026 00:00:00 GMT"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fast_and_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short backoff and an empty robots.txt cache for every test."""
    monkeypatch.setattr(fetch, "BACKOFF_BASE", 0.01)
    fetch.clear_robots_cache()


@pytest.fixture
def settings() -> Settings:
    return Settings(allow_private_hosts=True, fetch_timeout=1.0, fetch_retries=1, max_bytes=1_000_000)


def _error(url: str, settings: Settings) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch_url(url, settings)
    assert info.value.item == url
    return info.value


# -- success -------------------------------------------------------------------------------------
def test_fetch_captures_body_type_charset_and_validators(server: Server, settings: Settings) -> None:
    server.set_route("/ok.html", page("<html><body><p>Grüße</p></body></html>", charset="ISO-8859-1",
                                      etag='"v1"', last_modified=LM))
    result = fetch_url(server.url("/ok.html"), settings)
    assert result.status == 200 and not result.not_modified
    assert result.content == "<html><body><p>Grüße</p></body></html>".encode("iso-8859-1")
    assert (result.content_type, result.encoding) == ("text/html", "iso-8859-1")
    assert (result.etag, result.last_modified) == ('"v1"', LM)
    assert result.url == result.final_url == server.url("/ok.html")
    assert result.retrieved.endswith("Z") and "T" in result.retrieved


def test_fetch_sends_the_configured_user_agent(server: Server, settings: Settings) -> None:
    server.set_route("/ua", page("<p>x</p>"))
    fetch_url(server.url("/ua"), settings.with_(user_agent="kb-test-agent/9 (+mailto:x@example.org)"))
    seen = [r.headers.get("User-Agent") for r in server.requests if r.path == "/ua"]
    assert seen[-1] == "kb-test-agent/9 (+mailto:x@example.org)"


def test_conditional_get_with_etag_returns_not_modified(server: Server, settings: Settings) -> None:
    server.set_route("/cond", page("<p>v1</p>", etag='"abc"', last_modified=LM))
    first = fetch_url(server.url("/cond"), settings)
    again = fetch_url(server.url("/cond"), settings, etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.status == 304 and again.content == b""
    assert again.etag == '"abc"'
    changed = fetch_url(server.url("/cond"), settings, etag='"old"')
    assert not changed.not_modified and changed.content == b"<p>v1</p>"


def test_conditional_get_with_last_modified_returns_not_modified(server: Server, settings: Settings) -> None:
    server.set_route("/lm", page("<p>v1</p>", last_modified=LM))
    result = fetch_url(server.url("/lm"), settings, last_modified=LM)
    assert result.not_modified and result.last_modified == LM


def test_redirect_is_followed_to_the_final_url(server: Server, settings: Settings) -> None:
    server.set_route("/old", redirect("/new", 301))
    server.set_route("/new", page("<p>moved here</p>"))
    result = fetch_url(server.url("/old"), settings)
    assert result.final_url == server.url("/new") and result.url == server.url("/old")
    assert result.content == b"<p>moved here</p>"


def test_flaky_server_succeeds_on_retry(server: Server, settings: Settings) -> None:
    route = server.set_route("/flaky", Route(body=b"<p>ok</p>", fail_times=1))
    assert fetch_url(server.url("/flaky"), settings).content == b"<p>ok</p>"
    assert route.hits == 2


def test_retries_back_off_exponentially(server: Server, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(fetch, "BACKOFF_BASE", 0.5)
    monkeypatch.setattr(fetch.time, "sleep", delays.append)
    server.set_route("/down", status(503))
    with pytest.raises(FetchError):
        fetch_url(server.url("/down"), settings.with_(fetch_retries=3))
    assert delays == [0.5, 1.0, 2.0]


# -- HTTP failures -------------------------------------------------------------------------------
def test_404_says_the_page_is_gone_and_what_to_do(server: Server, settings: Settings) -> None:
    err = _error(server.url("/missing"), settings)
    assert "HTTP 404 Not Found" in str(err) and "fix or remove the URL in the sources file" in str(err)
    assert err.status == 404 and not err.retryable


def test_500_is_retried_then_reported(server: Server, settings: Settings) -> None:
    route = server.set_route("/boom", status(500))
    err = _error(server.url("/boom"), settings.with_(fetch_retries=2))
    assert route.hits == 3
    assert "HTTP 500" in str(err) and "try again later" in str(err) and err.retryable
    assert "gave up after 3 attempts" in str(err)


def test_redirect_loop_is_detected(server: Server, settings: Settings) -> None:
    server.set_route("/loop-a", redirect("/loop-b"))
    server.set_route("/loop-b", redirect("/loop-a"))
    err = _error(server.url("/loop-a"), settings)
    assert "redirect loop" in str(err) and "/loop-b" in str(err)


def test_too_many_redirects_are_refused(server: Server, settings: Settings) -> None:
    for n in range(fetch.MAX_REDIRECTS + 2):
        server.set_route(f"/hop{n}", redirect(f"/hop{n + 1}"))
    err = _error(server.url("/hop0"), settings)
    assert "too many redirects" in str(err)


def test_slow_response_times_out(server: Server, settings: Settings) -> None:
    server.set_route("/slow", Route(body=b"late", delay=5))
    started = time.monotonic()
    err = _error(server.url("/slow"), settings.with_(fetch_timeout=0.3, fetch_retries=0))
    assert time.monotonic() - started < 2.5
    assert "timed out after 0.3s" in str(err) and "KB_FETCH_TIMEOUT" in str(err)


def test_connection_reset_is_retried_and_reported(server: Server, settings: Settings) -> None:
    route = server.set_route("/reset", Route(reset=True))
    err = _error(server.url("/reset"), settings)
    assert route.hits == 2
    assert "connection" in str(err).lower() and "try again later" in str(err)


def test_oversized_streamed_body_is_aborted(server: Server, settings: Settings) -> None:
    server.set_route("/huge", Route(stream_bytes=20_000_000))
    started = time.monotonic()
    err = _error(server.url("/huge"), settings)
    assert time.monotonic() - started < 5
    assert "larger than the 1,000,000-byte limit" in str(err) and "max_bytes" in str(err)


def test_oversized_declared_length_is_refused(server: Server, settings: Settings) -> None:
    server.set_route("/declared", Route(body=b"x" * 2_000_000))
    assert "byte limit" in str(_error(server.url("/declared"), settings))


# -- refusals ------------------------------------------------------------------------------------
def test_private_hosts_are_refused_without_the_flag(server: Server) -> None:
    server.set_route("/private", page("<p>secret</p>"))
    before = server.hits("/private")
    for url in (server.url("/private"), server.url("/private").replace("127.0.0.1", "localhost")):
        err = _error(url, Settings())
        assert "KB_ALLOW_PRIVATE_HOSTS=1" in str(err) and "non-public address" in str(err)
    assert server.hits("/private") == before  # refused before connecting


@pytest.mark.parametrize("url", ["http://10.1.2.3/", "http://169.254.169.254/latest/meta-data/",
                                 "http://[::1]:9/", "http://192.168.0.1/admin", "http://0.0.0.0/"])
def test_private_addresses_are_refused(url: str) -> None:
    assert "KB_ALLOW_PRIVATE_HOSTS=1" in str(_error(url, Settings(fetch_timeout=0.5)))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "gopher://example.org/",
                                 "javascript:alert(1)"])
def test_non_http_schemes_are_refused(url: str) -> None:
    err = _error(url, Settings(allow_private_hosts=True))
    assert "is not supported" in str(err)


def test_unresolvable_host_says_check_the_url() -> None:
    err = _error("http://no-such-host.invalid/page", Settings())
    assert "cannot resolve host" in str(err) and "spelling" in str(err)


# -- robots.txt ----------------------------------------------------------------------------------
def test_robots_txt_disallow_is_respected_and_cached(server: Server, settings: Settings) -> None:
    server.set_route("/robots.txt", page("User-agent: *\nDisallow: /members/\n", content_type="text/plain"))
    server.set_route("/members/list", page("<p>members</p>"))
    server.set_route("/public", page("<p>public</p>"))
    before = server.hits("/robots.txt")
    try:
        err = _error(server.url("/members/list"), settings)
        assert "robots.txt" in str(err) and "disallows" in str(err)
        assert fetch_url(server.url("/public"), settings).content == b"<p>public</p>"
        assert server.hits("/robots.txt") - before == 1
        assert server.hits("/members/list") == 0
    finally:
        server.remove_route("/robots.txt")


def test_robots_txt_for_another_agent_does_not_block(server: Server, settings: Settings) -> None:
    server.set_route("/robots.txt", page("User-agent: OtherBot\nDisallow: /\n", content_type="text/plain"))
    server.set_route("/open", page("<p>open</p>"))
    try:
        assert fetch_url(server.url("/open"), settings).status == 200
    finally:
        server.remove_route("/robots.txt")


@pytest.mark.parametrize("robots", [status(500), Route(reset=True), status(404)])
def test_unavailable_robots_txt_allows_fetching(server: Server, settings: Settings, robots: Route) -> None:
    server.set_route("/robots.txt", robots)
    server.set_route("/page", page("<p>fine</p>"))
    try:
        assert fetch_url(server.url("/page"), settings).content == b"<p>fine</p>"
    finally:
        server.remove_route("/robots.txt")


# -- local files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,ctype", [("a.md", "text/markdown"), ("b.txt", "text/plain"), ("c.html", "text/html"),
                                        ("d.pdf", "application/pdf"),
                                        ("e.docx", "application/vnd.openxmlformats-officedocument"
                                                   ".wordprocessingml.document")])
def test_read_file_returns_a_file_uri_and_type(tmp_path: Path, name: str, ctype: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"content")
    result = read_file(path)
    assert result.url == result.final_url == path.resolve().as_uri()
    assert result.content == b"content" and result.content_type == ctype and result.status == 200
    assert result.last_modified and result.retrieved.endswith("Z") and not result.not_modified


def test_read_file_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="does not exist; fix the 'path'"):
        read_file(tmp_path / "nope.txt")
    with pytest.raises(FetchError, match="not a regular file"):
        read_file(tmp_path)
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 100)
    with pytest.raises(FetchError, match="over the 10-byte limit") as info:
        read_file(big, Settings(max_bytes=10))
    assert info.value.item == str(big)


def test_connection_guard_refuses_a_private_peer_that_passed_the_dns_check(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name looked public when checked, the socket lands on 127.0.0.1."""
    monkeypatch.setattr(fetch, "_check_url", lambda url, settings: None)
    monkeypatch.setattr(fetch, "_robots_allow", lambda url, settings: True)
    server.set_route("/rebind", page("<p>secret</p>"))
    err = _error(server.url("/rebind"), Settings(fetch_retries=0))
    assert "KB_ALLOW_PRIVATE_HOSTS=1" in str(err) and "not a public address" in str(err)
    assert server.hits("/rebind") == 0


def test_failure_after_a_redirect_names_both_urls(server: Server, settings: Settings) -> None:
    server.set_route("/moved", redirect("/moved-and-gone", 301))
    err = _error(server.url("/moved"), settings)
    assert "HTTP 404" in str(err) and server.url("/moved-and-gone") in str(err)
    assert f"redirected from {server.url('/moved')}" in str(err)


def test_redirect_to_a_non_http_scheme_is_refused(server: Server, settings: Settings) -> None:
    server.set_route("/to-file", redirect("file:///etc/passwd"))
    assert "scheme 'file' is not supported" in str(_error(server.url("/to-file"), settings))


def test_a_server_dripping_its_headers_is_cut_at_the_deadline() -> None:
    """One header byte every 0.2 s never trips a per-read timeout; the request deadline still holds."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(4096)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.2)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        s = Settings(allow_private_hosts=True, fetch_timeout=1.5, fetch_retries=0, max_bytes=1_000_000)
        t = time.monotonic()
        with pytest.raises(FetchError, match="(?i)time"):
            fetch_url(f"http://127.0.0.1:{port}/slow.html", s)
        assert time.monotonic() - t < 5.0, "the fetch outlived its deadline"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.mark.parametrize("addr,public", [
    ("::ffff:0:127.0.0.1", False), ("64:ff9b::10.0.0.1", False), ("2002:7f00:1::", False),
    ("::192.168.1.1", False), ("::ffff:127.0.0.1", False), ("::1", False),
    ("64:ff9b::8.8.8.8", True), ("2606:4700::1111", True), ("8.8.8.8", True),
])
def test_ipv6_forms_that_embed_an_ipv4_address_are_judged_by_it(addr: str, public: bool) -> None:
    assert fetch.is_public_address(addr) is public

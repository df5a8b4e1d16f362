"""Fetch web pages and local files as raw bytes with their HTTP metadata; FetchError says what to do.

Built on urllib3 directly rather than ``trafilatura.downloads.fetch_response``: trafilatura's
downloader cannot send request headers (no conditional GET), returns ``None`` instead of a reason on
failure, follows at most 2 redirects, and retries SSL errors without certificate checks by default.
"""
from __future__ import annotations

import email.utils
import ipaddress
import logging
import mimetypes
import socket
import threading
import time
import urllib.robotparser
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from kb.errors import KBError
from kb.evidence.raw import FetchResult
from kb.settings import Settings

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10
BACKOFF_BASE = 0.5        # seconds before the first retry; doubled for each further retry
MAX_BACKOFF = 30.0        # cap for backoff and Retry-After sleeps
ROBOTS_TTL = 3600.0       # seconds a host's robots.txt stays cached
ROBOTS_MAX_BYTES = 512 * 1024
CHUNK_BYTES = 64 * 1024
_NOT_PUBLIC = "is not a public address (loopback, private or link-local)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ACCEPT = "text/html,application/xhtml+xml,application/pdf,text/plain;q=0.9,application/xml;q=0.8,*/*;q=0.5"
EXTRA_TYPES = {".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain",
               ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}


class FetchError(KBError):
    """A page or file could not be fetched; the message says what failed and what to do."""

    def __init__(self, item: str, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.item = item
        self.status = status
        self.retryable = retryable


@dataclass
class _Raw:
    """One HTTP exchange: status, headers and (possibly empty) body."""

    status: int
    headers: Any
    body: bytes


def utc_now_iso() -> str:
    """The current UTC time as ISO-8601 with a Z suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- address checks -------------------------------------------------------------------------------
def is_public_address(addr: str) -> bool:
    """True when an IP address is globally routable; an IPv6 form that embeds an IPv4 address (mapped
    ``::ffff:a.b.c.d``, translated ``::ffff:0:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``,
    compatible ``::a.b.c.d``) is judged by that IPv4 address."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    embedded = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if embedded is not None:
        ip = embedded
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64 or ip in _TRANSLATED:
        return low32
    if ip in _COMPATIBLE and int(ip) > 1:  # not :: or ::1
        return low32
    return None


def _private_refusal(url: str, host: str, addr: str) -> FetchError:
    """The error for a URL whose host is a loopback, private or link-local address."""
    return FetchError(url, f"refused to fetch {url}: {host} resolves to the non-public address {addr} "
                           "(loopback, private or link-local); set KB_ALLOW_PRIVATE_HOSTS=1 to allow intranet "
                           "mirrors and local test servers")


def _check_url(url: str, settings: Settings) -> None:
    """Refuse non-HTTP(S) URLs and, unless allowed, hosts that resolve to non-public addresses."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        hint = "use 'path:' in the sources file for local files" if parts.scheme.lower() == "file" else \
            "only http:// and https:// URLs can be fetched"
        raise FetchError(url, f"refused to fetch {url!r}: scheme {parts.scheme or '(none)'!r} is not supported; {hint}")
    host = parts.hostname
    if not host:
        raise FetchError(url, f"{url!r} has no host name; write it as https://host/path in the sources file")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as err:
        raise FetchError(url, f"{url!r} has an invalid port ({err}); fix it in the sources file") from err
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise FetchError(url, f"cannot resolve host {host!r} of {url}: {err}; check the URL's spelling "
                              "and this machine's network/DNS", retryable=True) from err
    if settings.allow_private_hosts:
        return
    for info in infos:
        addr = str(info[4][0])
        if not is_public_address(addr):
            raise _private_refusal(url, host, addr)


#: The deadline of the request running on this thread (a monotonic time), read by the connections.
_REQUEST = threading.local()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _DeadlineHTTPConnection(urllib3.connection.HTTPConnection):
    """Connection whose response headers must arrive before the request's deadline.

    A socket read timeout restarts with every byte, so a server that drips its status line and headers
    one byte a second would hold the fetch for ever; a timer shuts the socket down at the deadline."""

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        deadline = getattr(_REQUEST, "deadline", None)
        timer = None
        if deadline is not None and self.sock is not None:
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), _shutdown, args=(self.sock,))
            timer.daemon = True
            timer.start()
        try:
            return super().getresponse(*args, **kwargs)
        finally:
            if timer is not None:
                timer.cancel()


class _DeadlineHTTPSConnection(_DeadlineHTTPConnection, urllib3.connection.HTTPSConnection):
    pass


class _GuardedHTTPConnection(_DeadlineHTTPConnection):
    """Connection that re-checks the peer address after connecting (defeats DNS rebinding)."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        peer = str(sock.getpeername()[0])
        if not is_public_address(peer):
            sock.close()
            raise urllib3.exceptions.NewConnectionError(self, f"{peer} {_NOT_PUBLIC}")
        return sock


class _GuardedHTTPSConnection(_GuardedHTTPConnection, urllib3.connection.HTTPSConnection):
    pass


class _GuardedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _DeadlineHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOLS: dict[bool, urllib3.PoolManager] = {}
_POOLS_LOCK = threading.Lock()


def _pool(allow_private: bool) -> urllib3.PoolManager:
    """A shared connection pool; without the private-hosts flag every connection is vetted."""
    with _POOLS_LOCK:
        if allow_private not in _POOLS:
            pool = urllib3.PoolManager(num_pools=32, maxsize=8, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
            if allow_private:
                pool.pool_classes_by_scheme = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}
            else:
                pool.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
            _POOLS[allow_private] = pool
        return _POOLS[allow_private]


# -- one request ----------------------------------------------------------------------------------
def _request_headers(settings: Settings, etag: str | None, last_modified: str | None) -> dict[str, str]:
    """User agent, accepted types and encodings, and conditional-GET validators."""
    headers = dict(urllib3.util.make_headers(accept_encoding=True))
    headers.update({"User-Agent": settings.user_agent, "Accept": ACCEPT})
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _too_large(url: str, limit: int) -> FetchError:
    """The error for a body larger than settings.max_bytes."""
    return FetchError(url, f"{url} is larger than the {limit:,}-byte limit (settings.max_bytes); the download was "
                           "stopped; remove the URL or raise max_bytes if the document is legitimate")


def _timed_out(url: str, seconds: float) -> FetchError:
    """The error for a request that did not finish within settings.fetch_timeout."""
    return FetchError(url, f"timed out after {seconds:g}s fetching {url}: the server is slow or unreachable; "
                           "try again later or raise KB_FETCH_TIMEOUT", retryable=True)


def _read_body(resp: Any, url: str, limit: int, deadline: float, timeout: float) -> bytes:
    """Stream a response body, aborting past ``limit`` decoded bytes or after the deadline."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(url, limit)
    body = bytearray()
    while True:  # read1 returns what has arrived, so a slow drip cannot outlive the deadline
        chunk = resp.read1(CHUNK_BYTES, decode_content=True)
        if not chunk:
            break
        body += chunk
        if len(body) > limit:
            raise _too_large(url, limit)
        if time.monotonic() > deadline:
            raise _timed_out(url, timeout)
    return bytes(body)


def _request_once(url: str, headers: dict[str, str], settings: Settings, *, read_body: bool,
                  limit: int | None = None) -> _Raw:
    """One GET without redirects or retries; network failures become FetchError."""
    timeout = settings.fetch_timeout
    deadline = time.monotonic() + timeout
    _REQUEST.deadline = deadline
    try:
        resp = _pool(settings.allow_private_hosts).request(
            "GET", url, headers=headers, redirect=False, retries=False, preload_content=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout))
    except (Urllib3Error, OSError) as err:
        if time.monotonic() >= deadline:
            raise _timed_out(url, timeout) from err
        raise _network_error(url, err, timeout) from err
    finally:
        _REQUEST.deadline = None
    complete = False
    try:
        body = b""
        if read_body and 200 <= resp.status < 300:
            body = _read_body(resp, url, limit or settings.max_bytes, deadline, timeout)
            complete = True
        return _Raw(resp.status, resp.headers, body)
    except (Urllib3Error, OSError) as err:
        raise _network_error(url, err, timeout) from err
    finally:
        if not complete:  # an unread or aborted body: drop the connection instead of draining it
            resp.close()
        resp.release_conn()


def _network_error(url: str, err: Exception, timeout: float) -> FetchError:
    """Translate a urllib3 or socket failure into a FetchError that says what to do."""
    text = str(err)
    if isinstance(err, urllib3.exceptions.NewConnectionError) and _NOT_PUBLIC in text:
        return FetchError(url, f"refused to fetch {url}: {text}; set KB_ALLOW_PRIVATE_HOSTS=1 to allow intranet "
                               "mirrors and local test servers")
    if isinstance(err, urllib3.exceptions.NewConnectionError):
        return FetchError(url, f"cannot connect to {urlsplit(url).netloc} for {url}: {text}; the server may be "
                               "down or the URL wrong, try again later", retryable=True)
    if isinstance(err, (urllib3.exceptions.TimeoutError, socket.timeout)):
        return _timed_out(url, timeout)
    if isinstance(err, urllib3.exceptions.SSLError):
        return FetchError(url, f"TLS/certificate error for {url}: {text}; the site's certificate could not be "
                               "verified, so nothing was fetched; check the URL or ask the site owner")
    if isinstance(err, urllib3.exceptions.LocationValueError):
        return FetchError(url, f"{url!r} is not a valid URL ({text}); fix it in the sources file")
    kind = "connection reset" if "reset" in text.lower() or "aborted" in text.lower() else "connection failed"
    return FetchError(url, f"{kind} while fetching {url} ({text}); the server or network dropped the "
                           "connection, try again later", retryable=True)


def _status_error(url: str, status: int) -> FetchError:
    """The error for a non-success HTTP status."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown status"
    label = f"HTTP {status} {phrase} for {url}"
    if status in (404, 410):
        return FetchError(url, f"{label}: the page is gone; fix or remove the URL in the sources file", status=status)
    if status in (401, 403, 451):
        return FetchError(url, f"{label}: the server refuses access; check the URL is public or remove it "
                               "from the sources file", status=status)
    if status == 429:
        return FetchError(url, f"{label}: the server is rate-limiting this client; retry later or lower the "
                               "source's refresh frequency", status=status, retryable=True)
    if status >= 500:
        return FetchError(url, f"{label}: the server failed; try again later (the source is kept and retried "
                               "on the next run)", status=status, retryable=True)
    if 300 <= status < 400:
        return FetchError(url, f"{label}: a redirect without a usable Location header; fix the URL in "
                               "the sources file", status=status)
    return FetchError(url, f"{label}: the request was rejected; check the URL in the sources file", status=status)


def _retry_delay(attempt: int, retry_after: str) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based), honouring a numeric Retry-After."""
    if retry_after.strip().isdigit():
        return min(MAX_BACKOFF, float(retry_after.strip()))
    return min(MAX_BACKOFF, BACKOFF_BASE * 2 ** attempt)


def _request_with_retries(url: str, headers: dict[str, str], settings: Settings) -> _Raw:
    """GET with exponential backoff on timeouts, connection failures, 429 and 5xx."""
    attempts = max(0, settings.fetch_retries) + 1
    for attempt in range(attempts):
        retry_after = ""
        try:
            raw = _request_once(url, headers, settings, read_body=True)
            if raw.status != 429 and raw.status < 500:
                return raw
            error, retry_after = _status_error(url, raw.status), raw.headers.get("Retry-After", "")
        except FetchError as err:
            if not err.retryable:
                raise
            error = err
        if attempt + 1 < attempts:
            delay = _retry_delay(attempt, retry_after)
            log.info("retrying %s in %.1fs after: %s", url, delay, error)
            time.sleep(delay)
    if attempts > 1:
        raise FetchError(error.item, f"{error} (gave up after {attempts} attempts)", status=error.status,
                         retryable=True)
    raise error


# -- robots.txt -----------------------------------------------------------------------------------
_ROBOTS: dict[str, tuple[float, urllib.robotparser.RobotFileParser | None]] = {}
_ROBOTS_LOCK = threading.Lock()


def clear_robots_cache() -> None:
    """Forget every cached robots.txt (tests, long-running watchers)."""
    with _ROBOTS_LOCK:
        _ROBOTS.clear()


def _load_robots(origin: str, settings: Settings) -> urllib.robotparser.RobotFileParser | None:
    """Fetch and parse ``origin/robots.txt``; None (allow everything) when it is missing or unreachable."""
    url = origin + "/robots.txt"
    headers = _request_headers(settings, None, None)
    try:
        raw = _request_once(url, headers, settings.with_(fetch_timeout=min(settings.fetch_timeout, 10.0)),
                            read_body=True, limit=ROBOTS_MAX_BYTES)
    except FetchError as err:
        log.info("robots.txt of %s unavailable (%s): fetching is allowed", origin, err)
        return None
    if raw.status != 200:
        return None
    parser = urllib.robotparser.RobotFileParser(url)
    parser.parse(raw.body.decode("utf-8", errors="replace").splitlines())
    return parser


def _robots_allow(url: str, settings: Settings) -> bool:
    """True when the host's robots.txt lets our user agent fetch ``url`` (cached per host)."""
    parts = urlsplit(url)
    origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
    now = time.monotonic()
    with _ROBOTS_LOCK:
        cached = _ROBOTS.get(origin)
    if cached is None or now - cached[0] > ROBOTS_TTL:
        cached = (now, _load_robots(origin, settings))
        with _ROBOTS_LOCK:
            _ROBOTS[origin] = cached
    parser = cached[1]
    return parser is None or parser.can_fetch(settings.user_agent, url)


# -- public API -----------------------------------------------------------------------------------
def _content_type(headers: Any) -> tuple[str, str | None]:
    """MIME type and charset of a Content-Type header."""
    raw = headers.get("Content-Type", "") if headers is not None else ""
    mime, _, params = raw.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'").lower()
    return mime.strip().lower(), charset


def _result(url: str, final_url: str, raw: _Raw, etag: str | None, last_modified: str | None) -> FetchResult:
    """Build a FetchResult from the last HTTP exchange."""
    mime, charset = _content_type(raw.headers)
    return FetchResult(
        url=url, final_url=final_url, status=raw.status, content=raw.body, content_type=mime, encoding=charset,
        etag=raw.headers.get("ETag") or (etag if raw.status == 304 else None),
        last_modified=raw.headers.get("Last-Modified") or (last_modified if raw.status == 304 else None),
        not_modified=raw.status == 304, retrieved=utc_now_iso())


def fetch_url(url: str, settings: Settings, etag: str | None = None,
              last_modified: str | None = None) -> FetchResult:
    """GET a URL politely (robots.txt, timeouts, retries, size cap, SSRF guard); 304 -> not_modified."""
    url = url.strip()
    try:
        return _follow(url, _request_headers(settings, etag, last_modified), settings, etag, last_modified)
    except FetchError as err:
        if err.item != url:  # failed on a redirect target: report the URL the user gave
            raise FetchError(url, f"{err} (redirected from {url})", status=err.status,
                             retryable=err.retryable) from err
        raise


def _follow(url: str, headers: dict[str, str], settings: Settings, etag: str | None,
            last_modified: str | None) -> FetchResult:
    """GET ``url``, following redirects one hop at a time so that every hop is checked."""
    current, seen = url, [urldefrag(url)[0]]
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(current, settings)
        if not _robots_allow(current, settings):
            raise FetchError(url, f"robots.txt of {urlsplit(current).netloc} disallows {current} for user agent "
                                  f"{settings.user_agent.split('/')[0]!r}; remove the URL from the sources file or "
                                  "ask the site owner for permission")
        raw = _request_with_retries(current, headers, settings)
        if raw.status in REDIRECT_STATUSES and raw.headers.get("Location"):
            current = urljoin(current, raw.headers["Location"].strip())
            key = urldefrag(current)[0]
            if key in seen:
                chain = " -> ".join(seen + [key])
                raise FetchError(url, f"redirect loop fetching {url} ({chain}); the site is misconfigured, "
                                      "fix the URL in the sources file or report it to the site owner")
            seen.append(key)
            continue
        if raw.status == 304 or 200 <= raw.status < 300:
            return _result(url, current, raw, etag, last_modified)
        raise _status_error(current, raw.status)
    raise FetchError(url, f"too many redirects (more than {MAX_REDIRECTS}) fetching {url}; fix the URL in "
                          "the sources file to point at the final page")


def _guess_type(path: Path) -> str:
    """MIME type of a local file from its extension."""
    suffix = path.suffix.lower()
    return EXTRA_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def read_file(path: Path, settings: Settings | None = None) -> FetchResult:
    """Read a local file as a FetchResult (url = its file:// URI), refusing files over max_bytes."""
    path = Path(path)
    limit = (settings or Settings()).max_bytes
    item = str(path)
    if not path.exists():
        raise FetchError(item, f"{path} does not exist; fix the 'path' in the sources file or restore the file")
    if not path.is_file():
        raise FetchError(item, f"{path} is not a regular file; point 'path' at a file or a folder of documents")
    stat = path.stat()
    if stat.st_size > limit:
        raise FetchError(item, f"{path} is {stat.st_size:,} bytes, over the {limit:,}-byte limit "
                               "(settings.max_bytes); split the file or raise max_bytes")
    try:
        content = path.read_bytes()
    except OSError as err:
        raise FetchError(item, f"cannot read {path}: {err.strerror or err}; check its permissions") from err
    uri = path.resolve().as_uri()
    return FetchResult(url=uri, final_url=uri, status=200, content=content, content_type=_guess_type(path),
                       encoding=None, etag=None, last_modified=email.utils.formatdate(stat.st_mtime, usegmt=True),
                       not_modified=False, retrieved=utc_now_iso())

"""UI load test: concurrent headless-Chromium sessions asking questions in the Streamlit app.

    python bench/ui.py --data-dir data [--sessions 10] [--questions 3] [--json]
    python bench/ui.py --url http://127.0.0.1:8501        # an app that is already running

Each session is its own browser context (its own Streamlit session; ``--shared-cache`` makes them pages
of one context, still separate sessions, whose HTTP cache is warm as for returning users). All sessions open the page
together; once every one is ready they all start asking, each its questions one after another, as a
journalist would. "Time to full answer" runs from pressing
Enter to the moment the answer, its citation cards and its timing line are all on the page (what the
user waits for, progressive display included). One warm-up question is asked first so the figures
are for a loaded server; the cold first answer is reported separately. Without ``--url`` the app is
started with ``streamlit run app.py`` on a free loopback port over ``--data-dir`` and stopped at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Shared with the browser tests: how the app is started, Chromium's flags, the answer-complete marker.
from tests.fixtures.browser import CHROMIUM_ARGS, DONE, app_command, free_port

QUESTIONS = [
    "Which court order denied Musk's motion for a preliminary injunction, and when?",
    "OpenAI की Terms of Service API outputs के किस उपयोग को prohibit करती है?",
    "Did Musk testify that xAI used OpenAI models to train Grok?",
    "哪些公司一直在打击通过提示词来训练新模型的蒸馏行为？",
    "¿La política de uso de Anthropic permite el raspado de modelos (model scraping)?",
    "Which section of the OpenAI Services Agreement lists the customer restrictions?",
    "Does the Qwen Chat terms of service prohibit distillation?",
]


@dataclass
class SessionResult:
    session: int
    load_seconds: float | None = None
    answer_seconds: list[float] = field(default_factory=list)
    server_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def start_app(data_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "KB_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    env.pop("KB_APP_PASSWORD", None)
    cmd = app_command(port)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"streamlit did not start:\n{log_path.read_text(errors='replace')[-2000:]}")


async def ask(page, question: str, timeout_ms: float) -> tuple[float, float | None]:
    """Send a question; seconds until its answer is complete, and the server's own timing line."""
    before = await page.locator(DONE).count()
    await page.fill('[data-testid="stChatInput"] textarea', question)
    t = time.perf_counter()
    await page.keyboard.press("Enter")
    await page.wait_for_function(f"document.querySelectorAll(\"{DONE}\").length > {before}", timeout=timeout_ms)
    seconds = time.perf_counter() - t
    line = await page.locator(DONE).last.inner_text()
    try:
        server = float(line.split("Answered in", 1)[1].split("s", 1)[0])
    except (IndexError, ValueError):
        server = None
    if await page.locator('[data-testid="stException"]').count():
        raise RuntimeError("the app showed an exception")
    return seconds, server


async def open_app(browser, url: str, timeout_ms: float, shared=None):
    """A new page in its own browser context (cold cache), or in ``shared`` (warm cache); a new session either way."""
    context = shared or await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    t = time.perf_counter()
    await page.goto(url, timeout=timeout_ms)
    await page.wait_for_selector('[data-testid="stChatInput"] textarea:not([disabled])', timeout=timeout_ms)
    return (page if shared else context), page, time.perf_counter() - t


async def run_session(browser, url: str, index: int, n_questions: int, timeout_ms: float,
                      ready: asyncio.Barrier, shared=None) -> SessionResult:
    res = SessionResult(index)
    context = None
    try:
        try:
            context, page, res.load_seconds = await open_app(browser, url, timeout_ms, shared)
        finally:
            await ready.wait()  # every session is open (or failed to open) before anyone asks
        for k in range(n_questions):
            q = QUESTIONS[(index + k) % len(QUESTIONS)]
            try:
                seconds, server = await ask(page, q, timeout_ms)
                res.answer_seconds.append(seconds)
                if server is not None:
                    res.server_seconds.append(server)
            except Exception as exc:  # noqa: BLE001 - a failed question is a result, not a crash
                res.failures.append(f"question {k + 1}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    except Exception as exc:  # noqa: BLE001
        res.failures.append(f"session: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    finally:
        if context is not None:
            await context.close()
    return res


async def bench(url: str, sessions: int, questions: int, chromium: str, timeout_s: float,
                shared_cache: bool = False) -> dict:
    from playwright.async_api import async_playwright

    timeout_ms = timeout_s * 1000
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            shared = await browser.new_context(viewport={"width": 1200, "height": 900}) if shared_cache else None
            context, page, load = await open_app(browser, url, timeout_ms, shared)
            cold, _ = await ask(page, QUESTIONS[0], timeout_ms)
            await context.close()
            ready = asyncio.Barrier(sessions)
            t = time.perf_counter()
            results = await asyncio.gather(*(run_session(browser, url, i, questions, timeout_ms, ready, shared)
                                             for i in range(sessions)))
            wall = time.perf_counter() - t
        finally:
            await browser.close()
    answers = [s for r in results for s in r.answer_seconds]
    server = [s for r in results for s in r.server_seconds]
    loads = [r.load_seconds for r in results if r.load_seconds is not None]
    failures = [f"session {r.session}: {f}" for r in results for f in r.failures]

    def rnd(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "url": url, "sessions": sessions, "browser_cache": "shared, warm" if shared_cache else "cold, per session", "questions_per_session": questions, "cpu_count": os.cpu_count(),
        "asked": sessions * questions, "answered": len(answers), "failed": len(failures), "failures": failures,
        "wall_seconds": rnd(wall), "warmup_page_load_seconds": rnd(load), "cold_first_answer_seconds": rnd(cold),
        "time_to_full_answer": {"p50": rnd(percentile(answers, 50)), "p95": rnd(percentile(answers, 95)),
                                "max": rnd(max(answers) if answers else None),
                                "mean": rnd(statistics.fmean(answers) if answers else None)},
        "server_answer_seconds": {"p50": rnd(percentile(server, 50)), "p95": rnd(percentile(server, 95)),
                                  "max": rnd(max(server) if server else None)},
        "page_load_seconds": {"p50": rnd(percentile(loads, 50)), "p95": rnd(percentile(loads, 95))},
        "per_session": [asdict(r) for r in results],
    }


def format_report(r: dict) -> str:
    t, s, pl = r["time_to_full_answer"], r["server_answer_seconds"], r["page_load_seconds"]
    lines = [
        f"{r['sessions']} concurrent browser sessions x {r['questions_per_session']} questions "
        f"({r['cpu_count']} CPUs, browser cache {r['browser_cache']}): {r['answered']}/{r['asked']} answered, "
        f"{r['failed']} failed, "
        f"wall {r['wall_seconds']} s",
        f"time to full answer (browser): p50 {t['p50']} s  p95 {t['p95']} s  max {t['max']} s  mean {t['mean']} s",
        f"server time per answer:        p50 {s['p50']} s  p95 {s['p95']} s  max {s['max']} s",
        f"page load until the chat is ready: p50 {pl['p50']} s  p95 {pl['p95']} s",
        f"warm-up: page {r['warmup_page_load_seconds']} s, first answer {r['cold_first_answer_seconds']} s "
        "(includes loading the model and index when the server was fresh)",
    ]
    lines += [f"  ! {f}" for f in r["failures"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="an app already running (default: start one over --data-dir)")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("KB_DATA_DIR", "data")),
                    help="index to serve when starting the app (default: $KB_DATA_DIR or ./data)")
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--questions", type=int, default=3, help="questions per session, asked one after another")
    ap.add_argument("--chromium", default=os.environ.get("KB_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--timeout", type=float, default=180, help="seconds to wait for one answer")
    ap.add_argument("--shared-cache", action="store_true",
                    help="open the sessions as pages of one browser context (warm HTTP cache, as for returning "
                         "users) instead of one context each (cold cache: every page downloads the app's scripts)")
    ap.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = ap.parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"bench/ui.py: {args.chromium} not found; apt-get install -y chromium", file=sys.stderr)
        return 2
    proc = None
    url = args.url
    if not url:
        if not (args.data_dir / "registry.sqlite").exists():
            print(f"bench/ui.py: no index in {args.data_dir}; build one with "
                  f"`KB_DATA_DIR={args.data_dir} python -m ingest run`", file=sys.stderr)
            return 2
        log = Path(tempfile.mkdtemp(prefix="kb-bench-ui-")) / "streamlit.log"
        proc, url = start_app(args.data_dir, log)
        print(f"started {url} (log {log})", file=sys.stderr)
    try:
        report = asyncio.run(bench(url, args.sessions, args.questions, args.chromium, args.timeout,
                                   args.shared_cache))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_report(report))
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

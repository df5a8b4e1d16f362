"""Add sources page: paste URLs or a feed, or upload files; they are added and ingested in the background.

The page never writes the index itself (pages import only ``kb`` and ``ui``): it runs
``python -m ingest add ... --json`` as a child process with the app's ``KB_*`` environment, polls it
every second, shows its progress lines, and then each input's result. Entries go to the managed
``sources.added.yaml`` beside the sources file (``KB_SOURCES_FILE``, default ``sources.yaml`` in the
project); uploads are written under ``<KB_DATA_DIR>/uploads-tmp/`` first and copied into ``added/`` by
the command. Documents it ingests appear on the Sources page at once (the app follows the registry).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from kb.settings import Settings
from ui import render, runtime

st.set_page_config(page_title="Add sources · Knowledge base", page_icon="🔗", layout="wide")

ROOT = Path(__file__).resolve().parents[1]
UPLOAD_TYPES = ["pdf", "docx", "html", "htm", "md", "txt"]
#: ``ingest.sources.DOCTYPES`` (pages do not import ingest; a test keeps the two equal, the command validates).
DOCTYPES = ["news", "tos", "court", "blog", "summary", "other"]
POLL_SECONDS = 1.0
#: Longest an add may run before the page stops waiting for it (seconds).
JOB_TIMEOUT = 30 * 60
UPLOADS = "uploads-tmp"
JOB_KEY, RESULT_KEY = "add-job", "add-result"


@dataclass
class Job:
    """One running ``ingest add``: the process, where its output goes, what it was given."""

    proc: subprocess.Popen
    folder: Path
    inputs: list[str]
    started: float = field(default_factory=time.monotonic)

    @property
    def out(self) -> Path:
        return self.folder / "stdout.json"

    @property
    def err(self) -> Path:
        return self.folder / "stderr.txt"


def sources_file() -> Path:
    """The user's sources file (``KB_SOURCES_FILE``, relative to the project; default ``sources.yaml``)."""
    p = Path(runtime.settings_or_stop().sources_file).expanduser()
    return p if p.is_absolute() else ROOT / p


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", Path(name).name).lstrip(".") or "upload"


def _clean_old_jobs(folder: Path, older_than: float = 86400) -> None:
    """Leftovers of jobs whose page went away (a day old) are removed."""
    if not folder.is_dir():
        return
    for d in folder.glob("job-*"):
        try:
            if time.time() - d.stat().st_mtime > older_than:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def start_job(settings: Settings, urls: list[str], uploads: list[Any], feed: bool, doctype: str | None,
              publisher: str | None) -> Job:
    """Write the uploads to a job folder and start ``python -m ingest add`` on them and the URLs."""
    base = settings.data_dir / UPLOADS
    base.mkdir(parents=True, exist_ok=True)
    _clean_old_jobs(base)
    folder = Path(tempfile.mkdtemp(prefix="job-", dir=base))
    paths = []
    for i, up in enumerate(uploads):
        target = folder / f"{i:02d}" / _safe_name(up.name)
        target.parent.mkdir()
        target.write_bytes(up.getvalue())
        paths.append(str(target))
    cmd = [sys.executable, "-m", "ingest", "add", "--json", "--sources", str(sources_file())]
    if feed:
        cmd.append("--feed")
    if doctype:
        cmd += ["--doctype", doctype]
    if publisher:
        cmd += ["--publisher", publisher]
    cmd += ["--", *urls, *paths]
    with open(folder / "stdout.json", "wb") as out, open(folder / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy(), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    return Job(proc=proc, folder=folder, inputs=urls + [up.name for up in uploads])


def progress_lines(job: Job, limit: int = 6) -> list[str]:
    """The last progress lines the command wrote on stderr (tqdm's carriage returns split too)."""
    try:
        text = job.err.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", x).strip() for x in re.split(r"[\r\n]+", text)]
    return [x for x in lines if x][-limit:]


def finish_job(job: Job, code: int) -> dict[str, Any]:
    """What the finished command reported: its JSON (when it got that far), exit code and messages."""
    try:
        out = job.out.read_text(encoding="utf-8", errors="replace")
        err = job.err.read_text(encoding="utf-8", errors="replace")
    except OSError:
        out, err = "", ""
    try:
        report = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        report = None
    errors = [line.split("error:", 1)[1].strip() for line in err.splitlines() if line.startswith("ingest: error:")]
    warnings = [line.split("warning:", 1)[1].strip() for line in err.splitlines()
                if line.startswith("ingest: warning:")]
    shutil.rmtree(job.folder, ignore_errors=True)
    return {"code": code, "report": report, "errors": errors, "warnings": warnings, "inputs": job.inputs,
            "tail": [x for x in re.split(r"[\r\n]+", err) if x.strip()][-8:]}


def result_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """One row per input: what became of it."""
    rows = []
    for r in (result.get("report") or {}).get("results", []):
        if r["status"] == "exists":
            outcome = f"already a source: {r['name']}"
        elif "ingest_status" not in r:
            outcome = "added (not ingested yet)"
        elif r["ingest_status"] == "failed":
            outcome = "failed: " + ("; ".join(e["error"] for e in r.get("errors", [])) or "nothing could be ingested")
        else:
            outcome = f"ingested {r['documents']} document(s)" + (
                f", {len(r['errors'])} failed: " + "; ".join(e["error"] for e in r["errors"]) if r.get("errors") else "")
        name = Path(r["input"]).name if r["kind"] == "path" else r["input"]
        rows.append({"input": name, "source name": r["name"], "result": outcome})
    return rows


def show_result(result: dict[str, Any]) -> None:
    for w in result["warnings"]:
        st.warning(render.escape_inline(w), icon=":material/warning:")
    rows = result_rows(result)
    if rows:
        failed = [r for r in rows if r["result"].startswith("failed")]
        ingested = [r for r in rows if r["result"].startswith("ingested")]
        if ingested:
            st.success(f"Ingested {len(ingested)} new source(s); their documents are on the Sources page.",
                       icon=":material/check_circle:")
        if failed:
            st.error(f"{len(failed)} source(s) could not be ingested; the reason is listed. They stay in "
                     "sources.added.yaml and are tried again by the next ingest run.", icon=":material/error:")
        st.dataframe(rows, hide_index=True, width="stretch")
    elif result["errors"]:
        st.error("Nothing was added: " + render.escape_inline(" ".join(result["errors"])), icon=":material/error:")
    elif result["code"] != 0:
        st.error(f"The add command stopped (exit {result['code']}).", icon=":material/error:")
        st.code("\n".join(result["tail"]) or "no output")


def poll(job: Job) -> None:
    """Show the running job's progress; when it ends, keep its result and redraw the page."""
    code = job.proc.poll()
    if code is None and time.monotonic() - job.started > JOB_TIMEOUT:
        job.proc.kill()
        code = job.proc.wait(timeout=10)
    if code is None:
        with st.status(f"Adding and ingesting {len(job.inputs)} input(s)…", state="running", expanded=True):
            lines = progress_lines(job)
            st.text("\n".join(lines) if lines else "starting…")
        return
    st.session_state[RESULT_KEY] = finish_job(job, code)
    st.session_state.pop(JOB_KEY, None)
    st.rerun()


@st.fragment(run_every=POLL_SECONDS)
def progress_panel() -> None:
    job = st.session_state.get(JOB_KEY)
    if job is not None:
        poll(job)


def add_form(settings: Settings, busy: bool) -> None:
    with st.form("add-sources", clear_on_submit=True, border=True):
        text = st.text_area("URLs, one a line", key="add-urls", placeholder="https://example.org/news/story")
        feed = st.checkbox("These are RSS or Atom feed URLs (every item becomes a document)", key="add-feed")
        files = st.file_uploader("Or upload files", type=UPLOAD_TYPES, accept_multiple_files=True, key="add-files")
        cols = st.columns(2)
        doctype = cols[0].selectbox("Document type (optional)", DOCTYPES, index=None, key="add-doctype",
                                    placeholder="detect / other")
        publisher = cols[1].text_input("Publisher (optional)", key="add-publisher").strip()
        submitted = st.form_submit_button("Add", type="primary", disabled=busy)
    if not submitted:
        return
    urls = [line.strip() for line in (text or "").splitlines() if line.strip()]
    uploads = list(files or [])
    if not urls and not uploads:
        st.warning("Paste at least one URL or choose a file.")
        return
    if feed and uploads:
        st.warning("Feeds and files are added separately: untick the feed box to add files.")
        return
    st.session_state.pop(RESULT_KEY, None)
    try:
        st.session_state[JOB_KEY] = start_job(settings, urls, uploads, feed, doctype, publisher or None)
    except OSError as exc:
        runtime.show_problem("The upload could not be stored", f"{settings.data_dir / UPLOADS}: {exc}",
                             f"make KB_DATA_DIR={settings.data_dir} writable")
        return
    st.rerun()


def main() -> None:
    st.html(render.CSS)
    runtime.require_password()
    settings = runtime.settings_or_stop()
    st.title("Add sources")
    st.caption(f"New sources are written to {render.escape_inline(str(sources_file().parent / 'sources.added.yaml'))} "
               f"(read together with {render.escape_inline(sources_file().name)}) and ingested at once into "
               f"{render.escape_inline(str(settings.data_dir))}. Web pages, PDF, Word, HTML, Markdown and text.")
    busy = st.session_state.get(JOB_KEY) is not None
    add_form(settings, busy)
    if st.session_state.get(JOB_KEY) is not None:
        progress_panel()
    result = st.session_state.get(RESULT_KEY)
    if result is not None:
        show_result(result)


main()

"""A read-only data directory: questions still work, ingest says it cannot write (and changes nothing).

As a normal user the folder is made read-only with chmod; as root (CI), where permissions do not
stop writes, each command runs in its own mount namespace where the data folder is a read-only bind
mount (``unshare -m``), as on a read-only volume."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from ingest.pipeline import run_ingest
from ingest.sources import load_sources
from tests.fixtures.settings import make_settings

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
TEXT = ("# Harbour notice\n\nThe harbour authority publishes every lighthouse inspection report within ten days "
        "of the inspection. Reports name the inspector and the date.\n")


RO_MOUNT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


def _wrap(args: list[str], data: Path) -> list[str]:
    """The command, run on a read-only view of ``data`` (root: a read-only bind mount; else chmod did it)."""
    if os.geteuid() != 0:
        return args
    return ["unshare", "-m", "sh", "-c", RO_MOUNT, str(data), *args]


@pytest.fixture
def readonly_index(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, Any]]]:
    root = tmp_path
    try:
        folder = root / "docs"
        folder.mkdir()
        (folder / "notice.md").write_text(TEXT, encoding="utf-8")
        sources = root / "sources.yaml"
        sources.write_text(f"sources:\n  - name: docs\n    path: {folder}\n", encoding="utf-8")
        settings = make_settings(root / "data")
        assert run_ingest(settings, load_sources(sources), progress=False).failed == 0
        env = {**os.environ, "KB_DATA_DIR": str(settings.data_dir), "HF_HUB_OFFLINE": "1",
               "KB_EMBED_CACHE": str(settings.data_dir / "no-cache.sqlite"), "PYTHONDONTWRITEBYTECODE": "1"}
        if os.geteuid() != 0:
            for dirpath, _, _ in os.walk(settings.data_dir):
                os.chmod(dirpath, 0o555)
        else:
            probe = subprocess.run(_wrap(["touch", str(settings.data_dir / "probe")], settings.data_dir),
                                   capture_output=True, text=True, timeout=30)
            if "Read-only" not in probe.stderr:
                pytest.skip(f"cannot make a read-only bind mount here (unshare -m: {probe.stderr.strip()[-200:]})")
        yield root, sources, env
    finally:
        for dirpath, _, _ in os.walk(root):
            os.chmod(dirpath, 0o755)


def _run(args: list[str], env: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_wrap([sys.executable, *args], Path(env["KB_DATA_DIR"])), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _tree(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in (root / "data").rglob("*")}


def test_questions_work_and_ingest_says_it_cannot_write(readonly_index) -> None:
    root, sources, env = readonly_index
    before = _tree(root)
    asked = _run(["-m", "kb", "ask", "Within how many days are lighthouse inspection reports published?"], env)
    assert asked.returncode == 0, asked.stderr
    assert "ten days" in asked.stdout
    ran = _run(["-m", "ingest", "run", "--sources", str(sources)], env)
    assert ran.returncode == 1
    assert "cannot write to the data directory" in ran.stderr and "read-only index" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert _tree(root) == before

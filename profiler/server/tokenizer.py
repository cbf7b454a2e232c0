"""``GET /v1/tokenizer``: the served tokenizer's files, so a load generator needs only the URL.

The files are the loaded tokenizer as ``save_pretrained`` writes it, not copies of the source
directory's, so they are exactly what the server tokenizes with whatever the directory held.
They are written once, on the first request, in a worker thread.
"""

from __future__ import annotations

import base64
import tempfile
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from profiler.api import TokenizerFile, TokenizerFiles


def tokenizer_files(tokenizer: Any) -> TokenizerFiles:
    """``tokenizer``'s files as ``save_pretrained`` writes them."""
    with tempfile.TemporaryDirectory(prefix="profiler-tokenizer-") as directory:
        tokenizer.save_pretrained(directory)
        paths = sorted(path for path in Path(directory).iterdir() if path.is_file())
        files = [
            TokenizerFile(name=path.name, content_base64=base64.b64encode(path.read_bytes()).decode("ascii"))
            for path in paths
        ]
    return TokenizerFiles(files=files)


def add_tokenizer_route(app: FastAPI, tokenizer: Any) -> None:
    """Register ``GET /v1/tokenizer`` for the server's loaded ``tokenizer``."""
    lock = threading.Lock()
    written: list[TokenizerFiles] = []

    def once() -> TokenizerFiles:
        with lock:
            if not written:
                written.append(tokenizer_files(tokenizer))
            return written[0]

    @app.get(
        "/v1/tokenizer",
        summary="The served model's tokenizer files (load them to tokenize as the server does).",
    )
    async def served_tokenizer() -> TokenizerFiles:
        return await run_in_threadpool(once)

"""``GET /v1/tokenizer``: the files load into the tokenizer the server tokenizes with."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from profiler.api import TokenizerFiles
from profiler.engines.engine import load_engine
from profiler.server.app import create_app
from profiler.server.settings import ServeSettings
from profiler.workload import load_tokenizer

TEXT = "Where is the committee located?\n\nThe committee reviewed the annual budget in March."


def get(app: object, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
            return await client.get(path)

    return asyncio.run(call())


@pytest.mark.parametrize("arch", ["led", "bigbird-pegasus"])
def test_the_served_files_tokenize_as_the_server_does(
    arch: str, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = tiny_checkpoints[arch]
    served = load_tokenizer(checkpoint)
    app = create_app(load_engine(checkpoint), served, ServeSettings())
    answer = get(app, "/v1/tokenizer")
    assert answer.status_code == 200, answer.text
    files = TokenizerFiles.model_validate(answer.json())
    assert "tokenizer.json" in {file.name for file in files.files}
    files.write(tmp_path)
    fetched = load_tokenizer(tmp_path)
    assert fetched(TEXT)["input_ids"] == served(TEXT)["input_ids"]
    assert len(fetched(TEXT * 40)["input_ids"]) == len(served(TEXT * 40)["input_ids"]) > 100
    schema = get(app, "/openapi.json").json()
    ok = schema["paths"]["/v1/tokenizer"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/TokenizerFiles")

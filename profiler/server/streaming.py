"""A streamed request's tokens, from the engine's thread to its answer's events.

The decoding loop hands each token to :meth:`TokenStream.push` on the batch thread, which moves
it onto the request's event loop with ``call_soon_threadsafe``; the batcher resolves the request's
future the same way after the batch, so every token is queued before the end. :meth:`events` then
writes them as server-sent events (``token``), and the answer (``done``) or the failure (``error``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from profiler import sse
from profiler.api import ErrorResponse, GenerateResponse, TokenEvent

#: Marks the end of a request's tokens in its queue.
_END = None


class Detokenizer:
    """Turns tokens, one at a time, into the pieces of text each adds.

    The whole output is decoded again at each token, as the final answer decodes it, and a piece
    is the new text after what was sent; text ending in an incomplete character (U+FFFD) waits
    for the next token.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = ""

    def add(self, token: int) -> str:
        self.ids.append(token)
        text: str = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") or not text.startswith(self.sent):
            return ""
        piece, self.sent = text[len(self.sent) :], text
        return piece


class TokenStream:
    """One request's tokens in flight: pushed from the engine's thread, read on its event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[int, int] | None] = asyncio.Queue()

    def push(self, index: int, token: int) -> None:
        """Called on the engine's thread for each token of this request."""
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (index, token))

    def end(self) -> None:
        """Called on the event loop once the request's batch is over (done or failed)."""
        self.queue.put_nowait(_END)

    async def events(
        self,
        detokenizer: Detokenizer,
        finish: Callable[[], GenerateResponse],
        failure: Callable[[], ErrorResponse | None],
    ) -> AsyncIterator[bytes]:
        """``token`` events until the batch is over, then ``done`` with ``finish()``'s answer, or
        ``error`` with ``failure()``'s when the engine failed."""
        while (item := await self.queue.get()) is not _END:
            index, token = item
            piece = TokenEvent(index=index, token_id=token, text=detokenizer.add(token))
            yield sse.event("token", piece.model_dump_json())
        failed = failure()
        if failed is not None:
            yield sse.event("error", failed.model_dump_json(exclude_none=True))
            return
        yield sse.event("done", finish().model_dump_json())

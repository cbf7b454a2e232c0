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

    Each token decodes a short window, not the whole output (which would cost quadratic time on
    the event loop): the text of the tokens since the last piece, decoded together with the few
    before them, minus the text of those few. The context keeps what a token's text depends on
    (SentencePiece drops a word's leading space at the start of a decode). Text ending in an
    incomplete character (U+FFFD) waits for the next token.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        #: ``ids[context:sent]`` is the context; ``ids[sent:]`` the tokens not yet in a piece.
        self.context = 0
        self.sent = 0

    def _text(self, ids: list[int]) -> str:
        text: str = self.tokenizer.decode(ids, skip_special_tokens=True)
        return text

    def add(self, token: int) -> str:
        self.ids.append(token)
        before = self._text(self.ids[self.context : self.sent])
        after = self._text(self.ids[self.context :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self.context, self.sent = self.sent, len(self.ids)
        return after[len(before) :]


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

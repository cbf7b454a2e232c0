"""Server-sent events, the wire format of a streamed ``/v1/generate`` answer: written by the server,
read by the load generator and the tests.

Only what this API sends: named events (``event:``) with one ``data:`` line of JSON, each ended
by a blank line (the WHATWG ``text/event-stream`` format, as OpenAI-style servers stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

MEDIA_TYPE = "text/event-stream"
#: The events this API sends: a token as it is made, then the answer, or the engine's failure.
EventName = Literal["token", "done", "error"]
#: One event as an OpenAPI schema, in the shape SSE-aware clients and schemathesis parse each event
#: into (its ``event`` name and ``data`` line); a response's schema describes each event.
EVENT_SCHEMA = {
    "type": "object",
    "properties": {"event": {"enum": list(get_args(EventName))}, "data": {"type": "string"}},
    "required": ["event", "data"],
}


def event(name: EventName, data: str) -> bytes:
    """One event; ``data`` must be a single line (compact JSON is)."""
    return f"event: {name}\ndata: {data}\n\n".encode()


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: str


class EventParser:
    """Feed it a stream's lines one at a time; it returns each event as its blank line arrives."""

    def __init__(self) -> None:
        self.name = "message"
        self.data: list[str] = []

    def line(self, raw: str) -> Event | None:
        """Take one line (its line ending may be left on); the finished event, or None."""
        text = raw.rstrip("\r\n")
        if not text:
            if not self.data:
                return None
            done = Event(self.name, "\n".join(self.data))
            self.name, self.data = "message", []
            return done
        field, _, value = text.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self.name = value
        elif field == "data":
            self.data.append(value)
        return None  # comments (":...") and fields this API does not send are skipped

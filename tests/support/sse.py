"""Server-sent events as the service streams them: `/ask` names its events, the OpenAI-compatible
chat stream sends bare `data:` lines ending with `[DONE]`."""

from __future__ import annotations

import json
from typing import Any


def sse_events(text: str) -> list[tuple[str, str]]:
    """(event name, data) of each event in a stream body; the name is "message" when none is
    given, and the lines of a multi-line data field are joined with newlines."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((name, "\n".join(data)))
    return events


def ask_events(text: str) -> list[tuple[str, Any]]:
    """(event, decoded JSON data) of each event of a streamed `/ask` answer."""
    return [(name, json.loads(data)) for name, data in sse_events(text)]


def chat_chunks(text: str) -> list[dict]:
    """The decoded chunks of a streamed chat completion, after checking it ends with `[DONE]`."""
    data = [d for _, d in sse_events(text)]
    assert data and data[-1] == "[DONE]", data[-1:]
    return [json.loads(d) for d in data[:-1]]

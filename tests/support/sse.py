"""Server-sent events as the service streams them: `/ask` names its events, the OpenAI-compatible
chat stream sends bare `data:` lines ending with `[DONE]`."""

from __future__ import annotations

import json
from typing import Any


def sse_messages(text: str) -> list[dict[str, str]]:
    """Each event of a stream body as {"event"?, "data"}: `event` only when the stream names it
    (the shape the OpenAPI document's `x-itemSchema` describes); the lines of a multi-line data
    field are joined with newlines."""
    messages = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        message: dict[str, str] = {}
        data = []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                message["event"] = value
            elif field == "data":
                data.append(value)
        if data:
            message["data"] = "\n".join(data)
            messages.append(message)
    return messages


def sse_events(text: str) -> list[tuple[str, str]]:
    """(event name, data) of each event; the name is "message" when none is given."""
    return [(m.get("event", "message"), m["data"]) for m in sse_messages(text)]


def ask_events(text: str) -> list[tuple[str, Any]]:
    """(event, decoded JSON data) of each event of a streamed `/ask` answer."""
    return [(name, json.loads(data)) for name, data in sse_events(text)]


def chat_chunks(text: str) -> list[dict]:
    """The decoded chunks of a streamed chat completion, after checking it ends with `[DONE]`."""
    data = [d for _, d in sse_events(text)]
    assert data and data[-1] == "[DONE]", data[-1:]
    return [json.loads(d) for d in data[:-1]]

"""OpenAI-shaped messages read as a conversation: instructions, history and the last question."""

from __future__ import annotations

import pytest

from rag.answer import Conversation, conversation_from
from rag.errors import InvalidInput


def test_messages_become_instructions_history_and_the_last_question() -> None:
    conversation = conversation_from(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "How many panels"},
                                     {"type": "image_url", "image_url": {"url": "data:,"}},
                                     {"type": "text", "text": "on the school?"}]},
        {"role": "assistant", "content": "540 [1]."},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "content": "ignored", "tool_call_id": "t"},
        {"role": "user", "content": "And on the barn?"},
        {"role": "assistant", "content": "The barn"},  # a partial reply after the question: not read
    ])
    assert conversation == Conversation(
        "And on the barn?",
        ({"role": "user", "content": "How many panels on the school?"}, {"role": "assistant", "content": "540 [1]."}),
        ("Be brief.",))
    assert conversation.follows_up and not Conversation("q").follows_up
    for bad, match in [([], "non-empty list"), ([{"role": "robot", "content": "x"}], "role must be one of"),
                       ([{"role": "assistant", "content": "hi"}], "no user message"),
                       ([{"role": "user", "content": 5}], "string or a list of parts")]:
        with pytest.raises(InvalidInput, match=match) as e:
            conversation_from(messages=bad)
        assert e.value.param == "messages"
    with pytest.raises(InvalidInput, match="either question or messages"):
        conversation_from("q", [{"role": "user", "content": "q"}])

"""A conversation as the answerers read it: the caller's instructions, the earlier turns, the question.

Callers send either one `question` or OpenAI's `messages` list. Both become a `Conversation`: the
last user message is the question; the user and assistant messages before it are the history; the
caller's system (or developer) messages are instructions, sent to a chat model after the service's
own system prompt. Message content may be a string or OpenAI's list of parts (the text parts are
read; images and other parts are not). Tool messages and assistant messages without text carry
nothing an answer could quote and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rag.errors import InvalidInput

__all__ = ["ROLES", "Conversation", "Message", "conversation_from"]

Message = dict[str, str]
"""{"role": "user" | "assistant" | "system", "content": text}: one message as a chat model gets it."""

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


@dataclass(frozen=True)
class Conversation:
    question: str
    """The last user message: what to answer."""
    history: tuple[Message, ...] = ()
    """The user and assistant messages before it, oldest first."""
    instructions: tuple[str, ...] = ()
    """The caller's system and developer messages, in order."""

    @property
    def follows_up(self) -> bool:
        """Whether earlier turns may give the question its meaning."""
        return any(m["role"] == "user" for m in self.history)

    def normalised(self) -> list[Message]:
        """The conversation as plain messages, white space folded: what makes two asks the same."""
        out = [{"role": "system", "content": " ".join(text.split())} for text in self.instructions]
        out += [{"role": m["role"], "content": " ".join(m["content"].split())} for m in self.history]
        out.append({"role": "user", "content": " ".join(self.question.split())})
        return out


def _text(content: Any, where: str) -> str:
    """The text of a message's content: a string, or the text parts of OpenAI's list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict):
                raise InvalidInput(f"{where}.content parts must be objects", param="messages")
            if part.get("type") == "text":
                if not isinstance(part.get("text"), str):
                    raise InvalidInput(f"{where}.content has a text part without text", param="messages")
                texts.append(part["text"])
        return " ".join(texts)
    raise InvalidInput(f"{where}.content must be a string or a list of parts", param="messages")


def conversation_from(question: str | None = None, messages: Sequence[Any] | None = None) -> Conversation:
    """The conversation of a request that gives either `question` or `messages` (not both)."""
    if (question is None) == (messages is None):
        raise InvalidInput("give either question or messages", param="question" if messages is None else "messages")
    if question is not None:
        if not isinstance(question, str) or not question.strip():
            raise InvalidInput("question must be a non-empty string", param="question")
        return Conversation(question)
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a non-empty list", param="messages")
    read: list[Message] = []
    instructions: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidInput(f"{where} must be an object with role and content", param="messages")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidInput(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}", param="messages")
        text = _text(message.get("content"), where)
        if role in ("system", "developer"):
            if text.strip():
                instructions.append(text)
        elif role in ("user", "assistant") and text.strip():
            read.append({"role": role, "content": text})
    last_user = max((i for i, m in enumerate(read) if m["role"] == "user"), default=None)
    if last_user is None:
        raise InvalidInput("messages has no user message with text to answer", param="messages")
    # Anything after the last user message (an assistant's partial reply) is not part of the question.
    return Conversation(read[last_user]["content"], tuple(read[:last_user]), tuple(instructions))

"""The chat prompt: the conversation, with numbered passages under its last question, fitted into
the model's context window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.answer.conversation import Conversation, Message
from rag.errors import InvalidInput
from rag.retrieval import Hit
from rag.tokens import count_chat_tokens

DEFAULT_MAX_TOKENS = 1024
"""Reserved for the reply when fitting passages into the model's window, if the caller set none."""

SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages the user provides. "
    "After each statement, cite the passages that support it by number in square brackets, "
    "like [1] or [2][3]. Cite only numbers that appear in the passages. If the passages do not "
    "contain the answer, say that you could not find it in the documents."
)


def number_passages(hits: Sequence[Hit]) -> str:
    """The passages as the model reads them: `[n] (title, page p)` over each text, n from 1."""
    blocks = []
    for n, h in enumerate(hits, start=1):
        label = h.title or h.source.rsplit("/", 1)[-1]
        if h.page:
            label += f", page {h.page}"
        blocks.append(f"[{n}] ({label})\n{h.text.strip()}")
    return "\n\n".join(blocks)


def build_messages(question: str, hits: Sequence[Hit], history: Sequence[Message] = (),
                   instructions: Sequence[str] = ()) -> list[dict[str, str]]:
    """The chat messages asking `question` about `hits`: the system prompt, the caller's own
    instructions, the earlier turns, then one user message with the passages and the question."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        *({"role": "system", "content": text} for text in instructions),
        *history,
        {"role": "user", "content": f"Passages:\n\n{number_passages(hits)}\n\nQuestion: {question}"},
    ]


def fit_to_window(question: str, hits: Sequence[Hit], model: str, window: int, reply_tokens: int) -> list[Hit]:
    """The longest prefix of `hits` whose prompt leaves `reply_tokens` free in the window.

    Raises `InvalidInput` when even the question with no passages does not fit.
    """
    return fit_conversation(Conversation(question), hits, model, window, reply_tokens).hits


@dataclass(frozen=True)
class Fitted:
    """What of a conversation and its passages is sent to the chat model."""

    messages: list[dict[str, str]]
    hits: list[Hit]
    """The passages sent: the best `len(hits)` of those retrieved, in rank order."""
    history: list[Message]
    """The earlier turns sent: the newest ones that fit."""
    passages_dropped: int
    turns_dropped: int


def fit_conversation(conversation: Conversation, hits: Sequence[Hit], model: str, window: int,
                     reply_tokens: int) -> Fitted:
    """The prompt that leaves `reply_tokens` free in the window, by counting tokens.

    The system prompt, the caller's instructions, the last question and the passages are kept;
    earlier turns go first, oldest first. When even the question and all passages do not fit,
    passages go from the lowest-ranked up. Raises `InvalidInput` when not even the question with no
    passages fits.
    """
    budget = window - reply_tokens
    question, instructions = conversation.question, conversation.instructions

    def tokens(history: Sequence[Message], kept: Sequence[Hit]) -> int:
        return count_chat_tokens(build_messages(question, kept, history, instructions), model)

    if tokens((), []) > budget:
        raise InvalidInput("the question alone does not fit the chat model's context window", param="question")
    history = list(conversation.history)
    base = tokens((), hits)
    if base <= budget:
        # Each message adds its own tokens (the chat format frames every message alike), so the
        # newest turns are kept while their sum fits what the passages leave.
        room = budget - base
        kept_turns: list[Message] = []
        for message in reversed(history):
            cost = count_chat_tokens([message], model) - count_chat_tokens([], model)
            if cost > room:
                break
            room -= cost
            kept_turns.insert(0, message)
        return Fitted(build_messages(question, hits, kept_turns, instructions), list(hits), kept_turns, 0,
                      len(history) - len(kept_turns))
    kept: list[Hit] = []
    for hit in hits:
        if tokens((), [*kept, hit]) > budget:
            break
        kept.append(hit)
    return Fitted(build_messages(question, kept, (), instructions), kept, [], len(hits) - len(kept), len(history))


__all__ = ["DEFAULT_MAX_TOKENS", "SYSTEM_PROMPT", "Fitted", "build_messages", "fit_conversation", "fit_to_window",
           "number_passages"]

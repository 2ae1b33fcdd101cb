"""The chat prompt: numbered passages under the question, fitted into the model's context window."""

from __future__ import annotations

from collections.abc import Sequence

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


def build_messages(question: str, hits: Sequence[Hit]) -> list[dict[str, str]]:
    """The chat messages asking `question` about `hits`: the system prompt, then one user message."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Passages:\n\n{number_passages(hits)}\n\nQuestion: {question}"},
    ]


def fit_to_window(question: str, hits: Sequence[Hit], model: str, window: int, reply_tokens: int) -> list[Hit]:
    """The longest prefix of `hits` whose prompt leaves `reply_tokens` free in the window.

    Raises `InvalidInput` when even the question with no passages does not fit.
    """
    budget = window - reply_tokens
    if count_chat_tokens(build_messages(question, []), model) > budget:
        raise InvalidInput("the question alone does not fit the chat model's context window", param="question")
    kept: list[Hit] = []
    for hit in hits:
        if count_chat_tokens(build_messages(question, [*kept, hit]), model) > budget:
            break
        kept.append(hit)
    return kept


__all__ = ["DEFAULT_MAX_TOKENS", "SYSTEM_PROMPT", "build_messages", "fit_to_window", "number_passages"]

"""Answers with citations people can check.

Retrieved chunks become numbered passages; the answer cites them as `[n]`. Every marker is checked
against the passages: numbers that match no passage are removed, never passed on. `Asker`
retrieves and hands the passages to the `Answerer` its model names: the chat model
(`ChatAnswerer`, OpenAI chat completions) when a key is configured, or the offline
`ExtractiveAnswerer`, which quotes the retrieved sentences closest in meaning to the question.

A question may come with the conversation before it (OpenAI's `messages`): retrieval then runs on
the question made to stand alone (by the chat model in one short call, or offline by rules), and a
chat model receives the conversation fitted to its window.

Modules: `types` (citations, answers, stream events), `conversation` (messages read), `answerer`
(the protocol), `prompt` (the conversation and numbered passages fitted into a window), `rewrite`
(offline standalone questions), `citations` (the marker filter), `usage`, `chat`, `extractive`,
`asker` (rewrite, retrieve, then dispatch by model name).
"""

from rag.answer.answerer import Answerer, AnswerRequest, Rewrite
from rag.answer.asker import DEFAULT_K, Asker
from rag.answer.chat import REWRITE_PROMPT, ChatAnswerer
from rag.answer.citations import CitationFilter, citations_for
from rag.answer.conversation import Conversation, conversation_from
from rag.answer.extractive import EXTRACTIVE, NO_ANSWER, ExtractiveAnswerer
from rag.answer.prompt import (
    DEFAULT_MAX_TOKENS,
    SYSTEM_PROMPT,
    Fitted,
    build_messages,
    fit_conversation,
    fit_to_window,
)
from rag.answer.rewrite import offline_standalone
from rag.answer.types import (
    Answer,
    AnswerCitations,
    AnswerDelta,
    AnswerDone,
    AnswerEvent,
    AnswerFailed,
    Citation,
)

__all__ = [
    "DEFAULT_K",
    "DEFAULT_MAX_TOKENS",
    "EXTRACTIVE",
    "NO_ANSWER",
    "REWRITE_PROMPT",
    "SYSTEM_PROMPT",
    "Answer",
    "AnswerCitations",
    "AnswerDelta",
    "AnswerDone",
    "AnswerEvent",
    "AnswerFailed",
    "AnswerRequest",
    "Answerer",
    "Asker",
    "ChatAnswerer",
    "Citation",
    "CitationFilter",
    "Conversation",
    "ExtractiveAnswerer",
    "Fitted",
    "Rewrite",
    "build_messages",
    "citations_for",
    "conversation_from",
    "fit_conversation",
    "fit_to_window",
    "offline_standalone",
]

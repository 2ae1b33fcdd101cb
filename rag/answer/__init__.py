"""Answers with citations people can check.

Retrieved chunks become numbered passages; the answer cites them as `[n]`. Every marker is checked
against the passages: numbers that match no passage are removed, never passed on. `Asker`
retrieves and hands the passages to the `Answerer` its model names: the chat model
(`ChatAnswerer`, OpenAI chat completions) when a key is configured, or the offline
`ExtractiveAnswerer`, which quotes the retrieved sentences closest in meaning to the question.

Modules: `types` (citations, answers, stream events), `answerer` (the protocol), `prompt`
(numbered passages fitted into a window), `citations` (the marker filter), `chat`, `extractive`,
`asker` (retrieve, then dispatch by model name).
"""

from rag.answer.answerer import Answerer, AnswerRequest
from rag.answer.asker import DEFAULT_K, Asker
from rag.answer.chat import ChatAnswerer
from rag.answer.citations import CitationFilter, citations_for
from rag.answer.extractive import EXTRACTIVE, NO_ANSWER, ExtractiveAnswerer
from rag.answer.prompt import DEFAULT_MAX_TOKENS, SYSTEM_PROMPT, build_messages, fit_to_window
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
    "ExtractiveAnswerer",
    "build_messages",
    "citations_for",
    "fit_to_window",
]

"""What an answer reports in `usage`: tokens in OpenAI's shape, and what was done to get them.

Beside OpenAI's `prompt_tokens`, `completion_tokens` and `total_tokens` (of the answering call; for
the extractive answerer, cl100k_base counts of what it read and wrote), an answer reports:

- `rewrite`: the tokens of the call that made a follow-up stand alone (zeros when none was made);
- `context`: how many passages and earlier turns the answering model was given, and how many did
  not fit its window;
- `cost_usd`: the estimated price of every token above (`rag.pricing`), null for a model without a
  cited price;
- `cached`: whether the answer was replayed from the answer cache (then nothing was spent now).
"""

from __future__ import annotations

from rag.answer.types import Usage

__all__ = ["context_usage", "finished_usage", "token_usage"]


def token_usage(prompt: int, completion: int) -> Usage:
    """{prompt_tokens, completion_tokens, total_tokens}."""
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def context_usage(*, passages_sent: int, passages_dropped: int = 0, turns_sent: int = 0,
                  turns_dropped: int = 0) -> dict[str, int]:
    return {"passages_sent": passages_sent, "passages_dropped": passages_dropped, "turns_sent": turns_sent,
            "turns_dropped": turns_dropped}


def finished_usage(usage: Usage, *, rewrite: Usage, cost_usd: float | None = None, cached: bool = False) -> Usage:
    """An answerer's `usage` with what the asker adds: the rewrite call's tokens under `rewrite`
    (zeros when there was none), the estimated cost and whether it came from the cache."""
    return {**usage, "rewrite": {**token_usage(0, 0), **rewrite}, "cost_usd": cost_usd, "cached": cached}

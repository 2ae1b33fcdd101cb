"""How a parser's own exception is named inside an UnreadableFile message."""

from __future__ import annotations

__all__ = ["failure_reason"]


def failure_reason(exc: BaseException) -> str:
    """`Type: message`, or just the type when the parser gave no message."""
    message = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {message}" if message else name

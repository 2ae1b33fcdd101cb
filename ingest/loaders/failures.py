"""How a parser's own exception is named inside an UnreadableFile message."""

from __future__ import annotations

import re

__all__ = ["failure_reason"]

# Parsers name the object they were given: "Package not found at '<_io.BytesIO object at 0x7f…>'".
_REPR = re.compile(r"'?<[\w.]+ object at 0x[0-9a-fA-F]+>'?")


def failure_reason(exc: BaseException) -> str:
    """`Type: message`, or just the type when the parser gave no message; a Python object's repr
    in the message (an address, of no use to anyone) becomes "the file"."""
    message = _REPR.sub("the file", str(exc).strip())
    name = type(exc).__name__
    return f"{name}: {message}" if message else name

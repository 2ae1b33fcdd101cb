"""Metadata filters on a search: `{key: value | [values]}`, keys ANDed, values ORed.

Checked here, where a search begins, so a bad filter is refused with a message naming the field
before any index is touched; the store evaluates the normalised form (`Store.filtered_chunk_ids`).
"""

from __future__ import annotations

from rag.errors import InvalidInput

__all__ = ["validate_filter"]


def validate_filter(filter_: object) -> dict[str, list]:
    """Normalise a metadata filter `{key: value | [values]}` (keys ANDed, values ORed)."""
    if filter_ is None:
        return {}
    if not isinstance(filter_, dict):
        raise InvalidInput("filter must be an object of {key: value or [values]}", param="filter")
    out: dict[str, list] = {}
    for key, value in filter_.items():
        if not isinstance(key, str) or not key or not key.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise InvalidInput(f"filter key {key!r} must be letters, digits, '_', '-' or '.'", param="filter")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise InvalidInput(f"filter {key!r} has an empty list of values", param="filter")
        for v in values:
            if not isinstance(v, (str, int, float, bool)) or v is None:
                raise InvalidInput(f"filter {key!r} values must be strings, numbers or booleans", param="filter")
        out[key] = values
    return out

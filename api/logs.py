"""Log lines as text or JSON (RAG_LOG_FORMAT), each carrying the id of the request it belongs to.

Configured through Litestar's `LoggingConfig` (its queue handler keeps writing off the request's
thread): the root logger, uvicorn's and Litestar's go through the same formatter. `RequestIdFilter`
stamps every record with the current request id (api/request_id.py), so a line written deep in a
search names the request that caused it. What is logged is chosen where it is logged: request
lines carry method, route template, status and timings, never headers, query strings or bodies, so
keys, the Authorization header and document text stay out of the logs.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from litestar.logging.config import LoggingConfig

from api.request_id import current_request_id

__all__ = ["JsonFormatter", "RequestIdFilter", "TextFormatter", "logging_config"]

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
# uvicorn adds `color_message`, the message with terminal colours: noise in a JSON line.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "color_message"}


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (None outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request id] message`, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = getattr(record, "request_id", None) or "-"
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the record's extra
    fields (a request line's method, route, status, duration_ms, upstream_request_id) and any
    exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        out.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def logging_config(log_format: str) -> LoggingConfig:
    """Litestar's logging configuration for `log_format` (`text` or `json`)."""
    formatter = {"()": JsonFormatter if log_format == "json" else TextFormatter}
    config = LoggingConfig(
        formatters={"standard": formatter},
        filters={"request_id": {"()": RequestIdFilter}},
        loggers={
            "litestar": {"level": "INFO", "handlers": ["queue_listener"], "propagate": False},
            # One line per upstream call at INFO is noise beside the request lines.
            "httpx": {"level": "WARNING"},
        },
    )
    for handler in config.handlers.values():
        handler.setdefault("filters", ["request_id"])
    return config

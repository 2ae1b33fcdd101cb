"""`/metrics` in Prometheus' text format, with Litestar's Prometheus support.

Litestar's middleware counts requests and times them by method, route template (`group_path`: never
the raw path, which holds collection names and ids) and status, as `rag_http_requests_total`,
`rag_http_request_duration_seconds` and `rag_http_requests_in_progress`. The library's own
metrics (search and answer stages, upstream calls, tokens, the ingest queue: `rag/metrics.py`) are
in the same default registry, so one scrape returns both. `/metrics` is not public: with
RAG_API_KEYS set, a scraper sends a key like any client.
"""

from __future__ import annotations

from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

__all__ = ["MetricsController", "prometheus_config"]

PATH = "/metrics"


class MetricsController(PrometheusController):
    path = PATH
    include_in_schema = False  # an operator's endpoint, not part of the API a client codes against


def prometheus_config() -> PrometheusConfig:
    return PrometheusConfig(app_name="rag", prefix="rag_http", group_path=True,
                            # A scrape is not traffic; leaving it out keeps the request counts the users'.
                            exclude=[f"^{PATH}$"])

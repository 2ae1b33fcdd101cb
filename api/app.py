"""The Litestar application: `create_app(settings)` wires routes, lifespan, auth and errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from api.auth import require_api_key
from api.collections import CollectionsController, DocumentsController
from api.errors import EXCEPTION_HANDLERS
from api.logs import logging_config
from api.metrics import MetricsController, prometheus_config
from api.openai_compat import OpenAIController
from api.openapi import documented
from api.pools import WorkPools
from api.query_params import reject_unknown_query
from api.readiness import Loader, health_live, health_ready
from api.request_guard import request_guard
from api.request_id import install as install_request_id
from api.responses import Health
from api.search import SearchController, SimilarityController
from api.security_headers import security_headers
from api.web.docs import SwaggerUIPage
from api.web.routes import web_routes
from ingest.queue import IngestQueue
from rag import __version__
from rag.config import Settings
from rag.service import Service

log = logging.getLogger(__name__)


@get("/health", opt={"public": True}, operation_id="health", summary="Liveness and readiness",
     tags=["health"], **documented(public=True))
async def health(state: State) -> Health:
    service: Service = state.service
    pools: WorkPools = state.pools
    # Its own threads: slow asks and heavy searches cannot delay it (api/pools.py). Never refused:
    # a monitor must see the service alive, and each call takes a moment.
    return Health.from_health(await pools.health.run(service.health, admit=False))


def _service(state: State) -> Service:
    return state.service


def _pools(state: State) -> WorkPools:
    return state.pools


def _ingest_queue(state: State) -> IngestQueue:
    return state.ingest_queue


def create_app(settings: Settings | None = None, *, warm_up: bool = True) -> Litestar:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        service = Service(settings)
        queue = IngestQueue(service)
        app.state.settings = settings
        app.state.service = service
        app.state.ingest_queue = queue
        app.state.pools = pools = WorkPools.from_settings(settings)
        # Connections are accepted at once; the model and the indexes load behind them (/health/ready).
        loader = app.state.loader = Loader(service).start() if warm_up else None
        try:
            yield
        finally:
            if loader is not None:
                loader.stop()
            queue.shutdown()
            pools.shutdown()
            service.close()

    from api.passthrough import passthrough_lifespan, passthrough_router

    app = Litestar(
        route_handlers=[
            health, CollectionsController, DocumentsController, SearchController, SimilarityController,
            OpenAIController, passthrough_router, *web_routes(),
            health_live, health_ready, MetricsController,
        ],
        dependencies={
            "service": Provide(_service, sync_to_thread=False),
            "ingest_queue": Provide(_ingest_queue, sync_to_thread=False),
            "pools": Provide(_pools, sync_to_thread=False),
        },
        lifespan=[resources, passthrough_lifespan],
        guards=[require_api_key, reject_unknown_query],
        # The request guard (Origin, Host, dot segments) after the metrics, so refusals are counted.
        middleware=[security_headers, prometheus_config().middleware, request_guard],
        logging_config=logging_config(settings.log_format),
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_upload_mb * 1024 * 1024,
        openapi_config=OpenAPIConfig(
            title="RAG service", version=__version__,
            description="Semantic search and answers with citations; OpenAI-compatible endpoints under /v1.",
            path="/schema",
            # Public: a browser must read the docs page and the document without a key.
            openapi_router=Router(path="/schema", route_handlers=[], opt={"public": True}, include_in_schema=False),
            # Swagger UI 5 (reads OpenAPI 3.1) from the installed swagger-ui-py package: works offline.
            render_plugins=[SwaggerUIPage(), JsonRenderPlugin()],
        ),
    )
    return install_request_id(app)



"""The Litestar application: `create_app(settings)` wires routes, lifespan, auth and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, get

from api.auth import require_api_key
from api.errors import EXCEPTION_HANDLERS
from rag.config import Settings, get_settings


@get("/health", opt={"public": True}, operation_id="health", summary="Liveness and readiness")
async def health() -> dict:
    return {"status": "ok"}


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        app.state.settings = settings
        yield

    return Litestar(
        route_handlers=[health],
        lifespan=[resources],
        guards=[require_api_key],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_upload_mb * 1024 * 1024,
    )

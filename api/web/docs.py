"""The API docs page: Swagger UI 5 from the installed `swagger-ui-py`, started by an external script.

Litestar's own Swagger plugin writes an inline `<script>`, which the page's Content-Security-Policy
(`default-src 'self'`) refuses; this page loads `docs-init.js` from /static instead.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

from api.web.routes import STATIC_DIR, SWAGGER_ASSETS


class SwaggerUIPage(OpenAPIRenderPlugin):
    """Serves `docs.html` at /schema/swagger (and /schema, the first plugin's default)."""

    def __init__(self) -> None:
        super().__init__(path="/swagger", media_type=MediaType.HTML)

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        html = (STATIC_DIR / "docs.html").read_text()
        return html.replace("{{assets}}", SWAGGER_ASSETS).encode()

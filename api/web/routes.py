"""Routes that serve the page at `/`, its assets under `/static`, and Swagger UI's assets."""

from __future__ import annotations

from pathlib import Path

from litestar import Router, get
from litestar.handlers import HTTPRouteHandler
from litestar.response import File
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).parent / "static"
"""The page's HTML, CSS and JavaScript modules, written here and served as they are."""
SWAGGER_ASSETS = "/schema/assets"
"""Where Swagger UI's own files are served from."""


def swagger_ui_dir() -> Path:
    """The folder of Swagger UI 5's distribution inside the installed `swagger-ui-py` package."""
    import swagger_ui

    return Path(swagger_ui.__file__).parent / "static"


@get("/", opt={"public": True}, include_in_schema=False, sync_to_thread=False)
def index() -> File:
    return File(STATIC_DIR / "index.html", content_disposition_type="inline", media_type="text/html")


def web_routes() -> list[Router | HTTPRouteHandler]:
    """The public, undocumented routes of the browser side."""
    return [
        index,
        create_static_files_router(path="/static", directories=[STATIC_DIR], opt={"public": True},
                                   include_in_schema=False),
        create_static_files_router(path=SWAGGER_ASSETS, directories=[swagger_ui_dir()], opt={"public": True},
                                   include_in_schema=False),
    ]

"""Headers every response carries, so a page this service serves is safe to open."""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

CSP = b"default-src 'self'; frame-ancestors 'none'"
"""Only this origin's scripts, styles and requests, and no framing: untrusted text shown by the page
cannot run, load or exfiltrate anything."""
DOCS_CSP = b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
"""The docs pages (under /schema): Swagger UI draws its icons as data: SVG images; still no script
but this origin's."""
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"content-security-policy", CSP),
                                                     (b"x-content-type-options", b"nosniff"))


def security_headers(app: ASGIApp) -> ASGIApp:
    """ASGI middleware adding SECURITY_HEADERS to every HTTP response, errors included (DOCS_CSP
    on the docs pages)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        docs = scope["path"].startswith("/schema/")
        headers = [(name, DOCS_CSP if docs and name == b"content-security-policy" else value)
                   for name, value in SECURITY_HEADERS]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in headers if h[0] not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware

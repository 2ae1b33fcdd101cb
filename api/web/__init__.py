"""The browser side of the service: the page at `/`, its assets, and the API docs page.

Everything is served by this process from files in this package (the page) and from the installed
`swagger-ui-py` package (Swagger UI 5, which reads OpenAPI 3.1): no CDN, no build step.
"""

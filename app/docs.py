"""The API docs page at ``/schema``: Swagger UI served from the package, no CDN.

Litestar's own pages load Redoc or Swagger UI (``latest``) and fonts from third-party CDNs
without integrity hashes. This page loads Swagger UI's files from the ``swagger-ui-bundle``
package (Apache-2.0) and its start-up script from ``app/static``, all under
``/schema/static/``, so the page runs under a CSP that allows scripts, styles and fetches
from copool alone and no inline script (``app.headers.DOCS_POLICY``).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, YamlRenderPlugin
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = "/static"
"""Where the page's files are served, under the OpenAPI path (``/schema/static/…``)."""


class DocsPage(OpenAPIRenderPlugin):
    """Swagger UI on copool's OpenAPI document, every file served by copool."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/swagger"])

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page: Swagger UI's bundle and CSS, and ``app/static/docs.js`` to start it."""
        json_route = self.get_openapi_json_route(request)  # /schema/openapi.json
        document = escape(json_route)
        assets = escape(json_route.rsplit("/", 1)[0] + ASSETS)
        title = escape(str(openapi_schema.get("info", {}).get("title", "API")))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{document}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/docs.js"></script>
</body>
</html>
""".encode()

    def receive_router(self, router: Router) -> None:
        """Serve the page's files beside it."""
        router.register(
            create_static_files_router(
                path=ASSETS,
                directories=[STATIC, Path(str(swagger_ui_path))],
                cache_control=CacheControlHeader(max_age=3600),
                include_in_schema=False,
            )
        )


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """The docs page at ``/schema`` and ``/schema/swagger``, the document as JSON and YAML."""
    return [DocsPage(), JsonRenderPlugin(), YamlRenderPlugin()]

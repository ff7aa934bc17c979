"""The interactive API docs at ``/docs`` (``serve --api-docs``), served from the node itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN: a script from a third party, run in
the origin of the dashboard's session cookie. These pages load Swagger UI 5 (which reads
OpenAPI 3.1) from the pinned ``swagger-ui-py`` package instead, with no inline script, under
a policy that allows scripts from the node's origin only. ReDoc is not served.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
_STATIC = f"{DOCS_PATH}/static"

# Swagger UI sets style attributes from its scripts; nothing else is relaxed.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")

_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>agentcron API</title>
<link rel="stylesheet" href="{_STATIC}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{_STATIC}/swagger-ui-bundle.js"></script>
<script src="{DOCS_PATH}/start.js"></script>
</body>
</html>
"""

_START = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
                               deepLinking: true, validatorUrl: null});
});
"""


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` over the app's ``/openapi.json``."""
    from importlib.resources import files  # only a node that serves the docs pays for them

    static = files("swagger_ui") / "static"
    app.mount(_STATIC, StaticFiles(directory=str(static)), name="docs-static")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs_page() -> HTMLResponse:
        return HTMLResponse(_PAGE)

    @app.get(f"{DOCS_PATH}/start.js", include_in_schema=False)
    async def docs_start() -> Response:
        return Response(_START, media_type="text/javascript")

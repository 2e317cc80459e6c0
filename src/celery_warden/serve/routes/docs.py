"""``/api/docs``: the API's reference page, rendered from ``/api/openapi.json`` by one small
script served from this origin — no CDN and no inline script, so it works under the same strict
Content-Security-Policy as everything else (FastAPI's Swagger page needs both)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(prefix="/api/docs", include_in_schema=False)
_FILES = {"": ("index.html", "text/html; charset=utf-8"),
          "/docs.js": ("docs.js", "text/javascript; charset=utf-8"),
          "/docs.css": ("docs.css", "text/css; charset=utf-8")}


def _file(name: str) -> bytes:
    return resources.files("celery_warden.serve").joinpath("apidocs", name).read_bytes()


def _route(suffix: str, name: str, media_type: str) -> None:
    body = _file(name)

    @router.get(suffix, name=f"docs{suffix or '_page'}")
    def serve_file() -> Response:
        return Response(body, media_type=media_type)


for _suffix, (_name, _type) in _FILES.items():
    _route(_suffix, _name, _type)

__all__ = ["router"]

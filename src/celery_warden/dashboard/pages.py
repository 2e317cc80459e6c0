"""Page shells: one route per linkable dashboard URL, rendered by Jinja2 with no data in them.

A shell carries the layout, the navigation, the filter form filled from the query string (so a
filtered view is a URL to paste into an incident channel) and ``data-*`` attributes naming the
page module and the path parameter. The data itself is fetched by the page's ES module from the
public API, so a shell needs no credentials and never holds text from tasks; Jinja2 autoescapes
the few request values (query parameters, path ids) that it echoes into form fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import Scope

from celery_warden.dlq.entry import REASONS, STATUSES
from celery_warden.version import __version__

PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR = PACKAGE_DIR / "static"
TEMPLATE_DIR = PACKAGE_DIR / "templates"
#: Where the static files are served; ``?v=<version>`` on each URL makes an upgrade reload them.
STATIC_PATH = "/static"


@dataclass(frozen=True, slots=True)
class Field:
    """One filter of a list page: a query-string parameter and how the form asks for it."""

    name: str
    label: str
    kind: str = "text"  # text | select | datetime
    options: tuple[tuple[str, str], ...] = ()
    placeholder: str = ""


_STATES = (("", "any state"), *((s, s.lower()) for s in (
    "PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED", "REJECTED")))
_AGES = (("", "any age"), ("300", "older than 5 min"), ("3600", "older than 1 h"),
         ("86400", "older than 1 day"), ("604800", "older than 7 days"))
_DLQ_STATUS = (("", "any status"), *((s, s) for s in STATUSES))
_DLQ_REASONS = (("", "any reason"), *((r, r.replace("_", " ")) for r in REASONS))

FILTERS: dict[str, tuple[Field, ...]] = {
    "tasks": (
        Field("state", "State", "select", _STATES),
        Field("name", "Task name", placeholder="app.tasks.send_email"),
        Field("queue", "Queue", placeholder="celery"),
        Field("worker", "Worker", placeholder="celery@host"),
        Field("since", "Since", "datetime"),
        Field("until", "Until", "datetime"),
        Field("id_prefix", "Id prefix", placeholder="3f2a"),
        Field("q", "Text", placeholder="error text, args"),
    ),
    "dlq": (
        Field("reason", "Reason", "select", _DLQ_REASONS),
        Field("task_name", "Task name"),
        Field("status", "Status", "select", _DLQ_STATUS),
        Field("older_than_s", "Age", "select", _AGES),
    ),
}

#: Navigation: (path, label, page key).
NAV: tuple[tuple[str, str, str], ...] = (
    ("/", "Overview", "overview"),
    ("/tasks", "Tasks", "tasks"),
    ("/task-types", "Task types", "task_types"),
    ("/queues", "Queues", "queues"),
    ("/workers", "Workers", "workers"),
    ("/dlq", "DLQ", "dlq"),
    ("/errors", "Errors", "errors"),
    ("/breakers", "Breakers", "breakers"),
    ("/alerts", "Alerts", "alerts"),
)

#: ES modules every page imports (main.js's graph), preloaded from the page's head.
SHARED_MODULES = ("api.js", "dom.js", "format.js", "live.js", "session.js", "ui.js", "chart.js")
#: What a page module imports beyond the shared ones.
PAGE_IMPORTS: dict[str, tuple[str, ...]] = {"task_type": ("pages/tasks.js",)}

templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True
templates.env.globals["static"] = lambda path: f"{STATIC_PATH}/{path}?v={__version__}"
templates.env.globals["nav"] = NAV

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


def _shell(request: Request, page: str, title: str, *, section: str | None = None,
           ident: str = "", template: str = "page.html") -> Response:
    params = {k: v for k, v in request.query_params.items() if v != ""}
    return templates.TemplateResponse(request, template, {
        "page": page,
        "section": section or page,
        "title": title,
        "ident": ident,
        "params": params,
        "query": urlencode(params),
        "filters": FILTERS.get(page, ()),
        "modules": (*SHARED_MODULES, f"pages/{page}.js", *PAGE_IMPORTS.get(page, ())),
    })


@router.get("/login")
def login(request: Request) -> Response:
    return _shell(request, "login", "Sign in", template="login.html")


@router.get("/")
def overview(request: Request) -> Response:
    return _shell(request, "overview", "Overview")


@router.get("/tasks")
def tasks(request: Request) -> Response:
    return _shell(request, "tasks", "Tasks")


@router.get("/tasks/{task_id}")
def task(request: Request, task_id: str) -> Response:
    return _shell(request, "task", f"Task {task_id}", section="tasks", ident=task_id)


@router.get("/task-types")
def task_types(request: Request) -> Response:
    return _shell(request, "task_types", "Task types")


@router.get("/task-types/{name}")
def task_type(request: Request, name: str) -> Response:
    return _shell(request, "task_type", name, section="task_types", ident=name)


@router.get("/queues")
def queues(request: Request) -> Response:
    return _shell(request, "queues", "Queues")


@router.get("/workers")
def workers(request: Request) -> Response:
    return _shell(request, "workers", "Workers")


@router.get("/dlq")
def dlq(request: Request) -> Response:
    return _shell(request, "dlq", "Dead letter queue")


@router.get("/dlq/{entry_id}")
def dlq_entry(request: Request, entry_id: str) -> Response:
    return _shell(request, "dlq_entry", f"DLQ entry {entry_id}", section="dlq", ident=entry_id)


@router.get("/errors")
def errors(request: Request) -> Response:
    return _shell(request, "errors", "Errors")


@router.get("/errors/{fingerprint}")
def error_group(request: Request, fingerprint: str) -> Response:
    return _shell(request, "error_group", "Error group", section="errors", ident=fingerprint)


@router.get("/breakers")
def breakers(request: Request) -> Response:
    return _shell(request, "breakers", "Circuit breakers")


@router.get("/alerts")
def alerts(request: Request) -> Response:
    return _shell(request, "alerts", "Alerts")


class _Static(StaticFiles):
    """Static files revalidated on each load (ETag → 304), so an upgrade is never half-cached."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_static(app: FastAPI) -> None:
    """Serve the dashboard's CSS, ES modules and vendored libraries under ``/static``."""
    app.mount(STATIC_PATH, _Static(directory=str(STATIC_DIR)), name="dashboard-static")


__all__ = ["FILTERS", "NAV", "STATIC_DIR", "Field", "mount_static", "router"]

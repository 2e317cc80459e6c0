"""Plain Starlette routes placed ahead of FastAPI's for the hottest reads.

Why: FastAPI wraps every route in its own request handling — solving the route's dependencies
(each with its own sub-dependencies: the request, the bearer declaration, the context),
reading a body a GET has not got, checking the return value — before and after the endpoint
runs. For the task search page (20 clients paging a 1,000,000-record store) that wrapper was
~15 % of the server's CPU per page, measured with the store read stubbed out
(``bench/README.md``). A route listed here answers the same path and method first, running the
same credential check (the scope dependency's own function) and the same endpoint body as the
FastAPI route, which stays in the app: it is what the OpenAPI schema documents and what answers
should the hot route be taken out. The app's middleware and exception handlers apply to both
alike (they wrap the router, not the route), so errors and headers do not change;
``tests/unit/test_hot_routes.py`` compares the two routes' answers.
"""

from __future__ import annotations

from starlette.routing import Route

from celery_warden.serve.routes.tasks import list_tasks_hot


def hot_routes() -> list[Route]:
    """The hot routes, to put first in the app's router."""
    route = Route("/api/v1/tasks", list_tasks_hot, methods=["GET"])
    route.methods = {"GET"}  # Starlette adds HEAD to a GET route; FastAPI's route has none
    return [route]


__all__ = ["hot_routes"]

"""A list page masked exactly as ``ServeContext.masked`` masks it, at a fraction of the cost.

Every response body goes through the redactor. For a page of 50-200 list items that is
~17 strings each, each checked on its own; :meth:`~celery_warden.redaction.Redactor.redact_records`
checks an item's strings at once and masks in full only an item that may hold a secret, with
the same result (``tests/unit/test_page_mask.py`` compares the two on hostile records).
"""

from __future__ import annotations

from typing import Any

from celery_warden.redaction import Redactor


def masked_page(redactor: Redactor, page: dict[str, Any], items: str = "items",
                items_masked: bool = False) -> dict[str, Any]:
    """``redactor.redact(page)``, with the list under ``items`` masked item by item through
    :meth:`~celery_warden.redaction.Redactor.redact_records` — or, with ``items_masked``
    (the reader masked them already, e.g. ``read.task_search.masked_items``), taken as
    they are."""
    rows = page.get(items)
    if type(rows) is not list or redactor.is_secret(items):
        return dict(redactor.redact(page))
    out: dict[str, Any] = redactor.redact({k: v for k, v in page.items() if k != items})
    out[items] = rows if items_masked else redactor.redact_records(rows)
    return {k: out[k] for k in page}  # the page's own key order

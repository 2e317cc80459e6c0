"""Finding and loading the Celery app the demo runs (``--app``)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from celery_warden.demo.errors import DemoFailure
from celery_warden.errors import SettingsError

if TYPE_CHECKING:
    from celery import Celery


def app_importable(app: str) -> bool:
    """Whether the module of ``app`` (``pkg.module`` or ``pkg.module:attr``) can be found."""
    module = app.split(":", 1)[0]
    candidates = [module]
    if ":" not in app and "." in module:
        candidates.append(module.rsplit(".", 1)[0])  # pkg.module.attr form
    for candidate in candidates:
        try:
            if importlib.util.find_spec(candidate) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def load_app(app: str) -> Celery:
    from celery import Celery
    from celery.app.utils import find_app

    try:
        found = find_app(app)
    except SettingsError:
        raise
    except ImportError as exc:
        raise DemoFailure(f"cannot import the app {app!r}: {type(exc).__name__}: {exc}. "
                          "Run from the repository root or pass --app.", 2) from None
    except Exception as exc:
        raise DemoFailure(f"cannot load the app {app!r}: {type(exc).__name__}: {exc}", 2) \
            from None
    if not isinstance(found, Celery):
        raise DemoFailure(f"{app!r} is not a Celery app (got {type(found).__name__})", 2)
    return found

"""The probe task ``warden.probe`` that ``Warden(app)`` registers on every app it wires.

``warden check --submit QUEUE`` sends it to a queue and follows it through Warden's own record
(sent → started → succeeded, with queue wait and runtime), so a fleet can be checked end to end
without knowing any of its tasks and without a result backend. It does nothing but report where
it ran; registering it adds one name to the app's task registry and nothing else.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

#: The name under which ``Warden(app)`` registers :func:`probe`.
PROBE_TASK = "warden.probe"


def probe(token: str = "") -> dict[str, Any]:
    """Echo ``token`` with the process that ran it."""
    return {"token": token, "host": socket.gethostname(), "pid": os.getpid(),
            "at": round(time.time(), 6)}


__all__ = ["PROBE_TASK", "probe"]

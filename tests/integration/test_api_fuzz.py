"""The API never answers 5xx and never contradicts its own schema, whatever it is sent.

schemathesis generates requests for every operation of ``/api/openapi.json`` (a real
``warden serve`` on loopback, an admin token) and checks each answer: not a server error, a
status code and content type the schema documents, a body that validates against the documented
model. Bounded: a few examples per operation, derandomized, well under a minute.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from celery_warden.keys import Keys
from celery_warden.serve.tokens import TokenStore
from tests.api_server import ApiServer
from tests.support import WorkerProcess

EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def test_no_5xx_and_no_schema_violation(settings, redis_client, workers):
    """Every operation, fuzzed with an admin token against a live worker (so health is 200):
    no 5xx, no undocumented answer."""
    admin, _ = TokenStore(redis_client, Keys(settings.key_prefix)).create("fuzz", "admin")
    workers.append(WorkerProcess(settings, app="tests.apps.api").start())
    with ApiServer(settings, app=None) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
        headers = {"Authorization": f"Bearer {admin}"}
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 40, [op.label for op in operations]
        failures: list[str] = []
        for op in operations:

            @given(case=op.as_strategy())
            @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                                 derandomize=True, phases=[Phase.explicit, Phase.generate],
                                 suppress_health_check=list(HealthCheck))
            def fuzz(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS)

            try:
                fuzz()
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis: a group
                failures.append(f"{op.label}: {str(exc)[:1500]}")
        log = server.log()
        assert "Traceback" not in log
        requests = log.count(" HTTP/1.1\" ")
        assert requests >= 2 * len(operations), f"only {requests} requests reached the server"
        print(f"fuzzed {len(operations)} operations with {requests} requests")
    assert failures == [], "\n\n".join(failures)

"""Fuzz the whole API from its own OpenAPI document (issue 12 "Prove it").

schemathesis reads `/api/v1/openapi.json` from the live server and, for every operation,
sends valid and invalid requests over real HTTP with an admin token. Checks: never a 5xx;
every status and response body conforms to the document. HELPDESK_FUZZ_EXAMPLES sets the
examples per operation and mode (default 10: about two minutes on 2 cores); the examples are
the same on every run unless HELPDESK_FUZZ_RANDOM is set (a deeper, exploratory run).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import factories
from tests.support.live import api_message

EXAMPLES = int(os.environ.get("HELPDESK_FUZZ_EXAMPLES", "10"))
RANDOM = bool(os.environ.get("HELPDESK_FUZZ_RANDOM"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def some_data(app, api, drain):
    """A channel, a customer and a ticket, so ids 1… lead somewhere."""
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message())
    drain()


def _fuzz(operation, mode: GenerationMode, base_url: str, token: str, counts: Counter,
          session: requests.Session) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        response = case.call(base_url=base_url, session=session,
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
        counts[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()


def test_every_operation_survives_the_fuzzer(app, live_server, some_data):
    schema = schemathesis.openapi.from_url(f"{live_server}/api/v1/openapi.json")
    counts: Counter = Counter()
    failures, operations = [], 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            # A fresh admin per operation: logout or a PATCH of itself may revoke its token.
            token = factories.agent(app, role="admin", level=3).token
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(operation, mode, live_server, token, counts, session)
                except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                    continue
                except (Exception, BaseExceptionGroup) as exc:  # report them all at the end
                    failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])
    print(f"fuzzed {operations} operations, {sum(counts.values())} requests: "
          f"{dict(sorted(counts.items()))}")
    assert operations >= 50
    assert not failures, "\n\n".join(failures)

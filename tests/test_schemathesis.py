"""Property-based fuzzing of every endpoint from the server's own OpenAPI document (schemathesis).

schemathesis reads /v0/pipes/openapi.json and generates calls from it: valid parameter sets (every
type, enum, pattern and default the document declares) and invalid ones. Every answer must be a
documented status with a body that matches the documented schema, never a 5xx, and invalid input must be
refused with a 4xx. `make test` runs 4 derandomized examples per endpoint, so CI is repeatable; `make test-slow`
(`-m slow`) runs a random search of 400.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.embedded

CHECKS = dict(
    checks=[
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.status_code_conformance,
        schemathesis.checks.content_type_conformance,
        schemathesis.checks.response_schema_conformance,
        schemathesis.checks.negative_data_rejection,
    ]
)


@pytest.fixture(scope="session")
def api_schema(target):
    document = requests.get(target.url("/v0/pipes/openapi.json"), headers=target.auth(), timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=target.base_url, headers=target.auth())
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_endpoint_survives_generated_calls(case):
    case.call_and_validate(**CHECKS)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_survives_a_long_random_search(case):
    case.call_and_validate(**CHECKS)

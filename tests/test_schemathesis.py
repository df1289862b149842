"""Property-based fuzzing of every endpoint from the server's own OpenAPI document (schemathesis).

schemathesis reads /v0/pipes/openapi.json and generates calls from it: valid parameter sets (every
type, enum, pattern and default the document declares) and invalid ones. Every answer must be a
documented status with a body that matches the documented schema, never a 5xx, and invalid input must be
refused with a 4xx. `make test` runs the document's examples and 4 derandomized generated calls per endpoint, so CI
is repeatable; `make test-slow` (`-m slow`) adds schemathesis's coverage phase (every boundary case the document
defines, about 2,000 calls) and a random search of 400 per endpoint.
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


def openapi_schema(target, phases: list[str]):
    document = requests.get(target.url("/v0/pipes/openapi.json"), headers=target.auth(), timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=target.base_url, headers=target.auth())
    schema.config.phases.update(phases=phases)
    return schema


@pytest.fixture(scope="session")
def api_schema(target):
    """The document's examples, then generated calls (the coverage phase's every boundary case is left to -m slow:
    about 2,000 calls)."""
    return openapi_schema(target, ["examples", "fuzzing"])


@pytest.fixture(scope="session")
def api_schema_everything(target):
    return openapi_schema(target, ["examples", "coverage", "fuzzing"])


schema = schemathesis.pytest.from_fixture("api_schema")
schema_everything = schemathesis.pytest.from_fixture("api_schema_everything")
# no example database: each run derandomized (make test) or random (-m slow), none replaying the last one's finds
QUICK = settings(
    max_examples=4, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


@schema.parametrize()
@QUICK
def test_every_endpoint_survives_generated_calls(case):
    case.call_and_validate(**CHECKS)


@pytest.mark.slow
@schema_everything.parametrize()
@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_survives_its_boundary_cases_and_a_long_random_search(case):
    case.call_and_validate(**CHECKS)

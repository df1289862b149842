"""Every endpoint of the contract, over the fixtures, against the independent oracle."""

from __future__ import annotations

import re

import cases
import oracle
import pytest
from conftest import ROOT
from matching import assert_rows_match

ROWS = cases.load_rows()
VALID = [(ep, case, params) for ep, items in cases.valid_cases(ROWS).items() for case, params in items]
INVALID = [(ep, case, params, name) for ep, items in cases.invalid_cases().items() for case, params, name in items]
CONTRACT = re.findall(r"^\| `(\w+)` \|", (ROOT / "docs/ENDPOINTS.md").read_text(), flags=re.MULTILINE)


def test_every_contract_endpoint_has_oracle_and_cases():
    assert sorted(oracle.ENDPOINTS) == sorted(CONTRACT)
    assert sorted(cases.valid_cases(ROWS)) == sorted(CONTRACT)


def assert_answers_as_the_oracle(target, endpoint: str, params: dict) -> None:
    """The endpoint's JSON: the contract's columns in order, and the oracle's rows."""
    response = target.pipe(endpoint, params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [m["name"] for m in body["meta"]] == list(oracle.ENDPOINTS[endpoint])
    assert_rows_match(body["data"], oracle.expected(endpoint, params, ROWS))


@pytest.mark.parametrize(("endpoint", "case", "params"), VALID, ids=[f"{e}-{c}" for e, c, _ in VALID])
def test_endpoint_matches_the_oracle(target, endpoint, case, params):
    assert_answers_as_the_oracle(target, endpoint, params)


@pytest.mark.parametrize("endpoint", sorted(cases.valid_cases(ROWS)))
def test_cases_are_not_vacuous(target, endpoint):
    """At least one case of each endpoint returns several rows, so a comparison can fail."""
    sizes = [len(oracle.expected(endpoint, params, ROWS)) for _, params in cases.valid_cases(ROWS)[endpoint]]
    assert max(sizes) >= 2, sizes


@pytest.mark.deviation(
    "stricter",
    "declared types are checked before rendering and the error names the parameter; "
    "Tinybird's own type errors may name only the value",
)
@pytest.mark.parametrize(("endpoint", "case", "params", "param"), INVALID, ids=[f"{e}-{c}" for e, c, _, _ in INVALID])
def test_invalid_parameter_is_400_naming_it(target, endpoint, case, params, param):
    with pytest.raises(oracle.InvalidParam) as raised:
        oracle.expected(endpoint, params, ROWS)
    assert raised.value.param == param
    response = target.pipe(endpoint, params)
    assert response.status_code == 400, response.text
    assert param in response.json()["error"]

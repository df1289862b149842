"""The `tb test` cases in tests/*.yaml: each is right by the oracle, and the target still answers it."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import cases
import oracle
import pytest
import yaml
from conftest import TESTS_DIR
from matching import assert_rows_match

ROWS = cases.load_rows()
YAML_FILES = sorted(TESTS_DIR.glob("*.yaml"))
CASES = [(path.stem, case) for path in YAML_FILES for case in yaml.safe_load(path.read_text())]


def parse(result: str) -> list[dict]:
    return [json.loads(line) for line in result.splitlines() if line.strip()]


def test_every_endpoint_has_tb_test_cases():
    assert sorted(p.stem for p in YAML_FILES) == sorted(oracle.ENDPOINTS)


@pytest.mark.parametrize(("endpoint", "case"), CASES, ids=[f"{e}-{c['name']}" for e, c in CASES])
def test_yaml_case_is_right_and_still_holds(target, endpoint, case):
    assert set(case) == {"name", "description", "parameters", "expected_result", "expected_http_status"}
    params = dict(parse_qsl(case["parameters"], keep_blank_values=True))
    expected, truth = parse(case["expected_result"]), oracle.expected(endpoint, params, ROWS)
    assert_rows_match(expected, truth)
    response = target.pipe(endpoint, params, fmt="ndjson")
    assert response.status_code == case["expected_http_status"]
    served = parse(response.text)
    assert_rows_match(served, truth)
    # byte for byte, as `tb test run` compares: percentiles come from timing-quantile states, which give the same
    # answer whatever order the roll-up's parts merged in
    assert response.text == case["expected_result"]

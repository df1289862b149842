"""A roll-up never changes an answer: each roll-up-backed endpoint equals its question asked of the raw table."""

from __future__ import annotations

import cases
import oracle
import pytest
from conftest import ROOT
from matching import is_percentile, values_match

from usage_analytics.bench.rawforms import RAW_FORMS, raw_query

ROWS = cases.load_rows()
CASES = [
    (endpoint, case, params)
    for endpoint, items in cases.valid_cases(ROWS).items()
    if endpoint in RAW_FORMS
    for case, params in items
]


def test_every_rollup_reader_has_a_raw_form():
    from conftest import ROOT

    from usage_analytics.local import load_project

    project = load_project(ROOT)
    rollups = {name for name in project.datasources if name.endswith("_mv")}
    readers = {
        name
        for name, pipe in project.endpoints.items()
        if any(rollup in node.sql for node in pipe.nodes for rollup in rollups)
    }
    assert readers == set(RAW_FORMS)


@pytest.mark.parametrize(("endpoint", "case", "params"), CASES, ids=[f"{e}-{c}" for e, c, _ in CASES])
def test_rollup_answer_equals_the_raw_answer(target, endpoint, case, params):
    served = target.data(endpoint, params)
    raw = target.sql(raw_query(endpoint, params, ROOT))
    truth = oracle.expected(endpoint, params, ROWS)
    assert len(served) == len(raw) == len(truth), (len(served), len(raw), len(truth))
    for got, want, band in zip(served, raw, truth, strict=True):
        assert list(got) == list(want)
        for column, value in want.items():
            if is_percentile(column):
                # a timing quantile is not the exact percentile: the contract's band (one point either way) decides
                assert got[column] == band[column], (column, got[column], band[column], value)
            else:
                assert values_match(column, got[column], value), (column, got, want)

"""Row comparison for endpoint answers: exact, except that a rounded float may differ in its last place."""

from __future__ import annotations


def _unit(column: str) -> float:
    """The contract rounds averages of ms and *_usage_pct to 2 decimals, rates to 4."""
    return 0.01 if column.endswith(("_ms", "_pct")) else 0.0001


def is_percentile(column: str) -> bool:
    """p50/p95/p99_response_time_ms: served from timing-quantile states, within the contract's band, not exact."""
    return column.startswith("p") and column.endswith("_response_time_ms")


def values_match(column: str, actual, expected) -> bool:
    if isinstance(expected, float) and isinstance(actual, int | float) and not isinstance(actual, bool):
        return abs(actual - expected) <= _unit(column) + 1e-9
    return expected == actual


def assert_rows_match(actual: list[dict], expected: list[dict]) -> None:
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}: {actual[:3]} vs {expected[:3]}"
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert list(got) == list(want), f"row {i}: columns {list(got)}, expected {list(want)}"
        wrong = {k: (got[k], want[k]) for k in want if not values_match(k, got[k], want[k])}
        assert not wrong, f"row {i} differs (got, expected): {wrong}\nrow: {got}"

"""api_logs (seed 004): requests of a multi-tenant API, written hour by hour in time order.

Each hour gets its share of the rows from the seasonal timeline; some hours also get burst rows: a
few incidents where one endpoint's 5xx rate jumps, and the rate-limit burst that rate_limit_usage
must flag (LIMITED hammers its endpoint from 11:00 to 12:00 on 2025-06-01, the time tests pin).
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Iterator
from itertools import accumulate

from .pools import Pools, enc, zipf_cum
from .timeline import Timeline, hour_of

TENANTS = ["tenant_acme", "tenant_globex", "tenant_initech", "tenant_umbrella", "tenant_hooli"]
TENANTS += ["tenant_stark", "tenant_wayne", "tenant_wonka"]
# (endpoint, median latency in ms, typical response body in bytes)
ENDPOINTS = [
    ("/api/v1/users", 60, 2_000), ("/api/v1/search", 180, 9_000), ("/api/v1/orders", 120, 4_000),
    ("/api/v1/products", 80, 6_000), ("/api/v1/reports", 650, 40_000), ("/api/v1/auth/login", 90, 600),
    ("/api/v1/payments", 300, 1_500), ("/api/v1/files", 400, 120_000), ("/api/v1/webhooks", 70, 300),
    ("/api/v1/analytics", 900, 25_000), ("/api/v1/settings", 50, 1_200), ("/api/v1/notifications", 65, 3_000),
]  # fmt: skip
ENDPOINT_PATHS = [path for path, _, _ in ENDPOINTS]
METHODS = ["GET", "POST", "PUT", "DELETE"]
METHOD_CUM = list(accumulate([70, 18, 8, 4]))
# request size: headers, plus a body for writes (bytes, before the log-normal spread)
REQUEST_BASE = [150, 300, 300, 150]
REQUEST_SCALE = [200, 1800, 1200, 80]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1", "sa-east-1"]
REGION_CUM = list(accumulate([38, 17, 20, 12, 9, 4]))

# Outcomes as shares of all requests: (status, error_type, error_message, share, latency factor).
SUCCESS = {
    "GET": [(200, 0.86), (304, 0.055), (301, 0.01)],
    "POST": [(201, 0.6), (200, 0.32)],
    "PUT": [(200, 0.82), (204, 0.1)],
    "DELETE": [(204, 0.72), (200, 0.2)],
}
WARNING = (200, "Warning", "Deprecated API version", 0.008, 1.0)  # a 2xx with an error_type: not an error
ERRORS = [
    (400, "ValidationError", "Invalid request body", 0.022, 0.4),
    (401, "AuthenticationError", "Missing or invalid API key", 0.01, 0.2),
    (403, "PermissionError", "Insufficient permissions", 0.006, 0.3),
    (404, "NotFoundError", "Resource not found", 0.018, 0.3),
    (404, "", "", 0.002, 0.3),  # a few errors come back without a body to classify them
    (429, "RateLimitError", "Rate limit exceeded", 0.005, 0.1),
    (500, "InternalServerError", "Unexpected error", 0.004, 3.0),
    (502, "UpstreamError", "Bad gateway", 0.0015, 3.0),
    (502, "", "", 0.0005, 3.0),
    (503, "ServiceUnavailable", "Service temporarily unavailable", 0.0015, 5.0),
]
SERVER_ERRORS, RATE_LIMITED = frozenset({500, 502, 503}), frozenset({429})
# Incidents where one endpoint's 5xx rate jumps: (endpoint, first hour, hours)
INCIDENTS = [("/api/v1/payments", "2025-04-02 14:00:00", 3), ("/api/v1/search", "2025-04-30 09:00:00", 2)]
INCIDENTS += [("/api/v1/analytics", "2025-05-19 16:00:00", 4)]
# The rate-limit burst: this tenant hammers this endpoint in the hour before 2025-06-01 12:00:00
LIMITED = ("tenant_acme", "/api/v1/search")
LIMITED_HOUR = hour_of("2025-06-01 11:00:00")
LIMITED_ROWS = 600  # at most: a tenth of the rows for small sizes; a tenth of them in the last minute
_SPREAD = 4096  # log-normal multipliers drawn once; rows index into them


def outcome_table(surge: frozenset[int] = frozenset(), surge_share: float = 0.0) -> list[tuple[list, list[float]]]:
    """Per method, (outcomes, cumulative weights); `surge` statuses take `surge_share` of the requests.

    An outcome is (status, error JSON fragment, latency factor, response body scale or None for the
    endpoint's own payload).
    """
    tables = []
    for method in METHODS:
        entries = [(status, "", "", share, 0.5 if status == 304 else 1.0) for status, share in SUCCESS[method]]
        entries += [WARNING, *ERRORS]
        calm = [e for e in entries if e[0] not in surge]
        surging = [e for e in entries if e[0] in surge]
        weights = [e[3] * (1 - surge_share) / sum(c[3] for c in calm) for e in calm]
        weights += [e[3] * surge_share / sum(s[3] for s in surging) for e in surging]
        outcomes = [
            (status, f'"error_type":{enc(etype)},"error_message":{enc(message)}', slowdown, _body(status))
            for status, etype, message, _, slowdown in calm + surging
        ]
        tables.append((outcomes, list(accumulate(weights))))
    return tables


def _body(status: int) -> int | None:
    if status in (204, 304):
        return 0
    return None if status < 300 else 160  # a redirect or an error carries a small JSON body


class Traffic:
    """Formats api_logs rows; a block of rows shares an hour, and its draws are made in bulk."""

    def __init__(self, rng: random.Random, pools: Pools, timeline: Timeline, n: int) -> None:
        self.rng, self.timeline = rng, timeline
        self.spread = [rng.lognormvariate(0, 0.7) for _ in range(_SPREAD)]
        self.routes = [[f'"endpoint":{enc(path)},"method":{enc(m)}' for m in METHODS] for path in ENDPOINT_PATHS]
        self.users = self._tenant_users(pools, n)
        self.latencies = [latency for _, latency, _ in ENDPOINTS]
        self.payloads = [payload for _, _, payload in ENDPOINTS]

    def _tenant_users(self, pools: Pools, n: int) -> list[tuple[list[tuple[str, str, str]], list[float], float]]:
        """Per tenant, its users as (tenant and user, client, region) fragments with their Zipf cumulative
        weights and total: heavy users come first.

        Each tenant also takes an eighth of a pool of shared ids: a user who works for two tenants
        counts once across tenants. Client and region fragments are shared strings, so memory grows
        with the number of users by one short string each.
        """
        rng = self.rng
        shared = [f"user_{i:05d}" for i in range(min(20_000, max(40, n // 400)))]
        ips = pools.ipv4 * 9 + pools.ipv6 * 6  # about one client in ten on IPv6
        clients = [f'"ip_address":{rng.choice(ips)},"user_agent":{rng.choice(pools.user_agents)}' for _ in range(2000)]
        regions = [f'"region":"{region}"}}' for region in REGIONS]
        tenants = []
        for t, tenant in enumerate(TENANTS):
            ids = [f"user_{tenant[7:]}_{i:05d}" for i in range(min(100_000, max(30, n // (60 * (t + 1)))))]
            ids += rng.sample(shared, len(shared) // 8)
            rng.shuffle(ids)
            who = [f'"tenant_id":"{tenant}","user_id":"{user}"' for user in ids]
            where = rng.choices(regions, cum_weights=REGION_CUM, k=len(ids))
            cum = zipf_cum(len(ids))
            tenants.append((list(zip(who, rng.choices(clients, k=len(ids)), where, strict=True)), cum, cum[-1]))
        return tenants

    def block(self, hour: int, seconds: list[int], tenants: list[int], endpoints: list[int], table: list) -> list[str]:
        """One line per second of `seconds`, for those tenants and endpoints, outcomes from `table`."""
        rng, spread, routes, users = self.rng, self.spread, self.routes, self.users
        latencies, payloads = self.latencies, self.payloads
        rnd = rng.random
        k = len(seconds)
        methods = rng.choices(range(len(METHODS)), cum_weights=METHOD_CUM, k=k)
        ids = f"{rng.getrandbits(64 * k):0{16 * k}x}"
        stamp, mmss = self.timeline.hour_prefix(hour), self.timeline.mmss
        lines = []
        for i, second, t, e, m in zip(range(0, 16 * k, 16), seconds, tenants, endpoints, methods, strict=True):
            outcomes, cum = table[m]
            status, error, slowdown, body = outcomes[bisect(cum, rnd() * cum[-1])]
            tenant_users, user_cum, user_total = users[t]
            who, client, region = tenant_users[bisect(user_cum, rnd() * user_total)]
            millis = int(latencies[e] * slowdown * spread[int(rnd() * _SPREAD)]) + 1
            request = REQUEST_BASE[m] + int(REQUEST_SCALE[m] * spread[int(rnd() * _SPREAD)])
            response = int((payloads[e] if body is None else body) * spread[int(rnd() * _SPREAD)])
            lines.append(
                f'{{"timestamp":"{stamp}{mmss[second]}","request_id":"req_{ids[i : i + 16]}",'
                f'{who},{routes[e][m]},"status_code":{status},"response_time_ms":{millis},'
                f'"request_size_bytes":{request},"response_size_bytes":{response},{client},{error},{region}'
            )
        return lines


def _bursts(rng: random.Random, n: int) -> dict[int, list[tuple[list[int], list[int], list[int], list]]]:
    """Rows added on top of the seasonal traffic, per hour: (seconds, tenants, endpoints, outcome table)."""
    bursts: dict[int, list] = {}
    tenant_cum = zipf_cum(len(TENANTS), 0.9)
    failing = outcome_table(SERVER_ERRORS, 0.45)
    for path, first, hours in INCIDENTS:
        per_hour = min(1000, n // 400) // hours  # a retry storm: several times the endpoint's usual traffic
        for hour in range(hour_of(first), hour_of(first) + hours):
            tenants = rng.choices(range(len(TENANTS)), cum_weights=tenant_cum, k=per_hour)
            block = (rng.choices(range(3600), k=per_hour), tenants, [ENDPOINT_PATHS.index(path)] * per_hour, failing)
            bursts.setdefault(hour, []).append(block)
    rows = min(LIMITED_ROWS, n // 10)
    if rows:
        # a tenth in the last minute before 12:00:00, the rest inside the hour (the windows exclude their
        # start, 11:00:00 and 11:59:00), and one request at 12:00:00 exactly, their inclusive end
        seconds = [3541 + rng.randrange(59) for _ in range(rows // 10)]
        seconds += [rng.randrange(1, 3540) for _ in range(rows - 1 - rows // 10)]
        t, e = TENANTS.index(LIMITED[0]), ENDPOINT_PATHS.index(LIMITED[1])
        limited = outcome_table(RATE_LIMITED, 0.3)
        bursts[LIMITED_HOUR] = [(seconds, [t] * len(seconds), [e] * len(seconds), limited)]
        bursts[LIMITED_HOUR + 1] = [([0], [t], [e], limited)]
    return bursts


def api_logs(rng: random.Random, timeline: Timeline, pools: Pools, n: int) -> Iterator[str]:
    traffic = Traffic(rng, pools, timeline, n)
    bursts = _bursts(rng, n)
    extra = sum(len(block[0]) for blocks in bursts.values() for block in blocks)
    normal = outcome_table()
    tenant_cum, endpoint_cum = zipf_cum(len(TENANTS), 0.9), zipf_cum(len(ENDPOINTS), 0.7)
    for hour, count in enumerate(timeline.hour_counts(rng, n - extra)):
        seconds = sorted(int(rng.random() * 3600) for _ in range(count))
        tenants = rng.choices(range(len(TENANTS)), cum_weights=tenant_cum, k=count)
        endpoints = rng.choices(range(len(ENDPOINTS)), cum_weights=endpoint_cum, k=count)
        lines = traffic.block(hour, seconds, tenants, endpoints, normal)
        if hour in bursts:
            for block in bursts[hour]:
                lines += traffic.block(hour, *block)
            lines.sort()  # every line starts with its timestamp: the hour stays in time order
        yield from lines

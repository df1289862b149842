"""Multi-tenant API analytics sources (seed 004): api_logs and tenant_rate_limits."""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Iterator

from .pools import Pools, enc, zipf_cum
from .timeline import HOURS, Timeline, hour_of

TENANTS = ["tenant_acme", "tenant_globex", "tenant_initech", "tenant_umbrella", "tenant_hooli"]
TENANTS += ["tenant_stark", "tenant_wayne", "tenant_wonka"]
# (endpoint, median latency in ms)
ENDPOINTS = [
    ("/api/v1/users", 60), ("/api/v1/search", 180), ("/api/v1/orders", 120), ("/api/v1/products", 80),
    ("/api/v1/reports", 650), ("/api/v1/auth/login", 90), ("/api/v1/payments", 300), ("/api/v1/files", 400),
    ("/api/v1/webhooks", 70), ("/api/v1/analytics", 900), ("/api/v1/settings", 50), ("/api/v1/notifications", 65),
]  # fmt: skip
METHODS = ["GET", "POST", "PUT", "DELETE"]
METHOD_CUM = [70, 88, 96, 100]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1", "sa-east-1"]
REGION_CUM = [38, 55, 75, 87, 96, 100]
OK_CODES = [200, 201, 204, 304, 301]
OK_CUM = [80, 88, 93, 97, 98]
# (status, error_type, error_message, weight among errors)
ERRORS = [
    (400, "ValidationError", "Invalid request body", 30),
    (401, "AuthenticationError", "Missing or invalid API key", 15),
    (403, "PermissionError", "Insufficient permissions", 8),
    (404, "NotFoundError", "Resource not found", 25),
    (429, "RateLimitError", "Too many requests", 10),
    (500, "InternalServerError", "Unexpected error", 6),
    (502, "UpstreamError", "Bad gateway", 3),
    (503, "ServiceUnavailable", "Service temporarily unavailable", 3),
]
# A few hours where one endpoint's 5xx rate jumps: (endpoint index, first hour, hours)
BURSTS = [(6, 24 * 30 + 14, 3), (1, 24 * 58 + 9, 2), (9, 24 * 77 + 16, 4)]
# The rate-limit burst: this tenant hammers this endpoint from 11:00 to 12:00 on 2025-06-01
LIMITED = ("tenant_acme", "/api/v1/search")
LIMITED_HOUR = hour_of("2025-06-01 11:00:00")
LIMITED_LIMITS = (15, 500, 5000)
BLOCK = 100_000  # per minute, hour, day: the burst exceeds the first two


def _tenant_users(rng: random.Random, n: int) -> list[list[str]]:
    """Each tenant's users; about one in twenty ids also works for another tenant."""
    shared = [enc(f"user_{i:05d}") for i in range(max(40, n // 400))]
    per_tenant = []
    for t in range(len(TENANTS)):
        own = [enc(f"user_{t}{i:04d}") for i in range(max(30, n // (60 * (t + 1))))]
        per_tenant.append(own + rng.sample(shared, len(shared) // 8))
    return per_tenant


class _Rows:
    """Formats api_logs rows; the caller draws tenant, endpoint, time, method and region in bulk."""

    def __init__(self, rng: random.Random, pools: Pools, timeline: Timeline, n: int):
        self.rng, self.pools, self.timeline = rng, pools, timeline
        self.users = _tenant_users(rng, n)
        self.ucums = [zipf_cum(len(u)) for u in self.users]
        self.burst_hours = {(e, h) for e, first, span in BURSTS for h in range(first, first + span)}
        self.error_weights = [e[3] for e in ERRORS]

    def status(self, endpoint: int, hour: int) -> tuple[int, str, str]:
        rng = self.rng
        if (endpoint, hour) in self.burst_hours and rng.random() < 0.45:
            return rng.choice(ERRORS[5:])[:3]
        if rng.random() < 0.07:
            return rng.choices(ERRORS, weights=self.error_weights)[0][:3]
        status = rng.choices(OK_CODES, cum_weights=OK_CUM)[0]
        # now and then a success carries a warning: the contract says it is not an error
        return (status, "Warning", "Deprecated parameter") if rng.random() < 0.01 else (status, "", "")

    def row(self, t: int, e: int, hour: int, second: int, method: str, region: str, status=None) -> str:
        rng, pools = self.rng, self.pools
        status, etype, message = status or self.status(e, hour)
        endpoint, latency = ENDPOINTS[e]
        users, ucum = self.users[t], self.ucums[t]
        user = users[bisect(ucum, rng.random() * ucum[-1])]
        millis = int(rng.lognormvariate(0, 0.6) * latency * (3 if status >= 500 else 1)) + 1
        ip = rng.choice(pools.ipv6) if rng.random() < 0.1 else rng.choice(pools.ipv4)
        request_bytes = rng.randint(80, 4096) if method != "GET" else rng.randint(0, 300)
        return (
            f'{{"timestamp":"{self.timeline.stamp(hour, second)}","request_id":"req_{rng.getrandbits(64):016x}",'
            f'"tenant_id":"{TENANTS[t]}","user_id":{user},"endpoint":"{endpoint}",'
            f'"method":"{method}","status_code":{status},"response_time_ms":{millis},'
            f'"request_size_bytes":{request_bytes},'
            f'"response_size_bytes":{0 if status == 204 else rng.randint(120, 65536)},"ip_address":{ip},'
            f'"user_agent":{rng.choice(pools.user_agents)},"error_type":"{etype}","error_message":"{message}",'
            f'"region":"{region}"}}'
        )


def api_logs(rng: random.Random, timeline: Timeline, pools: Pools, n: int) -> Iterator[str]:
    rows = _Rows(rng, pools, timeline, n)
    burst = min(600, max(60, n // 15))  # the rate-limit burst, in rows
    normal = n - burst - 1
    tenant_cum, endpoint_cum = zipf_cum(len(TENANTS), 0.9), zipf_cum(len(ENDPOINTS), 0.7)
    for start in range(0, normal, BLOCK):  # draw in blocks: memory stays flat for any n
        k = min(BLOCK, normal - start)
        tenants = rng.choices(range(len(TENANTS)), cum_weights=tenant_cum, k=k)
        endpoints = rng.choices(range(len(ENDPOINTS)), cum_weights=endpoint_cum, k=k)
        methods = rng.choices(METHODS, cum_weights=METHOD_CUM, k=k)
        regions = rng.choices(REGIONS, cum_weights=REGION_CUM, k=k)
        hours = timeline.hours(rng, k)
        for i in range(k):
            yield rows.row(tenants[i], endpoints[i], hours[i], rng.randrange(3600), methods[i], regions[i])
    t, e = TENANTS.index(LIMITED[0]), [name for name, _ in ENDPOINTS].index(LIMITED[1])
    for i in range(burst):
        # a tenth of the burst falls in the last minute before 12:00:00, the rest over the hour
        second = 3540 + rng.randrange(60) if i < burst // 10 else rng.randrange(3540)
        yield rows.row(t, e, LIMITED_HOUR, second, rng.choice(METHODS[:2]), rng.choice(REGIONS))
    # one request exactly at 12:00:00, the inclusive end of the windows the tests pin
    yield rows.row(t, e, LIMITED_HOUR + 1, 0, "GET", REGIONS[0], status=(200, "", ""))


def tenant_rate_limits(rng: random.Random, timeline: Timeline) -> Iterator[str]:
    """One row per limited (tenant, endpoint) pair, then later rows that change some pairs' limits."""
    pairs = [(t, e) for t in TENANTS for e, _ in ENDPOINTS if (t, e) == LIMITED or rng.random() < 0.5]
    updated = set(rng.sample([p for p in pairs if p != LIMITED], 14)) | {LIMITED}
    rows = []
    for i, (tenant, endpoint) in enumerate(pairs):
        created = f"2025-02-{10 + i % 10} 00:00:00"  # before the first request
        rpm = rng.choice([60, 100, 300, 600, 1200])
        limits = (rpm // 3, rpm * 20, rpm * 200) if (tenant, endpoint) == LIMITED else (rpm, rpm * 40, rpm * 600)
        rows.append((tenant, endpoint, limits, created, created))
    for tenant, endpoint in sorted(updated):
        created = next(r[3] for r in rows if r[:2] == (tenant, endpoint))
        when = timeline.stamp(rng.randrange(24 * 35, HOURS - 48), rng.randrange(3600))
        rpm = rng.choice([100, 300, 900])
        limits = LIMITED_LIMITS if (tenant, endpoint) == LIMITED else (rpm, rpm * 50, rpm * 700)
        rows.append((tenant, endpoint, limits, created, when))
    for tenant, endpoint, (rpm, rph, rpd), created, updated_at in rows:
        yield (
            f'{{"tenant_id":"{tenant}","endpoint":"{endpoint}","requests_per_minute":{rpm},'
            f'"requests_per_hour":{rph},"requests_per_day":{rpd},"created_at":"{created}","updated_at":"{updated_at}"}}'
        )

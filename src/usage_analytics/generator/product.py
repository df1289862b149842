"""Product analytics sources: events (seed 000), feature_events (seed 001), app_events (seed 002)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from .pools import Pools, enc, zipf_cum
from .timeline import HOURS, Timeline

EVENT_TYPES = ["page_view", "click", "feature_click", "form_submit", "login", "logout", "search", "scroll"]
EVENT_TYPE_CUM = [30, 55, 70, 78, 84, 86, 94, 100]
PAGES = ["/", "/dashboard", "/settings", "/billing", "/reports", "/search", "/profile", "/integrations", "/team"]
FEATURES = [
    "search_bar", "dashboard", "reports", "export_csv", "billing", "payment_form", "notifications", "sharing",
    "api_keys", "integrations", "team_invites", "dark_mode", "filters", "alerts", "onboarding",
]  # fmt: skip
FEATURE_IDS = [f"feature_{name}" for name in FEATURES + ["recommendations", "comments", "audit_log", "sso", "tags"]]
# (version, first hour it is seen): newer versions appear later in the period
VERSIONS = [("2.0.4", 0), ("2.1.0", 0), ("2.2.3", 300), ("2.3.1", 800), ("2.4.0", 1300), ("2.5.2", 1800)]
FEATURE_EVENT_TYPES = ["view", "click", "feature_used", "enabled", "disabled", "error"]
FEATURE_EVENT_TYPE_CUM = [35, 60, 90, 95, 98, 100]
APP_EVENT_TYPES = ["login", "click", "view", "search", "export", "logout"]
DEVICES = [("mobile", ["iOS", "Android"]), ("desktop", ["Windows", "macOS", "Linux"]), ("tablet", ["iOS", "Android"])]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge"]


def _users(rng: random.Random, n_rows: int, prefix: str, per_user: int = 25, cap: int = 50_000):
    """User ids, Zipf weights, and for each user the hour they first show up and how long they stay."""
    count = min(cap, max(150, n_rows // per_user))
    ids = [enc(f"{prefix}_{i:05d}") for i in range(count)]
    start = [int(rng.random() ** 1.5 * HOURS * 0.95) for _ in range(count)]  # more users early on
    life = [rng.choice([48, 24 * 7, 24 * 21, 24 * 60]) for _ in range(count)]  # a fading tail of returners
    return ids, zipf_cum(count), start, life


def _user_hour(rng: random.Random, timeline: Timeline, start: int, life: int) -> int:
    """An hour after the user's start, fading with their lifetime, shaped like the day and the week."""
    for _ in range(4):
        hour = start + int(rng.expovariate(1.0 / life))
        if hour < HOURS and timeline.accept(rng, hour):
            return hour
    return rng.randrange(start, HOURS)


def events(rng: random.Random, timeline: Timeline, pools: Pools, n: int) -> Iterator[str]:
    ids, cum, start, life = _users(rng, n, "user")
    types = [enc(t) for t in EVENT_TYPES]
    pages = [enc(p) for p in PAGES]
    features = [enc(f) for f in FEATURES]
    names = [enc(f"{w}_{v}") for w in pools.words[:12] for v in ("view", "click", "open")]
    for i, u in enumerate(rng.choices(range(len(ids)), cum_weights=cum, k=n)):
        hour = _user_hour(rng, timeline, start[u], life[u])
        feature = '""' if rng.random() < 0.2 else features[int(rng.random() ** 1.6 * len(features))]
        yield (
            f'{{"event_id":"evt_{i:08d}","user_id":{ids[u]},"session_id":"sess_{u:05d}_{hour:04d}",'
            f'"event_type":{types[_pick(rng, EVENT_TYPE_CUM)]},"event_name":{rng.choice(names)},'
            f'"page":{rng.choice(pages)},"feature":{feature},"properties":{rng.choice(pools.properties)},'
            f'"timestamp":"{timeline.stamp(hour, rng.randrange(3600))}"}}'
        )


def _pick(rng: random.Random, cum: list[int]) -> int:
    r = rng.random() * cum[-1]
    return next(i for i, c in enumerate(cum) if r < c)


def feature_events(rng: random.Random, timeline: Timeline, pools: Pools, n: int) -> Iterator[str]:
    ids, cum, start, life = _users(rng, n, "user", per_user=15)
    fids = [enc(f) for f in FEATURE_IDS]
    fcum = zipf_cum(len(fids), 0.8)
    types = [enc(t) for t in FEATURE_EVENT_TYPES]
    for u in rng.choices(range(len(ids)), cum_weights=cum, k=n):
        hour = _user_hour(rng, timeline, start[u], life[u])
        released = [v for v, first in VERSIONS if first <= hour]
        # most people run one of the two newest versions they could have
        version = released[-1] if rng.random() < 0.6 or len(released) == 1 else rng.choice(released[:-1])
        fid = rng.choices(fids, cum_weights=fcum)[0]
        yield (
            f'{{"event_id":"evt_{rng.getrandbits(64):016x}","user_id":{ids[u]},"feature_id":{fid},'
            f'"product_version":"{version}","event_type":{types[_pick(rng, FEATURE_EVENT_TYPE_CUM)]},'
            f'"timestamp":"{timeline.stamp(hour, rng.randrange(3600))}","session_id":"session_{u:05d}_{hour:04d}",'
            f'"metadata":{rng.choice(pools.metadata)}}}'
        )


def app_events(rng: random.Random, timeline: Timeline, pools: Pools, n: int) -> Iterator[str]:
    """Sessions of several events minutes apart; about one in eight sessions is a single event."""
    ids, cum, start, life = _users(rng, n, "user", per_user=30)
    profiles = []
    for _ in ids:  # a user keeps their device, browser, OS and location
        device, systems = rng.choice(DEVICES)
        profiles.append(
            f'"device_type":"{device}","browser":"{rng.choice(BROWSERS)}","os":"{rng.choice(systems)}",'
            f'"location":{rng.choice(pools.countries)}'
        )
    features = [enc(f) for f in FEATURES[:10]]
    types = [enc(t) for t in APP_EVENT_TYPES]
    written = session = 0
    while written < n:
        u = rng.choices(range(len(ids)), cum_weights=cum)[0]
        second = _user_hour(rng, timeline, start[u], life[u]) * 3600 + rng.randrange(3600)
        size = 1 if rng.random() < 0.125 else min(n - written, 2 + int(rng.expovariate(1 / 5)))
        for j in range(size):
            if second >= HOURS * 3600:
                break
            feature = '""' if rng.random() < 0.15 else rng.choice(features)
            kind = types[0] if j == 0 else rng.choice(types[1:])
            yield (
                f'{{"event_id":"evt_{written:08d}","user_id":{ids[u]},"session_id":"sess_{session:07d}",'
                f'"event_type":{kind},"feature":{feature},"timestamp":"{timeline.stamp_seconds(second)}",'
                f"{profiles[u]},"
                f'"metadata":{rng.choice(pools.app_metadata)}}}'
            )
            written += 1
            second += rng.randint(5, 300)
        session += 1

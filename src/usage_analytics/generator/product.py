"""Product analytics sources: events (seed 000), feature_events (seed 001), app_events (seed 002).

All three are sessions of one user: several events seconds to minutes apart. Users have a first hour
(their weekly cohort) and a mean gap between visits: most drift away after days or weeks, a core of
heavy users stays for the whole period, so retention cohorts decay the way real ones do.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

from .pools import Pools, draws, enc, zipf_cum
from .timeline import HOURS, SECONDS, Timeline

EVENT_TYPES = ["page_view", "click", "feature_click", "form_submit", "login", "logout", "search", "scroll"]
EVENT_TYPE_CUM = list(accumulate([30, 25, 15, 8, 6, 2, 8, 6]))
PAGES = ["/", "/dashboard", "/settings", "/billing", "/reports", "/search", "/profile", "/integrations", "/team"]
FEATURES = [
    "search_bar", "dashboard", "reports", "export_csv", "billing", "payment_form", "notifications", "sharing",
    "api_keys", "integrations", "team_invites", "dark_mode", "filters", "alerts", "onboarding",
]  # fmt: skip
FEATURE_IDS = [f"feature_{name}" for name in FEATURES + ["recommendations", "comments", "audit_log", "sso", "tags"]]
# (version, first hour it is seen): newer versions appear later in the period
VERSIONS = [("2.0.4", 0), ("2.1.0", 0), ("2.2.3", 300), ("2.3.1", 800), ("2.4.0", 1300), ("2.5.2", 1800)]
FEATURE_EVENT_TYPES = ["view", "click", "feature_used", "enabled", "disabled", "error"]
FEATURE_EVENT_TYPE_CUM = list(accumulate([35, 25, 30, 5, 3, 2]))
APP_EVENT_TYPES = ["click", "view", "search", "export", "logout"]
DEVICES = [("mobile", ["iOS", "Android"]), ("desktop", ["Windows", "macOS", "Linux"]), ("tablet", ["iOS", "Android"])]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge"]
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IN", "BR", "CA", "JP", "AU", "NL", "MX"]
COUNTRY_CUM = list(accumulate([30, 12, 10, 8, 5, 9, 6, 5, 5, 4, 3, 3]))
# Mean hours between a user's visits: two days (gone after a visit or two) up to two months (stays).
VISIT_GAPS = [48, 24 * 7, 24 * 21, 24 * 60]


class Users:
    """Product users `user_00000`...: how often each visits, when they first come, how long they stay.

    Activity is Zipf-like over a floor, so a few heavy users lead and every user of the long tail
    still visits a handful of times: enough visits for returns to show in weekly cohorts.
    """

    def __init__(self, rng: random.Random, count: int) -> None:
        count = min(50_000, max(100, count))
        core = max(3, count // 50)  # the heaviest users are there from the first week and never leave
        self.ids = [enc(f"user_{i:05d}") for i in range(count)]
        self.cum = list(accumulate(1 / rank + 0.02 for rank in range(1, count + 1)))
        self.first_hour, self.visit_gap = [], []
        for i in range(count):
            # a quarter of the users predate the period; the others sign up any week
            existing = i < core or rng.random() < 0.25
            self.first_hour.append(rng.randrange(24 * 7) if existing else int(rng.random() * HOURS * 0.97))
            self.visit_gap.append(HOURS * 10 if i < core else rng.choice(VISIT_GAPS))


@dataclass(frozen=True)
class SessionShape:
    single: float  # share of one-event sessions
    mean_extra: float  # mean number of events after the second one
    max_pause: int  # seconds between two events of a session: 5 to this


def sessions(
    rng: random.Random, timeline: Timeline, users: Users, n: int, shape: SessionShape
) -> Iterator[tuple[int, int, list[int]]]:
    """(session number, user index, event seconds since START) until `n` events in all."""
    written = number = 0
    picked = draws(rng, range(len(users.ids)), users.cum)
    while written < n:
        user = next(picked)
        hour = timeline.shaped_hour(rng, users.first_hour[user], users.visit_gap[user])
        second = hour * 3600 + int(rng.random() * 3600)
        size = 1 if rng.random() < shape.single else 2 + int(rng.expovariate(1 / shape.mean_extra))
        stamps = []
        for _ in range(min(size, n - written)):
            if second >= SECONDS:
                break
            stamps.append(second)
            second += 5 + int(rng.random() * (shape.max_pause - 5))
        written += len(stamps)
        yield number, user, stamps
        number += 1


def events(rng: random.Random, timeline: Timeline, pools: Pools, n: int) -> Iterator[str]:
    users = Users(rng, n // 30)
    types = [enc(t) for t in EVENT_TYPES]
    pages = [enc(p) for p in PAGES]
    # popular features first; one row in five touches no feature at all (the endpoints skip '')
    features = ['""'] + [enc(f) for f in FEATURES]
    feature_weights = [1 / rank for rank in range(1, len(FEATURES) + 1)]
    feature_cum = list(accumulate([sum(feature_weights) / 4, *feature_weights]))
    names = [enc(f"{word}_{verb}") for word in pools.words[:12] for verb in ("view", "click", "open")]
    columns = (
        draws(rng, types, EVENT_TYPE_CUM),
        draws(rng, names),
        draws(rng, pages),
        draws(rng, features, feature_cum),
        draws(rng, pools.properties),
    )
    index = 0
    for number, user, stamps in sessions(rng, timeline, users, n, SessionShape(0.2, 3, 90)):
        # stamps first: zip stops there without taking a value from the endless columns
        for second, kind, name, page, feature, properties in zip(stamps, *columns, strict=False):
            yield (
                f'{{"event_id":"evt_{index:08d}","user_id":{users.ids[user]},"session_id":"session_{number:07d}",'
                f'"event_type":{kind},"event_name":{name},"page":{page},"feature":{feature},'
                f'"properties":{properties},"timestamp":"{timeline.stamp_seconds(second)}"}}'
            )
            index += 1


def feature_events(rng: random.Random, timeline: Timeline, pools: Pools, n: int) -> Iterator[str]:
    users = Users(rng, n // 20)
    feature_ids = [enc(f) for f in FEATURE_IDS]
    feature_cum = zipf_cum(len(feature_ids), 0.8)
    columns = (
        draws(rng, [enc(t) for t in FEATURE_EVENT_TYPES], FEATURE_EVENT_TYPE_CUM),
        draws(rng, feature_ids, feature_cum),
    )
    for _, user, stamps in sessions(rng, timeline, users, n, SessionShape(0.3, 3, 240)):
        released = [v for v, first in VERSIONS if first * 3600 <= stamps[0]]
        # a session runs one version: mostly the newest the user could have, now and then an older one
        version = released[-1] if rng.random() < 0.6 or len(released) == 1 else rng.choice(released[:-1])
        session = f"session_{rng.getrandbits(48):012x}"
        metadata = rng.choice(pools.metadata)
        for second, kind, feature in zip(stamps, *columns, strict=False):  # stamps first: see events()
            yield (
                f'{{"event_id":"evt_{rng.getrandbits(64):016x}","user_id":{users.ids[user]},"feature_id":{feature},'
                f'"product_version":"{version}","event_type":{kind},"timestamp":"{timeline.stamp_seconds(second)}",'
                f'"session_id":"{session}","metadata":{metadata}}}'
            )


def app_events(rng: random.Random, timeline: Timeline, pools: Pools, n: int) -> Iterator[str]:
    """Sessions open with a login; one in eight is that login alone (a session of duration 0)."""
    users = Users(rng, n // 30)
    countries = [enc(c) for c in COUNTRIES]
    profiles = []
    for _ in users.ids:  # a user keeps their device, browser, OS and location
        device, systems = rng.choice(DEVICES)
        location = rng.choices(countries, cum_weights=COUNTRY_CUM)[0]
        profiles.append(
            f'"device_type":"{device}","browser":"{rng.choice(BROWSERS)}","os":"{rng.choice(systems)}",'
            f'"location":{location}'
        )
    features = ['""'] * 2 + [enc(f) for f in FEATURES[:10]]  # one row in six without a feature
    columns = (draws(rng, features), draws(rng, pools.app_metadata))
    actions = draws(rng, [enc(t) for t in APP_EVENT_TYPES])
    index = 0
    for number, user, stamps in sessions(rng, timeline, users, n, SessionShape(0.125, 5, 300)):
        kinds = ['"login"'] + [next(actions) for _ in stamps[1:]]
        for second, kind, feature, metadata in zip(stamps, kinds, *columns, strict=False):  # see events()
            yield (
                f'{{"event_id":"evt_{index:08d}","user_id":{users.ids[user]},"session_id":"sess_{number:07d}",'
                f'"event_type":{kind},"feature":{feature},"timestamp":"{timeline.stamp_seconds(second)}",'
                f'{profiles[user]},"metadata":{metadata}}}'
            )
            index += 1

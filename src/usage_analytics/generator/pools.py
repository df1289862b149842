"""Value pools, built once per run with a seeded Faker; rows are sampled from them.

Every pool value is stored already JSON-encoded, so a row is an f-string of pool entries.
"""

from __future__ import annotations

import json
import random
from itertools import accumulate

from faker import Faker


def enc(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def zipf_cum(n: int, s: float = 1.1) -> list[float]:
    """Cumulative weights of a Zipf-like skew: a few heavy members and a long tail."""
    return list(accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))


class Pools:
    def __init__(self, seed: int) -> None:
        fake = Faker()
        fake.seed_instance(seed)
        rng = random.Random(seed)
        self.user_agents = [enc(fake.user_agent()) for _ in range(60)]
        self.ipv4 = [enc(fake.ipv4_public()) for _ in range(400)]
        self.ipv6 = [enc(fake.ipv6()) for _ in range(60)]
        self.countries = [enc(c) for c in ("US", "GB", "DE", "FR", "ES", "IN", "BR", "CA", "JP", "AU", "NL", "MX")]
        self.words = [fake.word() for _ in range(40)]
        self.properties = [
            enc(enc({"action": rng.choice(["click", "view", "submit", "hover"]), "duration": rng.randint(1, 900)}))
            for _ in range(80)
        ]
        self.metadata = [
            enc(
                enc(
                    {
                        "device": rng.choice(["desktop", "mobile", "tablet"]),
                        "os": rng.choice(["windows", "macos", "linux", "ios", "android"]),
                        "browser": rng.choice(["chrome", "firefox", "safari", "edge"]),
                    }
                )
            )
            for _ in range(60)
        ]
        self.app_metadata = [
            enc(enc({"subscription_tier": rng.choice(["free", "basic", "pro", "enterprise"]), "duration": d}))
            for d in range(10, 900, 37)
        ]

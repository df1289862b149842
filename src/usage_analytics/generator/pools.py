"""Value pools, built once per run with a seeded Faker; rows are sampled from them.

Every pool value is stored already JSON-encoded (quotes and escapes included), so a row is an
f-string of pool entries and no row pays for json.dumps.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from itertools import accumulate

from faker import Faker


def enc(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def enc_json_string(value: dict) -> str:
    """A JSON object carried inside a String column (`properties`, `metadata`), as the seeds send it."""
    return enc(enc(value))


def zipf_cum(n: int, s: float = 1.1) -> list[float]:
    """Cumulative weights of a Zipf-like skew: a few heavy members and a long tail."""
    return list(accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))


def draws(rng: random.Random, population: Sequence, cum_weights: list[float] | None = None) -> Iterator:
    """An endless stream of samples, drawn thousands at a time: one rng.choices call per value costs
    more than the rest of a row."""
    while True:
        yield from rng.choices(population, cum_weights=cum_weights, k=4096)


class Pools:
    """Faker-made values: a few hundred of each, enough variety for group-bys, cheap to sample."""

    def __init__(self, seed: int) -> None:
        fake = Faker("en_US")
        fake.seed_instance(seed)
        rng = random.Random(f"{seed}/pools")
        self.user_agents = [enc(fake.user_agent()) for _ in range(60)]
        self.ipv4 = [enc(fake.ipv4_public()) for _ in range(400)]
        self.ipv6 = [enc(fake.ipv6()) for _ in range(60)]
        self.words = sorted({fake.word() for _ in range(60)})
        self.properties = [
            enc_json_string(
                {"action": rng.choice(["click", "view", "submit", "hover"]), "duration": rng.randint(1, 900)}
            )
            for _ in range(80)
        ]
        self.metadata = [
            enc_json_string(
                {
                    "device": rng.choice(["desktop", "mobile", "tablet"]),
                    "os": rng.choice(["windows", "macos", "linux", "ios", "android"]),
                    "browser": rng.choice(["chrome", "firefox", "safari", "edge"]),
                }
            )
            for _ in range(60)
        ]
        self.app_metadata = [
            enc_json_string(
                {"subscription_tier": rng.choice(["free", "basic", "pro", "enterprise"]), "duration": duration}
            )
            for duration in range(10, 900, 37)
        ]

"""A deterministic mixed corpus for detect tests (not a test module)."""

from __future__ import annotations

import random

PIECES = [
    "Hi Maria, see you Monday.", "mail ann.lee@example.org", "call +1 415-555-2671", "card 4111 1111 1111 1111",
    "IBAN GB82 WEST 1234 5698 7654 32", "SSN 078-05-1121", "from 203.0.113.7", "https://example.com/x",
    "I was diagnosed with diabetes", "union meeting tonight", "Zoë Müller wrote: ok", "日本語のテキスト 🎉",
    "nothing to see here", "12 Maple Street", "my salary is too low",
]


def corpus(n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4))) for _ in range(n)]

"""Hostile input for the rater: messages replaced by bytes that no decoder accepts."""

from __future__ import annotations

import random

__all__ = ["corrupt_messages"]


def corrupt_messages(values: list[bytes], fraction: float, seed: int, *, framed: bool) -> list[int]:
    """Replace ``fraction`` of ``values`` in place with broken messages; their positions.

    Cycles through garbage bytes, a truncated body and (framed) a wrong magic byte or
    (unframed) a body with trailing garbage.
    """
    rng = random.Random(seed ^ 0x5EED)
    hit = [i for i in range(len(values)) if rng.random() < fraction]
    for n, i in enumerate(hit):
        v = values[i]
        mode = n % 3
        if mode == 0:
            values[i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        elif mode == 1:
            cut = max(1, len(v) // 2)
            values[i] = v[:cut] if v[cut - 1] < 0x80 else v[: cut - 1]
        elif framed:
            values[i] = b"\x01" + v[1:]
        else:
            values[i] = v + b"\xde\xad\xbe\xef"
    return hit

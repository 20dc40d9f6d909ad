"""Seeds that belong to an item: a random draw made for one item (a cluster, a matrix and k)
comes from a stream seeded by the study's seed and the item's own keys, so adding or removing
another item never changes it."""

from __future__ import annotations

import json
import zlib


def item_seed(seed: int, keys: dict, *extra: int) -> list[int]:
    """A seed sequence for ``numpy.random.default_rng``: the study's `seed`, a stable hash (CRC32
    of the sorted JSON) of the item's `keys`, and `extra`."""
    digest = zlib.crc32(json.dumps(keys, sort_keys=True, default=str).encode())
    return [seed, digest, *extra]

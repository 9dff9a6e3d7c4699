"""Shards: each of N hosts or pods syncs a stable subset of the properties (``--shard K/N``).

A property belongs to shard ``sha256(site_url) mod N + 1``: the same on every host, in
every process and in every Python version (never ``hash()``, which is salted per
process), so the N shards partition any list of properties, each property in exactly one
shard, and a property stays in its shard as others come and go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def shard_of(site_url: str, n: int) -> int:
    """The shard (1 to ``n``) that ``site_url`` belongs to among ``n``."""
    if n < 1:
        raise ValueError(f"there must be at least one shard, not {n}")
    digest = hashlib.sha256(site_url.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def in_shard(site_url: str, k: int, n: int) -> bool:
    """Whether ``site_url`` belongs to shard ``k`` of ``n`` (1 <= k <= n)."""
    if not 1 <= k <= n:
        raise ValueError(f"shard {k}/{n}: K/N needs 1 <= K <= N")
    return shard_of(site_url, n) == k


def shard_sites(sites: Iterable[str], shard: tuple[int, int] | None) -> list[str]:
    """The ``sites`` of ``shard`` (``(k, n)``), in their order; all of them when None."""
    if shard is None:
        return list(sites)
    k, n = shard
    return [site for site in sites if in_shard(site, k, n)]

"""``gscsync merge OUT.db SHARD.db...``: the databases of shards combined into one.

Every shard is checked before the merged database is touched: it must exist and be a
gscsync database of this version (opened read-only through the store, which refuses
another application's database, a newer gscsync's and an older schema). The merged
database is then opened (created and migrated if need be) under its own lock
(``OUT.db.lock``), and each shard is merged in one transaction of its own, ledger-aware
(see :mod:`gscsync.store.merge`). Merging never writes a shard.

Each run is kept with its origin: the shard's absolute path and the run's id there. So
give a shard the same path from one merge to the next (a shard merged from another path
has its runs added again; its days are merged as always).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gscsync.errors import ConfigError
from gscsync.files import PRIVATE_MODE, same_file
from gscsync.lock import hold_lock
from gscsync.store import SqliteStore, check_db_path, open_store, open_store_readonly
from gscsync.store.merge import MergeCounts, merge_shard

log = logging.getLogger("gscsync")


@dataclass(frozen=True)
class ShardMerged:
    """One shard, merged."""

    path: Path
    counts: MergeCounts

    @property
    def summary(self) -> str:
        c = self.counts
        return (
            f"{self.path}: took {c.days:,} of {c.days_seen:,} day(s) and {c.report_days:,} of "
            f"{c.report_days_seen:,} report day(s), {c.rows:,} rows; runs: {c.runs_added} "
            f"added, {c.runs_updated} updated"
        )


def merge_databases(
    out: Path,
    shards: Sequence[Path],
    *,
    on_merged: Callable[[ShardMerged], None] | None = None,
    mode: int = PRIVATE_MODE,
) -> list[ShardMerged]:
    """Merge ``shards`` into ``out`` (created if absent), one transaction per shard, in
    the order given; ``on_merged`` hears of each as it is done. A bad shard is a
    ConfigError raised before ``out`` is touched."""
    check_inputs(out, shards)
    for shard in shards:
        _open_shard(shard).close()
    check_db_path(out)
    done: list[ShardMerged] = []
    with hold_lock(Path(f"{out}.lock")), open_store(out, checked=True, mode=mode) as store:
        for shard in shards:
            with _open_shard(shard) as source:
                merged = ShardMerged(shard, merge_shard(store, source, os.path.abspath(shard)))
            log.debug("merged %s", merged.summary)
            done.append(merged)
            if on_merged is not None:
                on_merged(merged)
    return done


def check_inputs(out: Path, shards: Sequence[Path]) -> None:
    """ConfigError for a shard that is missing, not a file, the output itself, or given
    twice."""
    if not shards:
        raise ConfigError("give at least one shard database to merge")
    for n, shard in enumerate(shards):
        if not shard.exists():
            raise ConfigError(f"shard {shard}: no such file")
        if not shard.is_file():
            raise ConfigError(f"shard {shard} is not a file; give the path of a gscsync database")
        if same_file(shard, out):
            raise ConfigError(
                f"shard {shard} is the output database {out}; merge into a database of its own"
            )
        twice = next((other for other in shards[:n] if same_file(other, shard)), None)
        if twice is not None:
            raise ConfigError(f"shard {shard} is given twice (also as {twice}); give it once")


def _open_shard(path: Path) -> SqliteStore:
    if path.stat().st_size == 0:
        raise ConfigError(f"shard {path} is an empty file, not a gscsync database; leave it out")
    try:
        return open_store_readonly(path)
    except ConfigError as exc:
        # the store's advice is for GSCSYNC_DB; for a shard, say what applies to merge
        reason = str(exc).split(";")[0]
        if "older schema" in reason:
            fix = f"upgrade it once with `gscsync check --db {path}`"
        else:
            fix = "give a database written by `gscsync sync --shard K/N`"
        raise ConfigError(f"shard {path}: {reason}; {fix}") from None

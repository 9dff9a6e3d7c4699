"""Plain data passed between fetching and writing."""

from __future__ import annotations

from dataclasses import dataclass, field

# (query, page, country, device, clicks, impressions, ctr, position)
DetailRow = tuple[str, str, str, str, int, int, float, float | None]
# (appearance, clicks, impressions, ctr, position)
AppearanceRow = tuple[str, int, int, float, float | None]
# (clicks, impressions, ctr, position)
Totals = tuple[int, int, float, float | None]

ZERO_TOTALS: Totals = (0, 0, 0.0, None)


@dataclass(frozen=True, order=True)
class DayTask:
    """One day of one site and search type to fetch; ``fresh`` when not final yet."""

    site_url: str
    search_type: str
    date: str
    fresh: bool = False


@dataclass
class DayData:
    """Everything fetched for one day, written in one transaction."""

    task: DayTask
    rows: list[DetailRow] = field(default_factory=list)
    appearance: list[AppearanceRow] = field(default_factory=list)
    totals: Totals = ZERO_TOTALS
    truncated: bool = False

    @property
    def status(self) -> str:
        return "fresh" if self.task.fresh else "final"

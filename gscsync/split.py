"""Past the row cap: a capped day refetched as disjoint slices whose union is the day.

The API serves at most 50,000 detail rows per day and search type, but it applies a
request's filters before that cap. So a capped day asked again as disjoint slices (by
device, then by its biggest countries with one "every other country" slice) can give
back more rows than the capped answer. A slice is split further only while splitting
returns more rows than the slice had, and within a budget of extra requests per day.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gscsync.api.client import GscClient
from gscsync.models import DetailRow

DEVICES = ("DESKTOP", "MOBILE", "TABLET")
TOP_COUNTRIES = 3  # a country split: the biggest three, and one slice for all the others

Rows = dict[tuple[str, ...], DetailRow]
Filter = dict[str, str]


@dataclass
class Split:
    """What splitting did for one day."""

    rows: Rows
    capped: bool  # a slice still reached the cap: rows past it are not served
    requests: int = 0  # extra requests the split cost
    slices: int = 1


@dataclass
class _Slice:
    filters: tuple[Filter, ...]
    rows: Rows
    capped: bool
    split_by: set[str] = field(default_factory=set)


Fetch = Callable[[dict[str, Any]], tuple[Rows, bool, int]]


def split_capped(
    client: GscClient,
    site: str,
    body: dict[str, Any],
    dims: Sequence[str],
    capped: Rows,
    *,
    budget: int,
    fetch: Fetch,
) -> Split:
    """Split a capped day (``body`` asked for it; ``capped`` is what it gave) into slices
    until none is capped, splitting stops paying, or ``budget`` requests are spent.

    ``fetch(body)`` returns (rows, capped, requests) for one slice's request.
    """
    done: list[_Slice] = []
    todo = [_Slice((), capped, True)]
    spent = 0
    while todo:
        parent = todo.pop()
        plan = _children(client, site, body, dims, parent, budget - spent)
        if plan is None:
            done.append(parent)
            continue
        children_filters, cost = plan
        if spent + cost + 2 * len(children_filters) > budget:  # a slice may page to empty
            done.append(parent)
            continue
        spent += cost
        children: list[_Slice] = []
        for filters in children_filters:
            rows, is_capped, requests = fetch(_with(body, filters))
            spent += requests
            by = parent.split_by | {f["dimension"] for f in filters}
            children.append(_Slice(filters, rows, is_capped, by))
        if sum(len(c.rows) for c in children) <= len(parent.rows):
            done.append(parent)  # splitting did not pay: keep what the slice had
            continue
        for child in children:
            (todo if child.capped else done).append(child)
    merged: Rows = {}
    for s in done:
        merged.update(s.rows)
    return Split(merged, any(s.capped for s in done), spent, len(done))


def _with(body: dict[str, Any], filters: Sequence[Filter]) -> dict[str, Any]:
    if not filters:
        return body
    return {**body, "dimensionFilterGroups": [{"groupType": "and", "filters": list(filters)}]}


def _children(
    client: GscClient,
    site: str,
    body: dict[str, Any],
    dims: Sequence[str],
    parent: _Slice,
    left: int,
) -> tuple[list[tuple[Filter, ...]], int] | None:
    """The disjoint slices a capped slice splits into, and what learning them cost."""
    if "device" in dims and "device" not in parent.split_by:
        return [(*parent.filters, _eq("device", d)) for d in DEVICES], 0
    if (
        "country" in dims
        and "country" not in parent.split_by
        and left >= 2 + 2 * (TOP_COUNTRIES + 1)
    ):
        grouped = {**_with(body, parent.filters), "dimensions": ["country"]}
        answer = client.query(site, grouped)
        top = sorted(answer.rows, key=lambda r: -r.impressions)[:TOP_COUNTRIES]
        names = [r.keys[0] for r in top]
        if not names:
            return None
        slices = [(*parent.filters, _eq("country", c)) for c in names]
        others = tuple(_ne("country", c) for c in names)
        return [*slices, (*parent.filters, *others)], answer_pages(answer)
    return None


def answer_pages(answer: Any) -> int:
    return int(getattr(answer, "pages", 1) or 1)


def _eq(dimension: str, value: str) -> Filter:
    return {"dimension": dimension, "operator": "equals", "expression": value}


def _ne(dimension: str, value: str) -> Filter:
    return {"dimension": dimension, "operator": "notEquals", "expression": value}

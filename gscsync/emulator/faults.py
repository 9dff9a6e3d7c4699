"""Hostile answers: what a broken server, proxy or network could send instead of Google's.

Each is a switch of :class:`~gscsync.emulator.server.Faults`, off by default:

- ``bad_rows``: one kind of invalid row (see :data:`ROW_KINDS`) in the answers to the
  requests whose range holds ``bad_day`` (every answer with rows when ``bad_day`` is
  None), or,
  for the probe kinds (:data:`PROBE_KINDS`), in the date-grouped answers covering it;
- ``redirect``: 302 with a JSON body and a ``Location`` (for the answers ``bad_rows``
  would touch: the one-day requests of ``bad_day``, or every API answer);
- ``drip``: seconds between body bytes of every API answer (not the token endpoint's);
- ``oversize``: every API answer padded with whitespace to this many bytes (``-1``: a
  body that never ends);
- ``echo_token_errors``: the token endpoint refuses with 400 and an
  ``error_description`` quoting the whole request form (assertion, refresh token and
  client secret).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

ROW_KINDS = (
    "nan",  # clicks NaN
    "infinity",  # impressions Infinity
    "string_number",  # clicks "12abc"
    "huge",  # impressions 2**63
    "keys_not_list",  # keys a comma-joined string
    "short_keys",  # one key fewer than dimensions
    "no_keys",  # keys left out
    "wrong_date",  # a copy of the first row dated the day before the range, other numbers
)
PROBE_KINDS = (
    "probe_bad_date",  # a date key of a date-grouped answer is not a real day
    "bad_marker",  # the freshness marker is tomorrow, spelled YYYYMMDD
)
KINDS = ROW_KINDS + PROBE_KINDS
REDIRECT_TO = "https://accounts.google.com/ServiceLogin?continue=searchconsole"


def one_day(body: dict[str, Any], day: str | None) -> bool:
    """Whether ``body`` asks for ``day`` alone (any one-day request when ``day`` is None)."""
    start, end = body.get("startDate"), body.get("endDate")
    return start == end if day is None else start == end == day


def covers(body: dict[str, Any], day: str | None) -> bool:
    """Whether ``body`` is a date-grouped request over a range holding ``day``."""
    dims = [str(d).lower() for d in body.get("dimensions") or []]
    if dims != ["date"]:
        return False
    return day is None or str(body.get("startDate")) <= day <= str(body.get("endDate"))


def targeted(kind: str | None, body: dict[str, Any], day: str | None) -> bool:
    """Whether the answer to ``body`` is one ``kind`` corrupts."""
    if kind in PROBE_KINDS:
        return covers(body, day)
    if kind in ROW_KINDS:
        if day is None:
            return True
        dims = [str(d).lower() for d in body.get("dimensions") or []]
        return dims != ["date"] and str(body.get("startDate")) <= day <= str(body.get("endDate"))
    return False


def corrupt(
    doc: dict[str, Any], body: dict[str, Any], kind: str, *, marker_key: str, today: date
) -> dict[str, Any]:
    """``doc`` with its first row (or marker) broken the ``kind`` way (a copy: the rows
    of the emulator's answer cache stay intact)."""
    rows = [dict(r) for r in doc.get("rows", [])]
    out = {**doc, "rows": rows} if rows else dict(doc)
    dims = [str(d).lower() for d in body.get("dimensions") or []]
    if kind == "bad_marker":
        out["metadata"] = {marker_key: (today + timedelta(days=1)).strftime("%Y%m%d")}
        return out
    if not rows:
        return out
    row = rows[0]
    keys = list(row.get("keys", []))
    if kind == "nan":
        row["clicks"] = math.nan
    elif kind == "infinity":
        row["impressions"] = math.inf
    elif kind == "string_number":
        row["clicks"] = "12abc"
    elif kind == "huge":
        row["impressions"] = 2**63
    elif kind == "keys_not_list":
        row["keys"] = ",".join(keys)
    elif kind == "short_keys":
        row["keys"] = keys[:-1]
    elif kind == "no_keys":
        row.pop("keys", None)
    elif "date" in dims and kind == "wrong_date":  # a lax reader overwrites row 0 with it
        at = dims.index("date")  # dated the day before the range: outside what was asked
        keys[at] = (date.fromisoformat(str(body["startDate"])) - timedelta(days=1)).isoformat()
        more = {"clicks": row["clicks"] + 1000, "impressions": row["impressions"] + 1000}
        rows.append({**row, "keys": keys, **more})
    elif "date" in dims and kind == "probe_bad_date":
        at = dims.index("date")
        keys[at] = f"{keys[at][:4]}-02-30"
        row["keys"] = keys
    return out


def echo_form(form: dict[str, str]) -> dict[str, str]:
    """A refusal quoting the whole request form, secrets and all."""
    echoed = "&".join(f"{k}={v}" for k, v in form.items())
    return {"error": "invalid_grant", "error_description": f"Bad request: {echoed}"}

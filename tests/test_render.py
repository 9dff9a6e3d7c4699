"""What the CLI shows: shares rounded down, never a false 100%."""

from __future__ import annotations

import pytest

from gscsync.render import pct as _pct


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "—"), (0.5, "50.0%"), (0.9996, "99.9%"), (1.0, "100.0%"), (1.0423, "104.2%")],
)
def test_shares_are_rounded_down_and_shown_raw(value: float | None, shown: str) -> None:
    assert _pct(value) == shown

"""Progress as the operator sees it: a bar that never says "None", log lines above the
bar instead of through it, and off a terminal a line per 10% or per minute."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from gscsync import render
from gscsync.models import RunReport


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def report(planned: int, done: int) -> RunReport:
    r = RunReport(days_planned=planned)
    r.days_ok = done
    return r


def test_off_a_terminal_a_line_per_tenth_or_per_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    caplog.set_level(logging.INFO, logger="gscsync")
    with render.progress_display(0, clock=lambda: now[0]) as update:
        update(report(1000, 0))  # the first line
        update(report(1000, 5))  # same tenth, same minute: nothing
        now[0] = 61.0
        update(report(1000, 6))  # a minute on: a line although still under 10%
        update(report(1000, 100))  # the next tenth
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress")]
    assert [line.split(",")[0] for line in lines] == [
        "progress: 0/1000 days",
        "progress: 6/1000 days",
        "progress: 100/1000 days",
    ]


def test_the_bar_says_planning_before_it_knows_the_days_and_logs_go_above_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    logger = logging.getLogger("gscsync")
    handler = logging.StreamHandler(sys.__stderr__)
    logger.addHandler(handler)
    try:
        with render.progress_display(0) as update:
            update(report(0, 0))
            assert handler.stream is not sys.__stderr__  # through the bar's console
            update(report(40, 10))
        assert handler.stream is sys.__stderr__  # given back
    finally:
        logger.removeHandler(handler)
    out = tty.getvalue()
    assert "None" not in out
    assert "10/40 days" in out

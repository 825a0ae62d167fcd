"""The short version of ``make fuzz``: 300 hostile requests against the real server, whose
bounds must all hold (see ``tests.extender.fuzz``)."""

from __future__ import annotations

from tests.extender.fuzz import run
from tests.extender.hostile import KINDS

REQUESTS = 300


def test_300_hostile_requests_find_no_5xx_no_unbounded_reply_and_no_stall() -> None:
    report = run(REQUESTS, max_seconds=240.0)
    assert report.violations == []
    assert report.sent == REQUESTS
    assert set(report.statuses) == set(KINDS)
    assert (report.rss_peak_kib - report.rss_start_kib) / 1024 < 128

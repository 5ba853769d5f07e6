"""Billing-period folders of the landing zone: which dates a folder covers (streams of one delivery
must cover the same dates), month arithmetic through BillingPeriod."""

from __future__ import annotations

import pytest

from focus_platform.landing.zone import _dates_covered, _period_of_folder


@pytest.mark.parametrize("folder,covered", [
    ("20240201-20240229", "2024-02"),  # last day of a leap February
    ("20240201-20240301", "2024-02"),  # first of the next month (legacy CUR)
    ("20231201-20240101", "2023-12"),  # across the year
    ("20231201-20231231", "2023-12"),
    ("BILLING_PERIOD=2024-02", "2024-02"),
    ("2024-02", "2024-02"),
    ("20240201-20240228", "20240201-20240228"),  # a day short of the leap month: its own range
    ("20240215-20240301", "20240215-20240301"),  # not from the first
    ("20241301-20241331", "20241301-20241331"),  # no such month
    ("20240201-20240230", "20240201-20240230"),  # no such end date
])
def test_a_folder_covers_a_whole_month_or_its_own_range(folder, covered):
    assert _dates_covered(folder) == covered


def test_a_folder_named_for_month_13_is_still_a_period_folder_so_its_period_can_be_refused():
    assert _period_of_folder("2023-13") == "2023-13"
    assert _period_of_folder("20240215-20240301") is None

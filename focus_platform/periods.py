"""Billing periods: ``YYYY-MM`` with a month 01 to 12, defined once (no Dagster here)."""

import re

BILLING_PERIOD_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def is_billing_period(text: str) -> bool:
    return bool(BILLING_PERIOD_PATTERN.match(text))

"""Cost anomaly detection on small hand-built spend rows: weekday effects, fees, one-offs, suppressions, the
cost floor, incidents, top contributors, short series and the settings file."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from focus_platform.anomalies import (
    COST_ANOMALIES,
    AnomalyError,
    AnomalySettings,
    OneOff,
    Suppression,
    detect,
    read_anomaly_settings,
)
from focus_platform.forecasting.spend import FEE, SPEND_ROWS, USAGE

START = date(2026, 1, 5)  # a Monday
DAYS = 84
SPIKE_DAY = START + timedelta(days=70)


def pattern(days: int = DAYS, level: float = 1000.0, weekend: float = 0.3, noise: float = 0.03,
            seed: int = 0) -> list[float]:
    """Daily usage: ``level`` on weekdays, ``weekend`` × level on Saturdays and Sundays, small noise."""
    rng = np.random.default_rng(seed)
    return [level * (weekend if (START + timedelta(days=d)).weekday() >= 5 else 1.0) * (1 + noise * rng.standard_normal())
            for d in range(days)]


def series_rows(daily: list[float], *, owner: str = "web", service: str = "compute",
                resources: tuple[str, ...] = ("vm-1", "vm-2", "vm-3"), extra: dict[int, dict[str, float]] | None = None,
                start: date = START) -> list[dict]:
    """SPEND_ROWS dicts: each day's cost split evenly over ``resources``, plus ``extra[day][resource]`` added."""
    rows = []
    for d, total in enumerate(daily):
        day = start + timedelta(days=d)
        parts = {r: total / len(resources) for r in resources}
        for resource, amount in (extra or {}).get(d, {}).items():
            parts[resource] = parts.get(resource, 0.0) + amount
        rows += [row(day, owner, service, resource, amount) for resource, amount in parts.items()]
    return rows


def row(day: date, owner: str, service: str, resource: str, amount: float, *, kind: str = USAGE,
        sku: str = "sku-a", suffix: str = "") -> dict:
    cost = Decimal(f"{amount:.6f}")
    return {"Date": day, "x_BillingPeriod": day.strftime("%Y-%m"), "Owner": owner, "ProviderName": "AWS",
            "ServiceName": service, "BillingAccountId": "111111111111", "SubAccountId": "222222222222",
            "BillingCurrency": "USD", "ChargeCategory": "Usage" if kind == USAGE else "Purchase",
            "ChargeFrequency": "Usage-Based" if kind == USAGE else "One-Time", "SpendKind": kind,
            "ResourceId": resource, "SkuId": sku, "x_RowId": f"{service}-{day:%Y%m%d}-{resource}-{sku}{suffix}",
            "BilledCost": cost, "EffectiveCost": cost}


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SPEND_ROWS)


def spiked(days: int = 1, amount: float = 1500.0, resource: str = "vm-2") -> pl.DataFrame:
    first = (SPIKE_DAY - START).days
    return frame(series_rows(pattern(), extra={first + i: {resource: amount} for i in range(days)}))


def test_weekday_effect_is_not_an_anomaly():
    result = detect(frame(series_rows(pattern(weekend=0.3))))
    assert result.anomalies.is_empty()
    assert result.metadata["series_scored"] == 1
    assert result.metadata["days_scored"] == DAYS - 28


def test_a_spike_is_raised_with_expected_actual_and_score():
    result = detect(spiked())
    anomaly = result.anomalies.row(0, named=True)
    assert result.anomalies.height == 1 and result.anomalies.schema == pl.Schema(COST_ANOMALIES)
    assert (anomaly["Date"], anomaly["Status"], anomaly["Direction"]) == (SPIKE_DAY, "raised", "up")
    assert anomaly["Actual"] - anomaly["Expected"] == anomaly["Delta"]
    assert Decimal("1300") < anomaly["Delta"] < Decimal("1700") and anomaly["Score"] > 10
    assert anomaly["x_BillingPeriod"] == f"{SPIKE_DAY:%Y-%m}" and anomaly["ProviderName"] is None
    assert result.metadata["alerts"] == 1


def test_a_drop_is_raised_down():
    daily = pattern()
    daily[(SPIKE_DAY - START).days] *= 0.2
    anomaly = detect(frame(series_rows(daily))).anomalies.row(0, named=True)
    assert (anomaly["Date"], anomaly["Direction"]) == (SPIKE_DAY, "down") and anomaly["Delta"] < 0


def test_a_level_shift_is_one_incident_at_its_start_then_the_new_normal():
    shift = (SPIKE_DAY - START).days - 14
    daily = [cost * (1.8 if d >= shift else 1.0) for d, cost in enumerate(pattern())]
    result = detect(frame(series_rows(daily)))
    anomalies = result.anomalies
    assert anomalies["IncidentStart"].unique().to_list() == [START + timedelta(days=shift)]
    assert anomalies["Date"].max() < START + timedelta(days=shift + 7)
    assert result.metadata["alerts"] == 1


def test_a_series_with_a_null_key_is_scored_and_explained():
    anomalies = detect(spiked().with_columns(pl.lit(None, pl.String).alias("BillingAccountId"))).anomalies
    assert anomalies["Date"].to_list() == [SPIKE_DAY] and anomalies["BillingAccountId"].to_list() == [None]
    assert json.loads(anomalies["TopContributors"][0])[0]["ResourceId"] == "vm-2"


def test_month_start_purchases_and_fees_are_not_scored():
    rows = series_rows(pattern())
    rows += [row(day, "web", "compute", "commitment", 30_000, kind=FEE) for day in (date(2026, 2, 1), date(2026, 3, 1))]
    assert detect(frame(rows)).anomalies.is_empty()


def test_a_known_one_off_is_left_out_of_baseline_and_scoring():
    one_off = OneOff(SPIKE_DAY, (("Owner", "web"),), "load test")
    result = detect(spiked(), AnomalySettings(one_offs=(one_off,)))
    assert result.anomalies.is_empty()
    assert result.metadata["one_off_days_excluded"] == 1
    other_owner = OneOff(SPIKE_DAY, (("Owner", "ml"),), "not this series")
    assert detect(spiked(), AnomalySettings(one_offs=(other_owner,))).anomalies.height == 1


def test_a_suppression_window_records_the_anomaly_as_suppressed_not_an_alert():
    window = Suppression((("Owner", "web"), ("ServiceName", "compute")), SPIKE_DAY - timedelta(days=1), SPIKE_DAY,
                         "quarterly reprocessing")
    result = detect(spiked(), suppressions=[window])
    anomaly = result.anomalies.row(0, named=True)
    assert anomaly["Status"] == "suppressed" and anomaly["x_Reason"].startswith("suppressed: quarterly reprocessing")
    assert (result.metadata["suppressed"], result.metadata["raised"], result.metadata["alerts"]) == (1, 0, 0)
    before = Suppression(window.match, SPIKE_DAY - timedelta(days=5), SPIKE_DAY - timedelta(days=1), "over")
    assert detect(spiked(), suppressions=[before]).anomalies["Status"].to_list() == ["raised"]


def test_under_the_cost_floor_nothing_is_raised_but_it_is_counted():
    small = frame(series_rows(pattern(level=3.0), extra={(SPIKE_DAY - START).days: {"vm-1": 6.0}}))
    result = detect(small)
    assert result.anomalies.is_empty() and result.metadata["under_floor"] == 1
    assert detect(small, AnomalySettings(cost_floor=Decimal("1"))).anomalies["Date"].to_list() == [SPIKE_DAY]


def test_a_five_day_spike_is_one_incident_starting_on_its_first_day():
    result = detect(spiked(days=5))
    anomalies = result.anomalies
    assert anomalies.height >= 3 and anomalies["Date"].min() == SPIKE_DAY
    assert anomalies["IncidentId"].n_unique() == 1 and anomalies["IncidentStart"].unique().to_list() == [SPIKE_DAY]
    assert (result.metadata["incidents"], result.metadata["alerts"]) == (1, 1)


def test_incidents_far_apart_are_two_alerts():
    first = (SPIKE_DAY - START).days
    rows = frame(series_rows(pattern(), extra={first - 20: {"vm-1": 1500.0}, first: {"vm-1": 1500.0}}))
    assert detect(rows).metadata["alerts"] == 2


def test_one_owner_on_one_day_across_services_is_one_incident():
    first = (SPIKE_DAY - START).days
    rows = (series_rows(pattern(seed=1), service="compute", extra={first: {"vm-1": 1500.0}})
            + series_rows(pattern(seed=2), service="storage", extra={first: {"vm-1": 1500.0}})
            + series_rows(pattern(seed=3), owner="ml", service="compute", extra={first: {"vm-1": 1500.0}}))
    result = detect(frame(rows))
    assert result.anomalies.height == 3
    incidents = dict(result.anomalies.group_by("Owner").agg(pl.col("IncidentId").n_unique()).iter_rows())
    assert incidents == {"web": 1, "ml": 1} and result.metadata["alerts"] == 2


def test_incident_ids_are_the_same_on_a_rerun_and_whatever_the_window_or_row_order():
    rows = spiked(days=3)
    first = detect(rows).anomalies
    shuffled = detect(rows.sample(fraction=1.0, shuffle=True, seed=4)).anomalies
    later = detect(rows, days=(SPIKE_DAY + timedelta(days=1), SPIKE_DAY + timedelta(days=10))).anomalies
    assert first["IncidentId"].to_list() == shuffled["IncidentId"].to_list()
    assert later["Date"].min() == SPIKE_DAY + timedelta(days=1)
    assert later["IncidentId"].unique().to_list() == first["IncidentId"].unique().to_list()
    assert later["IncidentStart"].unique().to_list() == [SPIKE_DAY]


def test_top_contributors_name_the_resource_that_moved_and_its_row_ids():
    rows = spiked(resource="vm-2")
    day_rows = rows.filter((pl.col("Date") == SPIKE_DAY) & (pl.col("ResourceId") == "vm-2"))
    extra = day_rows.with_columns(pl.lit("sku-a-2").alias("x_RowId"), pl.lit(Decimal("1")).cast(SPEND_ROWS["EffectiveCost"])
                                  .alias("EffectiveCost"))  # a second row of the same resource and SKU that day
    contributors = json.loads(detect(pl.concat([rows, extra])).anomalies["TopContributors"][0])
    assert len(contributors) == 3 and contributors[0]["ResourceId"] == "vm-2" and contributors[0]["SkuId"] == "sku-a"
    assert sorted(contributors[0]["x_RowIds"]) == sorted([*day_rows["x_RowId"], "sku-a-2"])
    assert Decimal("1450") < Decimal(contributors[0]["Delta"]) < Decimal("1560")
    assert all(abs(Decimal(c["Delta"])) < 100 for c in contributors[1:])


def test_top_contributors_list_at_most_the_setting_and_cap_row_ids():
    first = (SPIKE_DAY - START).days
    rows = series_rows(pattern(), extra={first: {"vm-9": 1500.0}})
    rows += [row(SPIKE_DAY, "web", "compute", "vm-9", 1.0, suffix=f"-{i}") for i in range(30)]
    contributors = json.loads(detect(frame(rows), AnomalySettings(top_contributors=2)).anomalies["TopContributors"][0])
    assert [c["ResourceId"] for c in contributors][:1] == ["vm-9"] and len(contributors) == 2
    assert len(contributors[0]["x_RowIds"]) == 20


def test_a_series_too_short_is_counted_with_the_reason_not_a_crash():
    rows = series_rows(pattern()) + series_rows(pattern(days=10), service="new-service",
                                                start=START + timedelta(days=DAYS - 10))
    result = detect(frame(rows))
    assert result.metadata["series"] == 2 and result.metadata["series_scored"] == 1
    assert result.metadata["series_too_short"] == 1
    short = result.metadata["too_short"][0]
    assert short["ServiceName"] == "new-service" and short["reason"].startswith("10 days of usage history")


def test_no_usage_rows_give_an_empty_table():
    result = detect(pl.DataFrame(schema=SPEND_ROWS))
    assert result.anomalies.is_empty() and result.anomalies.schema == pl.Schema(COST_ANOMALIES)
    assert result.metadata["series"] == 0


def test_spend_rows_without_a_key_column_are_refused_naming_it():
    with pytest.raises(ValueError, match="no column BillingAccountId"):
        detect(frame(series_rows(pattern())).drop("BillingAccountId"))


def test_days_after_as_of_are_not_read():
    assert detect(spiked(), as_of=SPIKE_DAY - timedelta(days=1)).anomalies.is_empty()


SETTINGS_FILE = Path(__file__).parents[1] / "fixtures" / "anomalies" / "settings.yaml"


def test_the_settings_file_gives_settings_suppressions_and_one_offs():
    settings, suppressions = read_anomaly_settings([("anomalies/settings.yaml", SETTINGS_FILE.read_bytes())])
    assert settings.keys == ("Owner", "ServiceName", "BillingCurrency")
    assert (settings.threshold, settings.cost_floor, settings.group_gap_days) == (5.5, Decimal("25.50"), 1)
    assert settings.min_history_days == AnomalySettings().min_history_days
    assert suppressions == [Suppression((("Owner", "data-eng"), ("ServiceName", "Amazon EMR")), date(2026, 12, 1),
                                        date(2026, 12, 7), "quarterly reprocessing")]
    assert settings.one_offs == (OneOff(date(2026, 11, 15), (("Owner", "web"),), "load test before launch"),)
    assert read_anomaly_settings([]) == (AnomalySettings(), [])


@pytest.mark.parametrize(("text", "message"), [
    (b"setting: {}\n",
     "f.yaml: unknown field 'setting' (did you mean 'settings'?); allowed: settings, suppressions, known_one_offs"),
    (b"settings: {threshold: -1}\n", "f.yaml: settings.threshold: must be greater than 0, not -1"),
    (b"settings: {cost_floor: ten}\n", "f.yaml: settings.cost_floor: must be a number, not the text 'ten'"),
    (b"settings: {keys: [Owner, Team]}\n", "f.yaml: settings.keys[1]: unknown key column 'Team'"),
    (b"settings: {keys: [Owner, ServiceName]}\n", "f.yaml: settings.keys: must include BillingCurrency"),
    (b"settings: {min_history_days: 3}\n", "f.yaml: settings.min_history_days: must be a whole number ≥ 28, not a number (3)"),
    (b"suppressions:\n  - {match: {Owner: a}, from: 2026-12-01, until: 2026-12-07}\n",
     "f.yaml: suppressions[0]: missing required field 'reason'"),
    (b"suppressions:\n  - {match: {Owner: a}, from: 2026-12-08, until: 2026-12-07, reason: r}\n",
     "f.yaml: suppressions[0].until: 2026-12-07 is before from (2026-12-08)"),
    (b"suppressions:\n  - {match: {Owner: a}, from: 2026-12-01, until: 2026-12-07, reason: r}\n"
     b"  - {match: {Team: a}, from: 2026-12-01, until: 2026-12-07, reason: r}\n",
     "f.yaml: suppressions[1].match: 'Team' is not a key column"),
    (b"known_one_offs:\n  - {date: 2026-13-01, match: {Owner: a}, reason: r}\n",
     "f.yaml: known_one_offs[0].date: '2026-13-01' is not a calendar date (month must be in 1..12)"),
    (b"known_one_offs:\n  - {date: '2026-13-01', match: {Owner: a}, reason: r}\n",
     "f.yaml: known_one_offs[0].date: '2026-13-01' is not a calendar date (month must be in 1..12)"),
    (b"known_one_offs:\n  - {date: 2026-11-01, match: {Owner: 12}, reason: r}\n",
     "f.yaml: known_one_offs[0].match.Owner: must be non-empty text, not a number (12)"),
    (b"known_one_offs: {date: 2026-11-01}\n", "f.yaml: known_one_offs: must be a list, not a mapping"),
    (b"settings: {threshold: 5, threshold: 6}\n", "f.yaml: line 1, column 26: not valid YAML: key 'threshold' appears twice"),
])
def test_a_bad_settings_entry_is_one_line_naming_file_and_entry(text, message):
    with pytest.raises(AnomalyError) as caught:
        read_anomaly_settings([("f.yaml", text)])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_two_settings_sections_are_refused():
    with pytest.raises(AnomalyError, match=r"^b.yaml: settings: a second settings section \(the first is in a.yaml\)$"):
        read_anomaly_settings([("a.yaml", b"settings: {threshold: 5}\n"), ("b.yaml", b"settings: {threshold: 6}\n")])


def test_less_history_than_the_weekday_profile_spans_is_no_crash():
    """The baseline's lags reach eight weeks back: 40 days of data score nothing (too short) and raise nothing."""
    from focus_platform.generate.spend import seasonal_spend

    result = detect(seasonal_spend(2, date(2026, 9, 1), 40))
    assert result.anomalies.is_empty() and result.metadata["series"] == 2

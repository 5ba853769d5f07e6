"""Cost anomaly detection against the truth of generated spend: recall of injected anomalies within a day of their
start, false alerts / alerts (M9) and alerts in a quiet year (issue 13)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from focus_platform.anomalies import detect
from focus_platform.generate.anomalies import (
    KINDS,
    anomaly_spend,
    quiet_year,
    truth_figures,
)
from focus_platform.generate.spend import seasonal_spend

SERIES = 160
INJECTED = 80  # 20 of each kind
START = date(2025, 1, 1)


@pytest.fixture(scope="module")
def injected() -> tuple[pl.DataFrame, pl.DataFrame]:
    return anomaly_spend(SERIES, START, 365, injected=INJECTED, seed=11)


def test_injected_anomalies_are_found_within_a_day_and_false_alerts_stay_under_five_percent(injected):
    rows, truth = injected
    figures = truth_figures(detect(rows).anomalies, truth)
    print(f"\n{SERIES} series, {INJECTED} injections: {figures}")
    assert figures["injections"] == INJECTED and set(figures["recall_by_kind"]) == set(KINDS)
    assert figures["recall"] >= 0.90
    assert figures["m9"] < 0.05


def test_a_quiet_year_raises_at_most_one_alert_per_twenty_series():
    result = detect(quiet_year(SERIES, START, seed=12))
    alerts_per_series = result.metadata["alerts"] / SERIES
    print(f"\nquiet year, {SERIES} series: {result.metadata['alerts']} alerts ({alerts_per_series:.3f} per series), "
          f"{result.metadata['days_scored']} series-days scored")
    assert alerts_per_series <= 1 / 20


def test_the_generator_splits_each_series_over_resources_with_distinct_row_ids(injected):
    rows, truth = injected
    usage = rows.filter(pl.col("SpendKind") == "usage")
    assert usage["x_RowId"].n_unique() == usage.height
    per_series_day = usage.group_by("ServiceName", "Date").agg(pl.col("ResourceId").n_unique())
    assert per_series_day["ResourceId"].min() >= 3
    assert truth["Kind"].value_counts().sort("Kind")["count"].to_list() == [INJECTED // len(KINDS)] * len(KINDS)
    base = seasonal_spend(SERIES, START, 365, seed=11).filter(pl.col("SpendKind") == "usage")
    clean = usage.join(truth.select("ServiceName"), on="ServiceName", how="anti")
    summed = clean.group_by("ServiceName", "Date").agg(pl.col("EffectiveCost").sum())
    assert summed.join(base, on=["ServiceName", "Date"]).filter(
        pl.col("EffectiveCost") != pl.col("EffectiveCost_right")).is_empty()  # the split keeps every 1e-6
    assert summed.height == (SERIES - INJECTED) * 365


def test_detection_reads_the_truths_resource_as_top_contributor(injected):
    rows, truth = injected
    anomalies = detect(rows).anomalies
    firsts = anomalies.sort("Date").group_by("ServiceName", maintain_order=True).first()
    named = truth.filter(pl.col("Kind").is_in(["spike", "runaway"])).join(firsts, on="ServiceName")
    top = named["TopContributors"].str.json_decode().list.first().struct.field("ResourceId")
    assert (top == named["ResourceId"]).mean() >= 0.9

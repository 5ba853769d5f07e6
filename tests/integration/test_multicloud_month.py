"""One billing month holding AWS, Azure (EA and MCA), GCP and OCI together, materialized through the
Dagster assets into one focus_costs table: one query gives cost by ServiceCategory by provider,
per currency, and every provider's totals equal its generator's expected totals (computed by the
generators independently of the converters)."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from focus_platform.defs.assets.ingest import INGEST_ASSETS
from focus_platform.defs.partitions import EXPORT_SOURCE, dagster_key
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.generate.aws_cur import generate_aws_cur
from focus_platform.generate.azure import generate_azure
from focus_platform.generate.gcp import generate_gcp
from focus_platform.generate.oci import generate_oci
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import FOCUS_TABLE
from focus_platform.spec.columns import focus_column

PERIOD = "2024-01"
SOURCES = [  # name, format, location, streams
    ("aws", "aws-cur", "focus-demo", None),
    ("azure-ea", "azure-cost-details", "azure-ea", ["actual", "amortized"]),
    ("azure-mca", "azure-cost-details", "azure-mca", ["actual", "amortized"]),
    ("gcp", "gcp-billing", "gcp-billing", None),
    ("oci", "oci-cost", "oci-cost", None),
]
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    landing = tmp_path_factory.mktemp("landing")
    generate_aws_cur(landing, rows=1500, seed=3, start_period=PERIOD)
    generate_azure(landing, rows=1500, seed=3, start_period=PERIOD)
    generate_gcp(landing, rows=1500, seed=3, start_period=PERIOD)
    generate_oci(landing, rows=1500, seed=3, start_period=PERIOD)
    (landing / "sources.json").write_text(json.dumps({"sources": [
        {"name": n, "format": f, "location": loc, **({"streams": s} if s else {})} for n, f, loc, s in SOURCES]}))
    warehouse = tmp_path_factory.mktemp("warehouse")
    resources = {"landing_zone": LandingZoneResource(root=str(landing)),
                 "warehouse": WarehouseResource(root=str(warehouse))}
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(EXPORT_SOURCE, [n for n, *_ in SOURCES])
        results = {n: dg.materialize(INGEST_ASSETS, partition_key=dagster_key(PartitionKey.of(PERIOD, n)), instance=instance,
                                     resources=resources, run_config=QUIET, raise_on_error=False)
                   for n, *_ in SOURCES}
    return landing, warehouse, results


def expected_by_provider_currency(landing: Path) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """(source family, currency) → (billed, amortized) from every generator's expected_totals.json."""
    out: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for path in landing.rglob("expected_totals.json"):
        doc = json.loads(path.read_text())
        family = doc["generator"].split(".")[-1] if "." in doc["generator"] else doc["generator"]
        for t in doc["totals"]:
            if t["billing_period"] != PERIOD:
                continue
            entry = out[(family, t["currency"])]
            entry[0] += Decimal(t["billed_cost"])
            entry[1] += Decimal(t.get("amortized_cost", t.get("effective_cost")))
    return {k: (v[0], v[1]) for k, v in out.items()}


def test_every_cloud_publishes_its_month(month):
    _, _, results = month
    failed = {n: [str(e.event_specific_data) for e in r.all_events if e.is_failure] for n, r in results.items()
              if not r.success}
    assert failed == {}
    for name, result in results.items():
        evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        blocking_failed = [e.check_name for e in evaluations if not e.passed and e.severity.value == "ERROR"]
        assert blocking_failed == [], (name, blocking_failed)


def test_one_query_gives_cost_by_service_category_by_provider_per_currency(month):
    landing, warehouse, _ = month
    by_category = (
        pl.scan_delta(str(warehouse / FOCUS_TABLE))
        .filter(pl.col("x_BillingPeriod") == PERIOD)
        .group_by("ProviderName", "ServiceCategory", "BillingCurrency")
        .agg(pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum(), pl.len().alias("rows"))
        .sort("ProviderName", "ServiceCategory", "BillingCurrency")
        .collect()
    )
    print(by_category)
    providers = set(by_category["ProviderName"])
    assert len(providers) == 4, providers  # AWS, Microsoft, Google Cloud, Oracle
    allowed = set(focus_column("ServiceCategory").allowed_values)
    assert set(by_category["ServiceCategory"]) <= allowed
    assert by_category.schema["BilledCost"] == pl.Decimal(38, 12)  # money stays Decimal in the query

    # per provider and currency (never across currencies) = the generators' expected totals
    got = (by_category.group_by("ProviderName", "BillingCurrency")
           .agg(pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum()))
    sources_of_provider = (pl.scan_delta(str(warehouse / FOCUS_TABLE))
                           .filter(pl.col("x_BillingPeriod") == PERIOD)
                           .select("ProviderName", "x_SourceFormat").unique().collect())
    family = {"aws-cur": "aws_cur", "azure-cost-details": "azure", "gcp-billing": "gcp", "oci-cost": "oci"}
    provider_family = {p: family[f] for p, f in sources_of_provider.iter_rows()}
    expected = expected_by_provider_currency(landing)
    actual = {(provider_family[p], c): (b, e) for p, c, b, e in got.iter_rows()}
    assert actual == expected
    assert len({c for _, c in actual}) >= 3  # several currencies, each totalled on its own

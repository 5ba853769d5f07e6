"""Every native FOCUS sample converts to canonical FOCUS 1.2 (format ``focus``): 0 converter defects,
exact conservation per billing account x period x currency against totals computed HERE from the
delivered text (plain ``csv`` + ``Decimal``), rows conserved; the intentionally bad file gives
quarantined rows and recorded fixes; the ContractCommitment dataset is refused with a clear error;
the official focus-validator passes outside the allow-list (``validator`` mark).

Samples: tests/fixtures/focus-native/ (see its README): the FinOps Foundation FOCUS 1.0 sample,
Microsoft's FOCUS export, the synthetic 1.2 (AWS) and 1.3 (Azure) files, the constructed 1.2 files
(CSV and typed Parquet). The embedded demo delivery (sample_data/landing/focus-native) goes through
the landing zone → raw_focus → focus_costs path.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.periods import PartitionKey
from focus_platform.pipeline import convert_files
from focus_platform.sources import SourceFormatError
from tests.conftest import FIXTURES, SAMPLE_LANDING

NATIVE = FIXTURES / "focus-native"
SAMPLES = {
    "official-1.0": NATIVE / "official_1_0_focus_sample.csv.gz",
    "microsoft-1.0": NATIVE / "microsoft_1_0_cur_anon_sample_focus_azure.csv.gz",
    "synthetic-aws-1.2": NATIVE / "focus_1_2_cost_and_usage_aws.csv.gz",
    "synthetic-azure-1.3": NATIVE / "focus_1_3_cost_and_usage_azure.csv.gz",
    "tiny-1.2-csv": NATIVE / "tiny_focus_1_2.csv",
    "tiny-1.2-parquet": NATIVE / "tiny_focus_1_2.parquet",
    "tiny-1.2-bad": NATIVE / "tiny_focus_1_2_bad.csv",
}
DEMO = next((SAMPLE_LANDING / "focus-native").rglob("*.csv"))
EXPECTED_ROWS = {"official-1.0": 1000, "microsoft-1.0": 1000, "synthetic-aws-1.2": 500, "synthetic-azure-1.3": 500,
                 "tiny-1.2-csv": 6, "tiny-1.2-parquet": 6, "tiny-1.2-bad": 6}
EXPECTED_VERSION = {"official-1.0": "1.0", "microsoft-1.0": "1.0", "synthetic-aws-1.2": "1.2",
                    "synthetic-azure-1.3": "1.3", "tiny-1.2-csv": "1.2", "tiny-1.2-parquet": "1.2", "tiny-1.2-bad": "1.2"}
TWELVE = Decimal("1e-12")
NULLS = {"", "NULL", "null", "N/A", "Not Applicable", "None"}


# ---------------------------------------------------------------------------------------------
# Totals computed from the delivered text, independently of the package
# ---------------------------------------------------------------------------------------------
def delivered_rows(path: Path) -> list[dict[str, str]]:
    if path.suffix == ".parquet":
        return [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in pl.read_parquet(path).iter_rows(named=True)]
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def money(text: str) -> Decimal:
    return Decimal(text).quantize(TWELVE, rounding=ROUND_HALF_EVEN)


def account(text: str) -> str:
    """Documented normalization: a Microsoft billing-account resource path → its account id."""
    m = re.match(r"(?i)^/providers/microsoft\.billing/billingaccounts/(?:[^/]+/billingprofiles/)?([^/]+)/?$", text.strip())
    return m.group(1) if m else text.strip()


def expected_totals(path: Path, quarantined: set[int] = frozenset()) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """(account, currency) → (billed, amortized) of the convertible rows: billed = Σ BilledCost;
    amortized = Σ EffectiveCost, a commitment purchase (Purchase with a CommitmentDiscountId)
    counting 0 (the documented double-count fix)."""
    out: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    for i, r in enumerate(delivered_rows(path), start=1):
        if i in quarantined:
            continue
        key = (account(r["BillingAccountId"]), r["BillingCurrency"].strip().upper())
        billed, effective = money(r["BilledCost"]), money(r["EffectiveCost"])
        if r["ChargeCategory"].strip().lower() == "purchase" and r.get("CommitmentDiscountId", "").strip() not in NULLS:
            effective = Decimal(0)
        b, a = out.get(key, (Decimal(0), Decimal(0)))
        out[key] = (b + billed, a + effective)
    return out


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict:
    out_dir = tmp_path_factory.mktemp("focus-native")
    return {name: convert_files([str(path)], str(out_dir / f"{name}.parquet")) for name, path in SAMPLES.items()}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_converts_without_defects(converted, name):
    result = converted[name]
    checks = result.checks
    assert checks.conformance.defects == {}, checks.conformance.summary()
    assert checks.problems == []
    for row in checks.conservation:
        assert row.billed_ok and row.amortized_ok, row
    assert checks.rows.ok and checks.rows.raw == EXPECTED_ROWS[name]
    assert checks.rows.derived == 0 and checks.rows.dropped == 0  # native rows: none added, none dropped
    assert checks.duplicate_row_ids == 0
    assert result.formats == ["focus"]
    versions = pl.read_parquet(result.out, columns=["x_SourceFormatVersion"])["x_SourceFormatVersion"].unique()
    assert all(v.startswith(f"FOCUS {EXPECTED_VERSION[name]} ") for v in versions), versions.to_list()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_totals_match_the_delivered_text(converted, name):
    result = converted[name]
    quarantined = set()
    if result.quarantine_out:
        quarantined = set(pl.read_parquet(result.quarantine_out)["x_SourceRow"].to_list())
    expected = expected_totals(SAMPLES[name], quarantined)
    df = pl.read_parquet(result.out, columns=["BillingAccountId", "BillingCurrency", "BilledCost", "EffectiveCost"])
    got = {(r[0], r[1]): (r[2], r[3]) for r in df.group_by("BillingAccountId", "BillingCurrency")
           .agg(pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum()).iter_rows()}
    assert got == expected


def test_official_sample_figures(converted):
    """The FinOps Foundation 1.0 sample: per provider, every known deviation fixed and noted."""
    df = pl.read_parquet(converted["official-1.0"].out)
    assert df.group_by("ProviderName").len().sort("ProviderName").rows() == [("AWS", 942), ("Microsoft", 51), ("Oracle", 7)]
    assert set(df["BillingAccountId"]) == {"1234567890123", "8611537", "20209880"}  # MS resource path stripped
    assert df["ChargeClass"].null_count() == 1000  # 'NULL' strings
    assert df.filter(pl.col("ProviderName") == "Oracle")["ChargeFrequency"].unique().to_list() == ["Usage-Based"]
    assert "Id" not in df.columns and df["x_Id"].n_unique() == 1000  # extra column without x_
    notes = df["x_SourceChanges"].list.join(" | ")
    assert notes.str.contains("timestamps not in FOCUS form").all()
    assert notes.str.contains("null placeholders read as null").sum() == 1000
    # Microsoft's rows: pricing quantity divided by the block size (31 rows), AZ holding a price (51)
    ms = df.filter(pl.col("ProviderName") == "Microsoft")
    assert ms["x_SourceChanges"].list.join(" ").str.contains("Microsoft divides it by the pricing block size").sum() == 31
    assert ms["AvailabilityZone"].null_count() == 51
    totals = converted["official-1.0"].checks.totals["USD"]
    assert totals == {"BilledCost": "20.520226728990", "EffectiveCost": "14.976514185860"}
    gaps = converted["official-1.0"].checks.conformance.gaps
    assert gaps["R-ResourceType-1"] == 752  # AWS's 1.0 export leaves ResourceType empty on most rows
    assert gaps["R-BillingAccountType-1"] == 14  # Oracle's 7 rows (counted by two rules)


def test_microsoft_export_figures(converted):
    df = pl.read_parquet(converted["microsoft-1.0"].out)
    assert set(df["BillingAccountId"]) == {"8611537"} and set(df["BillingAccountType"]) == {"Billing Account"}
    assert set(df["SubAccountType"]) == {"Subscription"}
    assert df["SubAccountId"].str.contains("/").sum() == 0
    assert df["PricingCurrency"].unique().to_list() == ["USD"]
    assert df["SkuMeter"].null_count() == 0  # from x_SkuMeterName
    assert df.filter(pl.col("CommitmentDiscountId").is_not_null())["PricingCategory"].unique().to_list() == ["Committed"]
    assert df["PublisherName"].null_count() == 0
    checks = converted["microsoft-1.0"].checks
    assert checks.conformance.gaps == {}
    assert checks.totals["USD"] == {"BilledCost": "193.807689048914", "EffectiveCost": "205.498553815914"}


def test_synthetic_1_3_is_kept_as_1_2_plus_x_columns(converted):
    schema = pl.read_parquet_schema(converted["synthetic-azure-1.3"].out)
    for name in ("ServiceProviderName", "HostProviderName", "ContractApplied", "AllocatedMethodId", "AllocatedTags"):
        assert name not in schema and f"x_{name}" in schema
    df = pl.read_parquet(converted["synthetic-azure-1.3"].out)
    # a conformant export: nothing to fix but the subcategory of 'Virtual Network', which Microsoft's
    # service table (and so its 1.0 export, converted here) files under Network Infrastructure
    assert df["x_SourceChanges"].null_count() == 485
    assert set(df["x_SourceChanges"].list.join(" ").drop_nulls()) == {
        "ServiceSubcategory: 'Network Connectivity' → 'Network Infrastructure' (one subcategory per ServiceName: "
        "the provider's service table)"}


def test_bad_file_gives_quarantined_rows_and_recorded_fixes(converted):
    """tiny_focus_1_2_bad.csv: 7 deliberate defects; none crashes, none is accepted silently."""
    result = converted["tiny-1.2-bad"]
    q = pl.read_parquet(result.quarantine_out).sort("x_SourceRow")
    assert q.select("x_SourceRow", "x_QuarantineReason").rows() == [
        (1, "ChargeCategory 'Refund' is not one of: Usage; Purchase; Tax; Credit; Adjustment"),
        (4, "BilledCost is empty"),
        (6, ("ServiceCategory 'Compute Services' is not one of: AI and Machine Learning; Analytics; Business "
             "Applications; Compute; Databases; Developer Tools; Multicloud; Identity; Integration; Internet of "
             "Things; Management and Governance; Media; Migration; Mobile; Networking; Security; Storage; Web; Other")),
    ]
    assert result.rows_out == 3 and result.quarantined == 3
    df = pl.read_parquet(result.out).sort("x_SourceRow")
    notes = dict(zip(df["x_SourceRow"].to_list(), df["x_SourceChanges"].to_list()))
    assert notes[2] == ["BillingCurrency: 'usd' → 'USD' (ISO 4217 upper case)"]
    assert notes[3] == [("ChargePeriodStart: timestamps not in FOCUS form YYYY-MM-DDTHH:mm:ssZ (no T/Z, no seconds "
                         "or an offset) read as UTC")]
    assert notes[5] == ["Tags: 'env=prod' is not a FOCUS key-value JSON object (R-KV-1: not JSON (Expecting value)) → null"]
    assert df["x_MyCustomCol"].to_list() == ["r2", "r3", "r5"]  # un-prefixed custom column kept as x_


def test_all_versions_in_one_conversion(tmp_path):
    """1.0, 1.2 (CSV and Parquet) and 1.3 files of four providers in one call: one FOCUS 1.2 table,
    one (category, subcategory) per ServiceName across them, every total conserved."""
    result = convert_files([str(p) for p in SAMPLES.values()], str(tmp_path / "all.parquet"))
    assert result.checks.problems == [], result.checks.problems
    assert result.rows_in == sum(EXPECTED_ROWS.values()) and result.quarantined == 3
    versions = pl.read_parquet(result.out, columns=["x_SourceFormatVersion"])["x_SourceFormatVersion"]
    assert {v.split(",")[0] for v in versions} == {"FOCUS 1.0 csv", "FOCUS 1.2 csv", "FOCUS 1.2 parquet", "FOCUS 1.3 csv"}


def test_contract_commitment_dataset_is_refused(tmp_path):
    path = NATIVE / "focus_1_3_contract_commitment_azure.csv"
    with pytest.raises(SourceFormatError, match="focus_1_3_contract_commitment_azure.csv: a FOCUS 1.3 ContractCommitment "
                                                "dataset, not a Cost and Usage dataset"):
        convert_files([str(path)], str(tmp_path / "out.parquet"))


def test_demo_delivery_through_the_landing_zone(tmp_path):
    """The embedded demo (300 rows of the official sample) lands in raw_focus and focus_costs."""
    from focus_platform.landing.zone import (
        ExportSource,
        LocalStore,
        discover_deliveries,
    )
    from focus_platform.pipeline import (
        FOCUS_TABLE,
        ingest_delivery,
        publish_focus,
    )
    from focus_platform.warehouse.delta import Warehouse

    store, source = LocalStore(SAMPLE_LANDING), ExportSource("focus-native", "focus", "focus-native")
    deliveries = discover_deliveries(store, source)
    assert list(deliveries) == ["2024-09"]
    warehouse = Warehouse(str(tmp_path / "warehouse"))
    raw = ingest_delivery(warehouse, store, source, deliveries["2024-09"])
    assert raw.rows == 300
    published = publish_focus(warehouse, source, "2024-09")
    assert published.checks.problems == [] and published.quarantine_rows == 0
    expected = expected_totals(DEMO)
    focus = warehouse.scan(FOCUS_TABLE, PartitionKey.of("2024-09", "focus-native").values()).collect()
    got = {(r[0], r[1]): (r[2], r[3]) for r in focus.group_by("BillingAccountId", "BillingCurrency")
           .agg(pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum()).iter_rows()}
    assert got == expected
    raw_cols = warehouse.scan("raw_focus").collect_schema().names()
    assert "Id" in raw_cols and "x_ReadNotes" in raw_cols  # raw keeps the columns as delivered


# ---------------------------------------------------------------------------------------------
# The official validator
# ---------------------------------------------------------------------------------------------
# Leaf rules that fail on the official 1.0 sample because the export lacks the data; each maps to
# the gap our own rules count on the same rows (None: a SHOULD rule ours does not check). Reported
# to the lead for the allow-list (kind provider-data-gap); asserted here so that nothing else fails.
PENDING_PROVIDER_GAPS = {
    "official-1.0": {
        "BillingAccountType-C-005-C": "R-BillingAccountType-1",  # Oracle's 1.0 rows: no account type known
        "ResourceType-C-005-C": "R-ResourceType-1",  # AWS's 1.0 export: ResourceType empty on 752 rows
        "SkuMeter-C-005-C": None,  # FOCUS 1.0 has no SkuMeter (SHOULD)
        "PricingUnit-C-003-O": None,  # units kept as delivered ('Lambda-GB-Seconds', 'GiB/Second-Months')
        "ConsumedUnit-C-003-O": None,
    },
}


@pytest.mark.validator
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_official_validator_passes_outside_allowlist(validator, name, tmp_path, converted):
    from focus_platform.conformance import official_validator as ov

    report = ov.run_official_validator(Path(converted[name].out), output_dir=tmp_path / "validator")
    print(report.summary_table())
    pending = PENDING_PROVIDER_GAPS.get(name, {})
    assert set(report.unexpected_failures) <= set(pending), report.summary_table()
    gaps = converted[name].checks.conformance.gaps
    for rule in report.unexpected_failures:
        if pending[rule]:
            assert gaps.get(pending[rule]), (rule, pending[rule])
    assert report.errored_rules == {}, report.summary_table()
    assert len(report.passed_leaf_rules) > 100

"""No cent lost, no unclear error — the landing side: which delivery of a billing period counts
(two copies of one period that nothing orders are refused, naming both; the documented orders are
kept), Azure streams of different periods, ``billing_currency`` in ``sources.json``, one sentence
per configuration or setting error, and discovery that isolates each source and each period.

Every layout is discovered from a local folder and from moto's S3 server.
"""

from __future__ import annotations

import json
import os
import time

import dagster as dg
import pytest

from focus_platform.defs.assets.ingest import INGEST_ASSETS
from focus_platform.defs.partitions import (
    EXPORT_SOURCE,
    FIRST_PERIOD,
    billing_periods,
    dagster_key,
    in_window,
    last_period,
    outside_window,
)
from focus_platform.defs.resources import (
    LandingZoneResource,
    WarehouseResource,
    default_resources,
)
from focus_platform.defs.sensors.ingest import delivery_sensor
from focus_platform.landing.config import SourcesFileError, load_sources
from focus_platform.landing.stores import GCSStore, open_store
from focus_platform.landing.zone import (
    DeliveryError,
    ExportSource,
    LocalStore,
    discover,
    discover_deliveries,
)
from focus_platform.periods import PartitionKey
from focus_platform.settings import SettingError
from focus_platform.warehouse.restatements import GuardPolicy
from tests.integration.conftest_objectstore import gcs, gcs_server, moto_server, s3  # noqa: F401

CSV = b"a,b\n1,2\n"
NOV = "20231101-20231201"  # legacy CUR period folder (exclusive end)
AZ_NOV = "20231101-20231130"  # Azure period folder (inclusive end)
KEPT = "refused (the published version stays)"
WHERE = ["local", "s3"]


def write_tree(root, files: dict[str, bytes | str]) -> None:
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)


def zone_store(request, tmp_path, files: dict[str, bytes | str], where: str):
    """The files as a landing zone: a local folder, or the same tree uploaded to an S3 bucket."""
    root = tmp_path / "landing"
    write_tree(root, files)
    if where == "local":
        return LocalStore(root)
    server = request.getfixturevalue("s3")
    bucket = server.new_bucket("landing")
    server.upload_tree(root, bucket, "zone")
    return open_store(f"s3://{bucket}/zone")


def legacy_cur(report_dir: str, assembly: str, names: list[str], *, current: bool = True,
               period_folder: str = NOV) -> dict[str, str | bytes]:
    """A legacy CUR assembly under ``<report_dir>/<period folder>/<assembly>/`` with its manifest
    copy, and (``current``) the period-level manifest naming it."""
    report = report_dir.rsplit("/", 1)[-1]
    manifest = json.dumps({
        "assemblyId": assembly, "reportName": report, "columns": [],
        "billingPeriod": {"start": f"{period_folder[:8]}T000000.000Z", "end": f"{period_folder[9:]}T000000.000Z"},
        "reportKeys": [f"cur-prefix/{report_dir}/{period_folder}/{assembly}/{n}" for n in names]})
    files: dict[str, str | bytes] = {f"{report_dir}/{period_folder}/{assembly}/{n}": CSV for n in names}
    files[f"{report_dir}/{period_folder}/{assembly}/{report}-Manifest.json"] = manifest
    if current:
        files[f"{report_dir}/{period_folder}/{report}-Manifest.json"] = manifest
    return files


def azure_run(export_dir: str, period_folder: str, run_id: str, submitted: str, names: list[str]) -> dict[str, str]:
    blobs = [{"blobName": f"exports/{export_dir}/{period_folder}/{run_id}/{n}", "byteCount": len(CSV)}
             for n in names]
    manifest = {"manifestVersion": "2024-04-01", "blobCount": len(blobs), "blobs": blobs,
                "runInfo": {"runId": run_id, "submittedTime": submitted,
                            "startDate": f"{period_folder[:4]}-{period_folder[4:6]}-01T00:00:00"}}
    return {f"{export_dir}/{period_folder}/{run_id}/manifest.json": json.dumps(manifest),
            **{f"{export_dir}/{period_folder}/{run_id}/{n}": CSV for n in names}}


def ambiguous(source: str, period: str, copies: list[str]) -> str:
    return (f"export source {source}, billing period {period}: delivered {len(copies)} times, in "
            f"{' and '.join(copies)}, and no manifest or run order says which one is current: ambiguous, "
            f"{KEPT}; remove the copies that are not current")


# ---------------------------------------------------------------------------------------------
# Item 7: two deliveries of one period that nothing orders
# ---------------------------------------------------------------------------------------------
OCTOBER = {"src/2023-10/october.csv": CSV}
AMBIGUOUS_LAYOUTS = {
    "month folder beside date-range folder": (
        {"src/2023-11/a.csv": CSV, f"src/{NOV}/b.csv": CSV}, ["src/2023-11", f"src/{NOV}"]),
    "BILLING_PERIOD folder beside month folder": (
        {"src/BILLING_PERIOD=2023-11/a.csv": CSV, "src/2023-11/b.csv": CSV},
        ["src/2023-11", "src/BILLING_PERIOD=2023-11"]),
    "Azure and AWS spellings of one month": (
        {f"src/{AZ_NOV}/a.csv": CSV, f"src/{NOV}/b.csv": CSV}, [f"src/{AZ_NOV}", f"src/{NOV}"]),
    "data in a period folder beside a run folder in it": (
        {f"src/{AZ_NOV}/a.csv": CSV, f"src/{AZ_NOV}/run-1/b.csv": CSV}, [f"src/{AZ_NOV}", f"src/{AZ_NOV}/run-1"]),
    "the manifests of two CUR reports": (
        {**legacy_cur("src/r1", "asm-1", ["r1-1.csv"]), **legacy_cur("src/r2", "asm-2", ["r2-1.csv"])},
        [f"src/r1/{NOV}/r1-Manifest.json", f"src/r2/{NOV}/r2-Manifest.json"]),
    "a CUR manifest beside a folder without one": (
        {**legacy_cur("src/r1", "asm-1", ["r1-1.csv"]), "src/2023-11/extra.csv": CSV},
        ["src/2023-11", f"src/r1/{NOV}/r1-Manifest.json"]),
}


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("layout", list(AMBIGUOUS_LAYOUTS))
def test_two_unordered_deliveries_of_one_period_refuse_that_period_only(request, tmp_path, layout, where):
    files, copies = AMBIGUOUS_LAYOUTS[layout]
    store = zone_store(request, tmp_path, {**files, **OCTOBER}, where)
    found = discover(store, ExportSource("src", "aws-cur", "src"))
    assert found.error is None
    assert list(found.deliveries) == ["2023-10"]  # the other period goes through
    assert list(found.refused) == ["2023-11"]
    assert str(found.refused["2023-11"]) == ambiguous("src", "2023-11", copies)
    assert found.problems == [ambiguous("src", "2023-11", copies)]
    with pytest.raises(DeliveryError, match="delivered 2 times"):
        discover_deliveries(store, ExportSource("src", "aws-cur", "src"))


@pytest.mark.parametrize("where", WHERE)
def test_a_legacy_cur_period_manifest_names_the_current_assembly(request, tmp_path, where):
    """Documented order: earlier assemblies beside the period-level manifest are superseded by it."""
    files = {**legacy_cur("src/cur", "asm-old", ["cur-1.csv", "cur-2.csv"], current=False),
             **legacy_cur("src/cur", "asm-new", ["cur-1.csv"])}
    store = zone_store(request, tmp_path, files, where)
    found = discover(store, ExportSource("src", "aws-cur", "src"))
    assert found.refused == {} and found.error is None
    delivery = found.deliveries["2023-11"]
    assert delivery.delivery_id == "asm-new" and delivery.files == [f"src/cur/{NOV}/asm-new/cur-1.csv"]


@pytest.mark.parametrize("where", WHERE)
def test_azure_runs_of_one_export_period_are_ordered_by_their_manifests(request, tmp_path, where):
    """Documented order: the runs under one period folder; the newest submittedTime wins, whatever
    the objects' times."""
    files = {**azure_run("src", AZ_NOV, "run-b", "2023-11-20T06:00:00Z", ["part_0_0001.csv"]),
             **azure_run("src", AZ_NOV, "run-a", "2023-11-02T06:00:00Z", ["part_0_0001.csv", "part_1_0001.csv"])}
    store = zone_store(request, tmp_path, files, where)
    found = discover(store, ExportSource("src", "azure-cost-details", "src"))
    assert found.refused == {} and found.error is None
    assert found.deliveries["2023-11"].delivery_id == "run-b"


def test_cur2_executions_of_one_period_are_ordered_by_their_manifests(tmp_path):
    """Documented order: an export creating new files writes one manifest per execution under the
    period's metadata folder; the newest manifest wins."""
    files = {}
    for execution in ("exec-1", "exec-2"):
        files[f"src/exp/data/BILLING_PERIOD=2023-11/{execution}/exp-00001.csv.gz"] = CSV
        files[f"src/exp/metadata/BILLING_PERIOD=2023-11/{execution}/exp-Manifest.json"] = json.dumps({
            "executionId": execution, "billingPeriod": {"start": "2023-11-01T00:00:00.000Z"},
            "dataFiles": [f"s3://bucket/src/exp/data/BILLING_PERIOD=2023-11/{execution}/exp-00001.csv.gz"]})
    store = zone_store(None, tmp_path, files, "local")
    older = tmp_path / "landing/src/exp/metadata/BILLING_PERIOD=2023-11/exec-2/exp-Manifest.json"
    os.utime(older, (time.time() - 3600, time.time() - 3600))
    found = discover(store, ExportSource("src", "aws-cur", "src"))
    assert found.refused == {} and found.error is None
    assert found.deliveries["2023-11"].delivery_id == "exec-1"


# ---------------------------------------------------------------------------------------------
# Item 9: Azure streams of different periods
# ---------------------------------------------------------------------------------------------
AZURE = ExportSource("azure-ea", "azure-cost-details", "azure", ("actual", "amortized"))


@pytest.mark.parametrize("where", WHERE)
def test_a_period_in_one_stream_only_is_refused_naming_each_streams_periods(request, tmp_path, where):
    files = {**azure_run("azure/actual", AZ_NOV, "run-a", "2023-11-20T06:00:00Z", ["part_0_0001.csv"]),
             **azure_run("azure/amortized", "20231201-20231231", "run-m", "2023-12-20T06:00:00Z",
                         ["part_0_0001.csv"])}
    found = discover(zone_store(request, tmp_path, files, where), AZURE)
    assert found.deliveries == {} and found.error is None
    assert str(found.refused["2023-11"]) == (
        f"export source azure-ea, billing period 2023-11: the actual export (azure/actual/{AZ_NOV}) delivered it but "
        "not the amortized export (azure/amortized/ holds 2023-12): a delivery needs every stream (actual, "
        f"amortized); {KEPT} until it lands")
    assert str(found.refused["2023-12"]) == (
        "export source azure-ea, billing period 2023-12: the amortized export (azure/amortized/20231201-20231231) "
        "delivered it but not the actual export (azure/actual/ holds 2023-11): a delivery needs every stream "
        f"(actual, amortized); {KEPT} until it lands")


@pytest.mark.parametrize("where", WHERE)
def test_streams_whose_period_folders_cover_different_dates_are_not_paired(request, tmp_path, where):
    files = {**azure_run("azure/actual", AZ_NOV, "run-a", "2023-11-20T06:00:00Z", ["part_0_0001.csv"]),
             **azure_run("azure/amortized", "20231101-20231115", "run-m", "2023-11-16T06:00:00Z",
                         ["part_0_0001.csv"])}
    found = discover(zone_store(request, tmp_path, files, where), AZURE)
    assert found.deliveries == {}
    assert str(found.refused["2023-11"]) == (
        "export source azure-ea, billing period 2023-11: the streams' folders cover different dates "
        f"(actual: azure/actual/{AZ_NOV} and amortized: azure/amortized/20231101-20231115): not paired; {KEPT}")


def test_streams_in_other_spellings_of_the_same_month_are_paired(tmp_path):
    files = {**azure_run("azure/actual", AZ_NOV, "run-a", "2023-11-20T06:00:00Z", ["part_0_0001.csv"]),
             "azure/amortized/2023-11/part_0_0001.csv": CSV}
    found = discover(zone_store(None, tmp_path, files, "local"), AZURE)
    assert found.refused == {} and list(found.deliveries) == ["2023-11"]
    assert set(found.deliveries["2023-11"].stream_of.values()) == {"actual", "amortized"}


@pytest.mark.parametrize("where", WHERE)
def test_a_file_outside_the_stream_folders_refuses_the_source(request, tmp_path, where):
    files = {**azure_run("azure/actual", AZ_NOV, "run-a", "2023-11-20T06:00:00Z", ["part_0_0001.csv"]),
             "azure/amortized/2023-11/part_0_0001.csv": CSV, f"azure/{AZ_NOV}/part_0_0001.csv": CSV}
    found = discover(zone_store(request, tmp_path, files, where), AZURE)
    assert found.deliveries == {} and found.refused == {}
    assert str(found.error) == (
        f"export source azure-ea (azure/): azure/{AZ_NOV}/part_0_0001.csv is outside the export streams' folders "
        "(azure/actual/, azure/amortized/): a stray file (move it into its stream's folder or remove it); the "
        f"whole source is {KEPT}")


# ---------------------------------------------------------------------------------------------
# Item 11: one source's or one period's problem stays its own
# ---------------------------------------------------------------------------------------------
SOURCES = {"sources": [
    {"name": "good", "format": "aws-cur", "location": "good"},
    {"name": "stray", "format": "aws-cur", "location": "stray"},
    {"name": "broken", "format": "aws-cur", "location": "broken"},
    {"name": "azure-ea", "format": "azure-cost-details", "location": "azure", "streams": ["actual", "amortized"]},
]}


def _bad_zone() -> dict[str, str | bytes]:
    broken = legacy_cur("broken/cur", "asm-1", ["cur-1.csv", "cur-2.csv"])
    del broken[f"broken/cur/{NOV}/asm-1/cur-2.csv"]  # the manifest names a missing file
    return {"sources.json": json.dumps(SOURCES), "good/2023-11/a.csv": CSV, "stray/2023-11/a.csv": CSV,
            "stray/report.csv": CSV, **broken, "broken/2023-10/october.csv": CSV,
            **azure_run("azure/actual", AZ_NOV, "run-a", "2023-11-20T06:00:00Z", ["part_0_0001.csv"])}


@pytest.mark.parametrize("where", WHERE)
def test_discovery_isolates_each_source_and_each_period(request, tmp_path, where):
    store = zone_store(request, tmp_path, _bad_zone(), where)
    if where == "s3":  # a key escaping its prefix, inside a period folder of the good source
        store._client.put_object(Bucket=store.bucket, Key="zone/good/2023-12/../../../outside.csv", Body=CSV)
    zone = LandingZoneResource(root=str(store.root))
    found = {d.source.name: d for d in zone.discover_all()}
    assert list(found) == ["good", "stray", "broken", "azure-ea"]

    assert list(found["good"].deliveries) == ["2023-11"] and found["good"].error is None
    if where == "s3":
        assert str(found["good"].refused["2023-12"]) == (
            "export source good, billing period 2023-12: object key 'good/2023-12/../../../outside.csv' escapes its "
            f"prefix ('..', '.' or a leading '/'): the delivery is {KEPT}")
    assert str(found["stray"].error) == (
        "export source stray (stray/): stray/report.csv is not in a billing-period folder (yyyymmdd-yyyymmdd, "
        "BILLING_PERIOD=YYYY-MM or YYYY-MM): a stray file (move it into its period's folder or remove it); the whole "
        f"source is {KEPT}")
    assert found["stray"].deliveries == {}
    broken = found["broken"]
    assert list(broken.deliveries) == ["2023-10"] and list(broken.refused) == ["2023-11"]
    message = str(broken.refused["2023-11"])
    assert message.startswith(f"export source broken, billing period 2023-11: manifest broken/cur/{NOV}/cur-Manifest.json")
    assert message.endswith(f"data file 'cur-prefix/broken/cur/{NOV}/asm-1/cur-2.csv' is not in the landing zone; "
                            f"the delivery is {KEPT}")
    assert list(found["azure-ea"].refused) == ["2023-11"]
    assert "not the amortized export (azure/amortized/ holds no billing period)" in str(
        found["azure-ea"].refused["2023-11"])

    # the sensor: runs for what is whole, every refusal reported, cursor entries of refused ones untouched
    instance = dg.DagsterInstance.ephemeral()
    result = delivery_sensor(dg.build_sensor_context(instance=instance, resources={"landing_zone": zone}))
    assert sorted(r.partition_key for r in result.run_requests) == [
        dagster_key(PartitionKey.of("2023-10", "broken")), dagster_key(PartitionKey.of("2023-11", "good"))]
    assert sorted(json.loads(result.cursor)) == ["2023-10|broken", "2023-11|good"]
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["good", "stray", "broken", "azure-ea"])
    idle = delivery_sensor(dg.build_sensor_context(instance=instance, resources={"landing_zone": zone},
                                                   cursor=result.cursor))
    skip = idle.skip_reason.skip_message
    assert skip.startswith(f"no new or changed deliveries; {4 if where == 's3' else 3} refused: ")
    assert "export source stray (stray/): stray/report.csv is not in a billing-period folder" in skip
    assert "export source broken, billing period 2023-11: manifest" in skip


@pytest.mark.parametrize("where", WHERE)
def test_a_manifest_of_unexpected_shape_refuses_its_period_only(request, tmp_path, where):
    files = azure_run("src", AZ_NOV, "run-a", "2023-11-20T06:00:00Z", ["part_0_0001.csv"])
    manifest = json.loads(files[f"src/{AZ_NOV}/run-a/manifest.json"])
    files[f"src/{AZ_NOV}/run-a/manifest.json"] = json.dumps({**manifest, "blobCount": "many"})
    store = zone_store(request, tmp_path, {**files, **OCTOBER}, where)
    found = discover(store, ExportSource("src", "azure-cost-details", "src"))
    assert list(found.deliveries) == ["2023-10"] and found.error is None
    assert str(found.refused["2023-11"]) == (
        f"export source src, billing period 2023-11: manifest src/{AZ_NOV}/run-a/manifest.json: unexpected content "
        f"(ValueError: invalid literal for int() with base 10: 'many'); the delivery is {KEPT}")


def test_a_store_that_cannot_be_listed_refuses_its_sources_only(request, tmp_path):
    request.getfixturevalue("s3")  # moto's S3 server, without the bucket
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps({"sources": [{"name": "a", "format": "aws-cur", "location": "a"}]}))
    zone = LandingZoneResource(root="s3://no-such-bucket/zone", sources_file=str(sources))
    (found,) = zone.discover_all()
    assert str(found.error).startswith("export source a (a/): s3://no-such-bucket/zone/a: cannot be listed (")
    assert "NoSuchBucket" in str(found.error)


# ---------------------------------------------------------------------------------------------
# Items 10 and 11: sources.json
# ---------------------------------------------------------------------------------------------
def _sources_file(tmp_path, text: str) -> str:
    path = tmp_path / "sources.json"
    path.write_text(text)
    return str(path)


def test_billing_currency_is_declared_per_source(tmp_path):
    path = _sources_file(tmp_path, json.dumps({"sources": [
        {"name": "oci", "format": "oci-cost", "location": "oci", "billing_currency": "EUR"},
        {"name": "aws", "format": "aws-cur"}]}))
    oci, aws = load_sources(str(tmp_path), path)
    assert oci.billing_currency == "EUR" and aws.billing_currency is None and aws.location == "aws"


@pytest.mark.parametrize("value", ["usd", "EURO", "XYZ", ""])
def test_a_billing_currency_that_is_not_iso_4217_is_refused_naming_file_source_and_value(tmp_path, value):
    path = _sources_file(tmp_path, json.dumps({"sources": [
        {"name": "aws", "format": "aws-cur"},
        {"name": "oci", "format": "oci-cost", "billing_currency": value}]}))
    with pytest.raises(SourcesFileError) as err:
        load_sources(str(tmp_path), path)
    assert str(err.value) == (
        f"{path}: sources[1] (oci): export source oci: billing_currency {value!r} is not an ISO 4217 currency code "
        "(three capital letters, e.g. USD, EUR, JPY)")


BAD_SOURCES = {
    "truncated": ('{"sources": [{"name": "a", "format": "aws-cur"', "not valid JSON (line 1, column 47): "
                  "Expecting ',' delimiter"),
    "not an object": ('["a"]', 'expected an object {"sources": [...]}, found a list'),
    "no sources key": ('{"source": []}', 'no "sources" key at the top level (found: source)'),
    "sources not a list": ('{"sources": {"name": "a"}}', '"sources" must be a list, not an object'),
    "entry not an object": ('{"sources": ["aws"]}', 'sources[0] is a string, not an object with "name" and "format"'),
    "missing name": ('{"sources": [{"format": "aws-cur"}]}', "sources[0]: missing 'name'"),
    "missing format": ('{"sources": [{"name": "a"}]}', "sources[0] (a): missing 'format'"),
    "wrong type": ('{"sources": [{"name": "a", "format": "aws-cur", "location": 5}]}',
                   "sources[0] (a): location must be a string, not a number"),
    "streams not a list": ('{"sources": [{"name": "a", "format": "aws-cur", "streams": "actual"}]}',
                           "sources[0] (a): streams must be a list of folder names, not a string"),
    "unknown format": ('{"sources": [{"name": "a", "format": "aws"}]}', "sources[0] (a): unknown format 'aws'; known: "),
    "unknown key": ('{"sources": [{"name": "a", "format": "aws-cur", "billing_curency": "EUR"}]}',
                    "sources[0] (a): unknown key 'billing_curency'; known: name, format, location, streams, "
                    "billing_currency"),
    "escaping location": ('{"sources": [{"name": "a", "format": "aws-cur", "location": "../elsewhere"}]}',
                          "sources[0] (a): export source a: location '../elsewhere' must be a folder under the "
                          "landing root (no '..', '.' or leading '/')"),
    "duplicate name": ('{"sources": [{"name": "a", "format": "aws-cur"}, {"name": "a", "format": "focus"}]}',
                       "sources[1]: export source name 'a' is already used by sources[0]; names must be unique"),
    "nested location": ('{"sources": [{"name": "a", "format": "aws-cur", "location": "azure"}, '
                        '{"name": "b", "format": "aws-cur", "location": "azure/ea"}]}',
                        "sources[1] (b): location 'azure/ea' overlaps the location 'azure' of sources[0] (a): their "
                        "objects would be read by both sources (counted twice); give each source a folder of its own"),
    "same location": ('{"sources": [{"name": "a", "format": "aws-cur"}, '
                      '{"name": "b", "format": "focus", "location": "a"}]}',
                      "sources[1] (b): location 'a' overlaps the location 'a' of sources[0] (a)"),
}


@pytest.mark.parametrize("case", list(BAD_SOURCES))
def test_a_bad_sources_file_is_one_sentence_naming_the_file_and_the_entry(tmp_path, case):
    text, expected = BAD_SOURCES[case]
    path = _sources_file(tmp_path, text)
    with pytest.raises(SourcesFileError) as err:
        load_sources(str(tmp_path), path)
    assert str(err.value).startswith(f"{path}: {expected}")
    assert "\n" not in str(err.value)


def test_a_missing_sources_file_names_it(tmp_path):
    with pytest.raises(SourcesFileError, match=r"sources.json: no export sources configured \(the file does not"):
        LandingZoneResource(root=str(tmp_path)).sources()


# ---------------------------------------------------------------------------------------------
# Item 11: settings
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("abc", "FOCUS_MAX_DROP_SHARE='abc': not a number; allowed: 0 to 1"),
    ("5", "FOCUS_MAX_DROP_SHARE='5': out of range; allowed: 0 to 1"),
    ("-0.1", "FOCUS_MAX_DROP_SHARE='-0.1': out of range; allowed: 0 to 1"),
    ("nan", "FOCUS_MAX_DROP_SHARE='nan': out of range; allowed: 0 to 1"),
])
def test_max_drop_share_outside_0_to_1_is_refused_on_load(monkeypatch, value, expected):
    monkeypatch.setenv("FOCUS_MAX_DROP_SHARE", value)
    with pytest.raises(SettingError) as err:
        default_resources()
    assert str(err.value) == expected


def test_settings_within_their_range_are_taken(monkeypatch, tmp_path):
    monkeypatch.setenv("FOCUS_MAX_DROP_SHARE", "0.25")
    monkeypatch.setenv("FOCUS_LANDING_ROOT", str(tmp_path))
    monkeypatch.setenv("FOCUS_WAREHOUSE_ROOT", "s3://bucket/warehouse")
    resources = default_resources()
    assert resources["warehouse"].max_drop_share == 0.25 and resources["warehouse"].root == "s3://bucket/warehouse"
    assert resources["landing_zone"].root == str(tmp_path)


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("FOCUS_LANDING_ROOT", "ftp://host/landing", "FOCUS_LANDING_ROOT='ftp://host/landing': unsupported scheme "
                                                  "ftp://; allowed: a folder, s3://bucket/prefix, gs://bucket/prefix"),
    ("FOCUS_WAREHOUSE_ROOT", "abfss://c@acct/wh", "FOCUS_WAREHOUSE_ROOT='abfss://c@acct/wh': unsupported scheme "
                                                  "abfss://; allowed: a folder, s3://bucket/prefix, gs://bucket/prefix"),
    ("FOCUS_WAREHOUSE_ROOT", "s3://", "FOCUS_WAREHOUSE_ROOT='s3://': no bucket; allowed: a folder, "
                                      "s3://bucket/prefix, gs://bucket/prefix"),
])
def test_a_root_of_another_scheme_is_refused_naming_the_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingError) as err:
        default_resources()
    assert str(err.value) == expected


def test_resource_fields_are_checked_where_they_are_used(tmp_path):
    with pytest.raises(ValueError, match=r"^page_size=0: not a whole number of objects per listing request; "
                                         r"allowed: 1 to 1000$"):
        LandingZoneResource(root=str(tmp_path), page_size=0).store()
    with pytest.raises(SettingError, match=r"^landing_zone root='azure://x': unsupported scheme azure://"):
        LandingZoneResource(root="azure://x").store()
    with pytest.raises(SettingError, match=r"^warehouse root='hdfs://nn/wh': unsupported scheme hdfs://"):
        WarehouseResource(root="hdfs://nn/wh").warehouse()
    for share in (5, -1, float("nan")):
        with pytest.raises(ValueError, match=rf"^max_drop_share={share!r}: not a number from 0 to 1; allowed: 0 to 1"):
            GuardPolicy(share)
    assert GuardPolicy(0).max_drop_share == 0 and GuardPolicy(1.0).max_drop_share == 1.0


# ---------------------------------------------------------------------------------------------
# Through Dagster: an ambiguous period fails its run with the refusal; the other period publishes
# ---------------------------------------------------------------------------------------------
def test_raw_exports_refuses_an_ambiguous_period_and_publishes_the_other(landing, cur, h, tmp_path):
    landing.add_source("aws-a")
    landing.plain_delivery("aws-a", "2023-10", {"october.csv": cur.subset([0, 1]).csv_bytes()})
    landing.plain_delivery("aws-a", "2023-11", {"november.csv": cur.subset([2, 3]).csv_bytes()})
    write_tree(landing.root, {f"aws-a/{NOV}/november.csv": cur.subset([2, 3]).csv_bytes()})  # the same month again
    resources = {"landing_zone": LandingZoneResource(root=str(landing.root)),
                 "warehouse": WarehouseResource(root=str(tmp_path / "warehouse"))}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["aws-a"])
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

    def run(period):
        return dg.materialize(INGEST_ASSETS, partition_key=dagster_key(PartitionKey.of(period, "aws-a")), instance=instance,
                              resources=resources, raise_on_error=False, run_config=quiet)

    assert run("2023-10").success
    november = run("2023-11")
    assert not november.success
    checks = [e.event_specific_data for e in november.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert [(c.check_name, c.passed) for c in checks] == [("delivery_accepted", False)]
    assert checks[0].metadata["refused"].value == ambiguous("aws-a", "2023-11", ["aws-a/2023-11", f"aws-a/{NOV}"])
    published = resources["warehouse"].warehouse().scan(h.FOCUS_TABLE).collect()
    assert set(published["x_BillingPeriod"]) == {"2023-10"}
    assert h.billed_by_currency(published) == cur.invoice_basis([0, 1])


# ---------------------------------------------------------------------------------------------
# A file inside a delivery that would be left unread refuses its period (a ZIP lost 50 of 300 rows)
# ---------------------------------------------------------------------------------------------
UNREAD = ("would be left unread: not a data file (.csv, .csv.gz, .parquet, .gz, .jsonl, .jsonl.gz, .ndjson) nor a "
          "manifest (<report>-Manifest.json, manifest.json); ZIP and other archives are not read (a legacy CUR "
          "delivered as ZIP: unzip it in place)")
UNREAD_LAYOUTS = {  # files, the file left unread
    "month folder": ({"src/2023-11/a.csv": CSV, "src/2023-11/b.csv.zip": b"PK"}, "src/2023-11/b.csv.zip"),
    "Azure run folder": ({**azure_run("src", AZ_NOV, "run-a", "2023-11-20T06:00:00Z", ["part_0_0001.csv"]),
                          f"src/{AZ_NOV}/run-a/part_1_0001.xlsx": b"x"}, f"src/{AZ_NOV}/run-a/part_1_0001.xlsx"),
    "legacy CUR assembly delivered as ZIP": (
        {**legacy_cur("src/cur", "asm-1", ["cur-1.csv"]), f"src/cur/{NOV}/asm-1/cur-2.csv.zip": b"PK"},
        f"src/cur/{NOV}/asm-1/cur-2.csv.zip"),
    "CUR 2.0 data folder": ({"src/exp/data/BILLING_PERIOD=2023-11/exp-00001.csv.gz": CSV,
                             "src/exp/data/BILLING_PERIOD=2023-11/exp-00002.csv.bz2": b"BZ"},
                            "src/exp/data/BILLING_PERIOD=2023-11/exp-00002.csv.bz2"),
}


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("layout", list(UNREAD_LAYOUTS))
def test_a_file_left_unread_in_a_delivery_refuses_that_period_naming_it(request, tmp_path, layout, where):
    files, unread = UNREAD_LAYOUTS[layout]
    found = discover(zone_store(request, tmp_path, {**files, **OCTOBER}, where), ExportSource("src", "aws-cur", "src"))
    assert found.error is None and list(found.deliveries) == ["2023-10"]
    assert found.problems == [f"export source src, billing period 2023-11: {unread} {UNREAD}: the delivery is {KEPT}"]


@pytest.mark.parametrize("where", WHERE)
def test_a_file_left_unread_in_a_stream_folder_refuses_that_period(request, tmp_path, where):
    files = {**azure_run("azure/actual", AZ_NOV, "run-a", "2023-11-20T06:00:00Z", ["part_0_0001.csv"]),
             "azure/amortized/2023-11/part_0_0001.csv": CSV, "azure/amortized/2023-11/part_1_0001.csv.zip": b"PK"}
    found = discover(zone_store(request, tmp_path, files, where), AZURE)
    assert found.deliveries == {} and found.error is None
    assert found.problems == [f"export source azure-ea, billing period 2023-11: stream amortized: "
                              f"azure/amortized/2023-11/part_1_0001.csv.zip {UNREAD}: the delivery is {KEPT}"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("source", "files", "stray"), [
    (ExportSource("src", "oci-cost", "src"), {"src/2023-10/a.csv": CSV, "src/report.csv.zip": b"PK"},
     "src/report.csv.zip"),
    (AZURE, {"azure/actual/2023-10/a.csv": CSV, "azure/amortized/2023-10/a.csv": CSV, "azure/export.zip": b"PK"},
     "azure/export.zip"),
])
def test_an_archive_outside_every_period_folder_refuses_the_source(request, tmp_path, where, source, files, stray):
    found = discover(zone_store(request, tmp_path, files, where), source)
    assert found.deliveries == {} and found.refused == {}
    assert str(found.error).startswith(f"export source {source.name} ({source.location}/): {stray} ")
    assert str(found.error).endswith(f"; the whole source is {KEPT}")


@pytest.mark.parametrize("where", WHERE)
def test_hidden_files_notes_and_provider_companions_are_left_alone(request, tmp_path, where):
    """Hidden files are ignored everywhere (even ``._a.csv``, a macOS copy); outside every period folder
    a note, the generators' expected totals and AWS's access test object are no delivery; the Redshift
    files of a legacy CUR sit beside its manifest."""
    files = {**legacy_cur("src/cur", "asm-1", ["cur-1.csv"]),
             f"src/cur/{NOV}/cur-RedshiftManifest.json": "{}", f"src/cur/{NOV}/asm-1/cur-RedshiftCommands.sql": "",
             f"src/cur/{NOV}/.DS_Store": b"\0", f"src/cur/{NOV}/asm-1/._cur-1.csv": b"\0\5",
             "src/2023-10/october.csv": CSV, "src/2023-10/.~lock.october.csv#": b"", "src/.hidden.zip": b"PK",
             "src/README.md": "notes", "src/expected_totals.json": "{}", "src/aws-programmatic-access-test-object": ""}
    found = discover(zone_store(request, tmp_path, files, where), ExportSource("src", "aws-cur", "src"))
    assert found.problems == [] and sorted(found.deliveries) == ["2023-10", "2023-11"]
    assert found.deliveries["2023-11"].files == [f"src/cur/{NOV}/asm-1/cur-1.csv"]
    assert found.deliveries["2023-10"].files == ["src/2023-10/october.csv"]


# ---------------------------------------------------------------------------------------------
# Billing periods: a month that does not exist; the partition window
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", WHERE)
def test_a_folder_named_for_a_month_that_does_not_exist_is_refused_naming_it(request, tmp_path, where):
    files = {"src/2023-13/a.csv": CSV, "src/2023-00/a.csv": CSV, "src/20231301-20240101/a.csv": CSV, **OCTOBER}
    found = discover(zone_store(request, tmp_path, files, where), ExportSource("src", "aws-cur", "src"))
    assert found.error is None and list(found.deliveries) == ["2023-10"]
    assert found.problems == [
        "export source src, billing period 2023-00: src/2023-00: named for month 00, which does not exist (months "
        "are 01 to 12): not a billing period, refused; rename the folder",
        "export source src, billing period 2023-13: src/2023-13 and src/20231301-20240101: named for month 13, "
        "which does not exist (months are 01 to 12): not a billing period, refused; rename the folder"]


def test_the_billing_period_window_is_one_definition():
    assert billing_periods.get_first_partition_key() == FIRST_PERIOD == "2017-01"
    assert last_period() == billing_periods.get_last_partition_key() == time.strftime("%Y-%m", time.gmtime())
    assert in_window("2017-01") and in_window("2017-06") and in_window(last_period())
    for period in ("2016-12", "1969-12", "2099-01", "2023-13", "2023-00", "2023-1", "latest"):
        assert not in_window(period)
    assert outside_window("2099-01") == (
        f"2099-01 is outside the billing-period window 2017-01 to {last_period()} (the current month; retention "
        "FOCUS_RETENTION): no partition holds it, so it is not loaded; check the folder's name or the retention policy")


@pytest.mark.parametrize("where", WHERE)
def test_the_delivery_sensor_refuses_periods_outside_the_window_and_runs_the_others(request, tmp_path, where):
    files = {"sources.json": json.dumps({"sources": [{"name": "src", "format": "aws-cur", "location": "src"}]}),
             "src/2016-12/a.csv": CSV, "src/2099-01/a.csv": CSV, "src/2023-13/a.csv": CSV, **OCTOBER}
    store = zone_store(request, tmp_path, files, where)
    zone = LandingZoneResource(root=str(store.root))
    instance = dg.DagsterInstance.ephemeral()
    result = delivery_sensor(dg.build_sensor_context(instance=instance, resources={"landing_zone": zone}))
    assert [r.partition_key for r in result.run_requests] == [dagster_key(PartitionKey.of("2023-10", "src"))]
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["src"])
    idle = delivery_sensor(dg.build_sensor_context(instance=instance, resources={"landing_zone": zone},
                                                   cursor=result.cursor))
    skip = idle.skip_reason.skip_message
    assert skip.startswith("no new or changed deliveries; 3 refused: ")
    assert "export source src, billing period 2023-13: src/2023-13: named for month 13" in skip
    for period in ("2016-12", "2099-01"):
        assert f"export source src, billing period {outside_window(period)}" in skip


# ---------------------------------------------------------------------------------------------
# Symbolic links in a local landing zone: followed under the root, refused otherwise
# ---------------------------------------------------------------------------------------------
def test_a_period_folder_that_is_a_link_under_the_root_is_read_through_it(tmp_path):
    root = tmp_path / "landing"
    write_tree(root, {"archive/2023-11/a.csv": CSV, "archive/2023-11/b.csv": CSV, **OCTOBER})
    (root / "src/2023-11").symlink_to(root / "archive/2023-11")
    store = LocalStore(root)
    found = discover(store, ExportSource("src", "aws-cur", "src"))
    assert found.problems == [] and sorted(found.deliveries) == ["2023-10", "2023-11"]
    assert found.deliveries["2023-11"].files == ["src/2023-11/a.csv", "src/2023-11/b.csv"]
    assert store.read_bytes("src/2023-11/a.csv") == CSV


@pytest.mark.parametrize(("link", "target", "expected"), [
    ("src/2023-11", "{outside}/2023-11", "src/2023-11 is a symbolic link to {outside}/2023-11, outside the landing "
                                         "zone root {root}: not read (move or copy it under the root)"),
    ("src/2023-11/b.csv", "{outside}/2023-11/b.csv", "src/2023-11/b.csv is a symbolic link to {outside}/2023-11/b.csv, "
                                                     "outside the landing zone root {root}: not read (move or copy it "
                                                     "under the root)"),
    ("src/2023-11/again", "..", "src/2023-11/again is a symbolic link to .., a folder holding it (a loop): not followed"),
    ("src/2023-11/run-1", "{root}", "src/2023-11/run-1 is a symbolic link to {root}, a folder holding it (a loop): "
                                    "not followed"),
    ("src/2023-11/b.csv", "gone.csv", "src/2023-11/b.csv is a symbolic link to gone.csv, which does not exist (a "
                                      "dangling link, or links pointing at each other)"),
    ("src/2023-11/b.csv", "b.csv", "src/2023-11/b.csv is a symbolic link to b.csv, which does not exist (a "
                                   "dangling link, or links pointing at each other)"),
])
def test_a_link_that_cannot_be_followed_refuses_its_period(tmp_path, link, target, expected):
    root, outside = tmp_path / "landing", tmp_path / "outside"
    write_tree(outside, {"2023-11/a.csv": CSV, "2023-11/b.csv": CSV})
    write_tree(root, {"src/2023-11/a.csv": CSV, **OCTOBER} if link != "src/2023-11" else OCTOBER)
    (root / link).symlink_to(target.format(outside=outside, root=root))
    found = discover(LocalStore(root), ExportSource("src", "aws-cur", "src"))
    assert found.error is None and list(found.deliveries) == ["2023-10"]
    assert found.problems == [f"export source src, billing period 2023-11: "
                              f"{expected.format(outside=outside, root=root.resolve())}: the delivery is {KEPT}"]


def test_a_link_leaving_the_root_outside_every_period_folder_refuses_the_source(tmp_path):
    root = tmp_path / "landing"
    write_tree(root, OCTOBER)
    (tmp_path / "outside").mkdir()
    (root / "src/older").symlink_to(tmp_path / "outside")
    found = discover(LocalStore(root), ExportSource("src", "aws-cur", "src"))
    assert found.deliveries == {}
    assert str(found.error) == (
        f"export source src (src/): src/older is a symbolic link to {tmp_path}/outside, outside the landing zone root "
        f"{root.resolve()}: not read (move or copy it under the root); the whole source is {KEPT}")


# ---------------------------------------------------------------------------------------------
# A root that starts like a URL but is not one; a source location that does not exist
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("variable", "value"), [
    ("FOCUS_WAREHOUSE_ROOT", "s3:/bucket/warehouse"), ("FOCUS_LANDING_ROOT", "s3:/bucket"),
    ("FOCUS_LANDING_ROOT", "gs:bucket/zone"), ("FOCUS_WAREHOUSE_ROOT", "file:/tmp/wh"),
])
def test_a_root_that_starts_like_a_url_but_is_not_one_is_refused(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingError) as err:
        default_resources()
    scheme = value.split(":", 1)[0]
    assert str(err.value) == (
        f"{variable}={value!r}: starts like a URL ({scheme}:) without '//' after the scheme; allowed: a folder, "
        f"s3://bucket/prefix, gs://bucket/prefix (a local folder whose name holds ':': ./{value})")


def test_a_resource_root_that_starts_like_a_url_is_refused_naming_the_field(tmp_path):
    with pytest.raises(SettingError, match=r"^landing_zone root='s3:/bucket': starts like a URL \(s3:\) without"):
        LandingZoneResource(root="s3:/bucket").store()
    with pytest.raises(SettingError, match=r"^warehouse root='gs:/b/wh': starts like a URL \(gs:\) without"):
        WarehouseResource(root="gs:/b/wh").warehouse()
    assert LandingZoneResource(root=str(tmp_path)).store().root == tmp_path.resolve()  # a folder: taken


LOCATIONS = {"sources": [{"name": "oci", "format": "oci-cost", "location": "Oci"},
                         {"name": "empty", "format": "oci-cost", "location": "empty"},
                         {"name": "good", "format": "oci-cost", "location": "good"}]}


@pytest.mark.parametrize("where", WHERE)
def test_a_missing_location_refuses_its_source_and_an_empty_one_is_a_note(request, tmp_path, where):
    files = {"sources.json": json.dumps(LOCATIONS), "oci/2023-10/a.csv": CSV, "good/2023-10/a.csv": CSV}
    store = zone_store(request, tmp_path, files, where)
    if where == "local":
        (tmp_path / "landing/empty").mkdir()
    else:  # an empty "folder" in a bucket: the console's placeholder object
        store._client.put_object(Bucket=store.bucket, Key="zone/empty/", Body=b"")
    found = {d.source.name: d for d in LandingZoneResource(root=str(store.root)).discover_all()}
    assert str(found["oci"].error) == (
        f"export source oci (Oci/): location Oci does not exist under {store.root_uri} (names are case-sensitive: "
        f"check sources.json); the whole source is {KEPT}")
    assert found["oci"].note is None
    assert found["empty"].error is None and found["empty"].problems == []
    assert found["empty"].note == "export source empty (empty/): no deliveries yet (the location is empty)"
    assert list(found["good"].deliveries) == ["2023-10"] and found["good"].note is None


def test_a_missing_location_on_gcs_is_told_from_an_empty_one(gcs):  # noqa: F811
    bucket = gcs.new_bucket("landing")
    gcs.client().bucket(bucket).blob("zone/empty/").upload_from_string(b"")
    gcs.client().bucket(bucket).blob("zone/good/2023-10/a.csv").upload_from_string(CSV)
    store = open_store(f"gs://{bucket}/zone")
    assert isinstance(store, GCSStore)
    assert store.folder_exists("empty") and store.folder_exists("good") and not store.folder_exists("Good")
    assert discover(store, ExportSource("empty", "oci-cost", "empty")).note is not None
    assert str(discover(store, ExportSource("good", "oci-cost", "Good")).error).startswith(
        f"export source good (Good/): location Good does not exist under gs://{bucket}/zone (")

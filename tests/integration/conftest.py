"""Fixtures of the integration tests: small CUR files, a temporary landing zone, warehouse, Dagster.

Everything is built in tmp dirs from ``tests/fixtures/aws/cur_legacy_small.csv`` (10 rows of the
focus_converters sample, see its README). Expected totals are computed here independently of the
package: plain ``csv`` + ``Decimal`` over the delivered text.
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import shutil
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from focus_platform.landing.zone import ExportSource, LocalStore, discover_deliveries
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import (
    FOCUS_TABLE,
    QUARANTINE_TABLE,
    ingest_delivery,
    publish_focus,
)
from focus_platform.warehouse.delta import Warehouse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aws"
SMALL_CUR = FIXTURES / "cur_legacy_small.csv"
PERIOD = "2023-11"
PAYER = "123412340534"
COST = "lineItem/UnblendedCost"


# ---------------------------------------------------------------------------------------------
# CUR text as rows
# ---------------------------------------------------------------------------------------------
@dataclass
class CurTable:
    """A legacy CUR CSV as header + rows of strings (what the provider delivered)."""

    header: list[str]
    rows: list[list[str]]

    def col(self, name: str) -> int:
        return self.header.index(name)

    def copy(self) -> CurTable:
        return CurTable(list(self.header), copy.deepcopy(self.rows))

    def set(self, row: int, column: str, value: str) -> CurTable:
        """Set a value of data row ``row`` (0-based) and return self."""
        self.rows[row][self.col(column)] = value
        return self

    def values(self, column: str) -> list[str]:
        return [r[self.col(column)] for r in self.rows]

    def drop_column(self, column: str) -> CurTable:
        i = self.col(column)
        return CurTable(self.header[:i] + self.header[i + 1:], [r[:i] + r[i + 1:] for r in self.rows])

    def move_first(self, column: str) -> CurTable:
        i = self.col(column)
        return CurTable([self.header[i]] + self.header[:i] + self.header[i + 1:],
                        [[r[i]] + r[:i] + r[i + 1:] for r in self.rows])

    def subset(self, rows: list[int]) -> CurTable:
        return CurTable(list(self.header), [list(self.rows[i]) for i in rows])

    def csv_bytes(self, *, bom: bool = False) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([self.header, *self.rows])
        return (b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8")

    def gz_bytes(self) -> bytes:
        return gzip.compress(self.csv_bytes(), mtime=0)

    def invoice_basis(self, rows: list[int] | None = None) -> dict[str, Decimal]:
        """Sum of lineItem/UnblendedCost per currency (every row here is Usage or Tax: billed =
        unblended = amortized)."""
        out: dict[str, Decimal] = {}
        cur = self.col("lineItem/CurrencyCode")
        for i, r in enumerate(self.rows):
            if rows is None or i in rows:
                out[r[cur]] = out.get(r[cur], Decimal(0)) + Decimal(r[self.col(COST)])
        return out


def load_cur(path: Path = SMALL_CUR) -> CurTable:
    with open(path, newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    return CurTable(header, rows)


@pytest.fixture
def cur() -> CurTable:
    return load_cur()


# ---------------------------------------------------------------------------------------------
# Landing zone
# ---------------------------------------------------------------------------------------------
def period_folder(period: str) -> str:
    """2023-11 -> 20231101-20231201 (legacy CUR period folder)."""
    y, m = int(period[:4]), int(period[5:7])
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return f"{y:04d}{m:02d}01-{ny:04d}{nm:02d}01"


class LandingZone:
    """A landing zone under ``root``: ``sources.json`` plus deliveries laid out as AWS does."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._sources: dict[str, ExportSource] = {}

    def add_source(self, name: str, location: str | None = None, fmt: str = "aws-cur") -> ExportSource:
        self._sources[name] = ExportSource(name, fmt, location or name)
        (self.root / "sources.json").write_text(json.dumps({"sources": [
            {"name": s.name, "format": s.format, "location": s.location} for s in self._sources.values()]}))
        return self._sources[name]

    def source(self, name: str) -> ExportSource:
        return self._sources[name]

    def store(self) -> LocalStore:
        return LocalStore(self.root)

    def plain_delivery(self, source: str, period: str, files: dict[str, bytes]) -> list[str]:
        """Files in a ``YYYY-MM`` folder without a manifest; returns their keys."""
        folder = self.root / self._sources[source].location / period
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return [f"{self._sources[source].location}/{period}/{name}" for name in files]

    def legacy_delivery(self, source: str, files: dict[str, bytes], *, period: str = PERIOD,
                        report: str = "cur", assembly_id: str | None = None,
                        missing: tuple[str, ...] = ()) -> str:
        """A legacy CUR assembly: ``<report>/<yyyymmdd-yyyymmdd>/<assemblyId>/<files>`` with its
        manifest copy, and the period-level ``<report>-Manifest.json`` (re)written to name this
        assembly. ``missing`` are file names the manifest lists but that are not written."""
        assembly_id = assembly_id or str(uuid.uuid4())
        pf = period_folder(period)
        base = self.root / self._sources[source].location / report / pf
        (base / assembly_id).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (base / assembly_id / name).write_bytes(data)
        start, end = pf.split("-")
        manifest = {
            "assemblyId": assembly_id, "account": PAYER, "reportName": report, "bucket": "billing-bucket",
            "charset": "UTF-8", "contentType": "text/csv",
            "billingPeriod": {"start": f"{start}T000000.000Z", "end": f"{end}T000000.000Z"},
            "columns": [], "reportKeys": [f"{report}/{pf}/{assembly_id}/{name}" for name in [*files, *missing]],
        }
        (base / assembly_id / f"{report}-Manifest.json").write_text(json.dumps(manifest))
        (base / f"{report}-Manifest.json").write_text(json.dumps(manifest))
        return assembly_id


@pytest.fixture
def landing(tmp_path: Path) -> LandingZone:
    return LandingZone(tmp_path / "landing")


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(str(tmp_path / "warehouse"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads or writes the developer's warehouse, landing zone or Dagster home."""
    monkeypatch.delenv("FOCUS_WAREHOUSE_ROOT", raising=False)
    monkeypatch.delenv("FOCUS_LANDING_ROOT", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir(exist_ok=True)


# ---------------------------------------------------------------------------------------------
# Pipeline helpers
# ---------------------------------------------------------------------------------------------
def run_pipeline(warehouse: Warehouse, landing: LandingZone, source: str, period: str = PERIOD):
    """discover → ingest_delivery → publish_focus for one (source, period), as the assets do."""
    src = landing.source(source)
    delivery = discover_deliveries(landing.store(), src)[period]
    raw = ingest_delivery(warehouse, landing.store(), src, delivery)
    return delivery, raw, publish_focus(warehouse, src, period)


def focus_rows(warehouse: Warehouse, source: str, period: str = PERIOD, *, version: int | None = None,
               table: str = FOCUS_TABLE) -> pl.DataFrame:
    return warehouse.scan(table, PartitionKey.of(period, source).values(), version=version).collect()


def billed_by_currency(df: pl.DataFrame, column: str = "BilledCost") -> dict[str, Decimal]:
    out = df.group_by("BillingCurrency").agg(pl.col(column).sum())
    return {r[0]: r[1] for r in out.iter_rows()}


def table_version(warehouse: Warehouse, table: str) -> int | None:
    dt = warehouse.table(table)
    return dt.version() if dt is not None else None


@pytest.fixture
def h() -> SimpleNamespace:
    """The helpers above for the test modules (imported through a fixture, not ``from conftest``:
    pytest imports every ``conftest.py`` as the same module name)."""
    return SimpleNamespace(
        PERIOD=PERIOD, PAYER=PAYER, COST=COST, FOCUS_TABLE=FOCUS_TABLE, QUARANTINE_TABLE=QUARANTINE_TABLE,
        SMALL_CUR=SMALL_CUR, load_cur=load_cur, period_folder=period_folder, run_pipeline=run_pipeline,
        focus_rows=focus_rows, billed_by_currency=billed_by_currency, table_version=table_version,
    )


# ---------------------------------------------------------------------------------------------
# The whole graph on one embedded sample month
# ---------------------------------------------------------------------------------------------
SAMPLE_SOURCE, SAMPLE_PERIOD = "aws-fc-sample", "2023-11"


def published_sample_month(root: Path) -> SimpleNamespace:
    """The embedded ``aws-fc-sample`` source (2023-11) and the sample invoices as a landing zone under
    ``root``, every asset of the graph materialized once through Dagster: instance, resources, warehouse."""
    import dagster as dg

    from focus_platform.defs.assets.ingest import INGEST_ASSETS
    from focus_platform.defs.assets.reconcile import RECONCILE_ASSETS
    from focus_platform.defs.partitions import EXPORT_SOURCE
    from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
    from tests.conftest import SAMPLE_LANDING

    land = root / "landing"
    shutil.copytree(SAMPLE_LANDING / SAMPLE_SOURCE, land / SAMPLE_SOURCE)
    shutil.copytree(SAMPLE_LANDING / "invoices", land / "invoices")
    (land / "sources.json").write_text(json.dumps({"sources": [
        {"name": SAMPLE_SOURCE, "format": "aws-cur", "location": SAMPLE_SOURCE}]}))
    res = {"landing_zone": LandingZoneResource(root=str(land)), "warehouse": WarehouseResource(root=str(root / "wh"))}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORT_SOURCE, [SAMPLE_SOURCE])
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    assert dg.materialize(INGEST_ASSETS, partition_key=f"{SAMPLE_PERIOD}|{SAMPLE_SOURCE}", instance=instance,
                          resources=res, run_config=quiet).success
    assert dg.materialize(RECONCILE_ASSETS, instance=instance, resources=res, run_config=quiet,
                          selection=["invoices", "exchange_rates"]).success
    assert dg.materialize(RECONCILE_ASSETS, partition_key=SAMPLE_PERIOD, instance=instance, resources=res,
                          run_config=quiet, selection=["invoice_reconciliation", "sku_catalog"]).success
    return SimpleNamespace(instance=instance, resources=res, warehouse=Warehouse(str(root / "wh")))

"""The FOCUS columns as data, and the one Polars schema of the canonical table.

The column facts (type, feature level, nullability, allowed values) are shipped as
``columns-<version>.csv`` beside this module, taken from the FOCUS specification: 1.2, the version of
the canonical ``focus_costs`` table, and 1.3, the version of the ``focus_costs_v1_3`` view
(``allocation.focus13``). The 1.3 file also lists the columns of the separate ContractCommitment
dataset (ids ``ContractCommitment.<Column>``); the cost and usage columns are those without a dataset
prefix, and only they are read here.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

import polars as pl

FOCUS_VERSION = "1.2"  # the canonical table's version
SUPPORTED_VERSIONS = (FOCUS_VERSION, "1.3")

MONEY = pl.Decimal(38, 12)
"""Every cost and price: Decimal(38, 12), never a float."""
TIMESTAMP = pl.Datetime("us", "UTC")
# a string with no match is blank (empty or whitespace only): the search stops at the first character,
# where ^\s*$ took 1.75x the time over every string column of a partition
NOT_BLANK = r"\S"
STRING_LIST = pl.List(pl.String)

_POLARS_TYPE = {"Decimal": MONEY, "DateTime": TIMESTAMP, "String": pl.String, "JSON": pl.String}


@dataclass(frozen=True)
class FocusColumn:
    name: str
    display_name: str
    data_type: str  # FOCUS type: String, Decimal, DateTime, JSON
    feature_level: str  # Mandatory, Recommended, Conditional
    allows_nulls: bool
    allowed_values: tuple[str, ...]
    introduced: str

    @property
    def dtype(self) -> pl.DataType:
        return _POLARS_TYPE[self.data_type]


@cache
def focus_columns(version: str = FOCUS_VERSION) -> tuple[FocusColumn, ...]:
    """The cost and usage columns of one FOCUS version, in the order of its csv."""
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"FOCUS version {version!r} is not supported; supported: {', '.join(SUPPORTED_VERSIONS)}")
    text = resources.files(__package__).joinpath(f"columns-{version}.csv").read_text("utf-8")
    return tuple(
        FocusColumn(
            name=row["column_id"],
            display_name=row["column"],
            data_type=row["type"],
            feature_level=row["feature_level"],
            allows_nulls=row["allows_nulls"] == "True",
            allowed_values=tuple(v.strip() for v in row["allowed_values"].split(";") if v.strip()),
            introduced=row["introduced"],
        )
        for row in csv.DictReader(text.splitlines())
        if "." not in row["column_id"]  # 'ContractCommitment.<Column>': another dataset
    )


def focus_column(name: str) -> FocusColumn:
    return next(c for c in focus_columns() if c.name == name)


FOCUS_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in focus_columns())

# Lineage and provider columns every FOCUS row carries (x_ prefixed, after the FOCUS columns).
LINEAGE_SCHEMA: dict[str, pl.DataType] = {
    "x_BillingPeriod": pl.String,  # 'YYYY-MM' of the delivery (partition column)
    "x_Source": pl.String,  # configured export source (partition column)
    "x_SourceFormat": pl.String,  # aws-cur, aws-cur2, ...
    "x_SourceFormatVersion": pl.String,  # e.g. "CUR 1 (legacy) csv", "CUR 2.0 parquet"
    "x_SourceFile": pl.String,
    "x_SourceRow": pl.Int64,  # 1-based data row in x_SourceFile
    "x_SourceDelivery": pl.String,  # assembly id / export run / content digest
    "x_IngestedAt": TIMESTAMP,
    "x_ConverterVersion": pl.String,
    "x_RowId": pl.String,  # stable digest of the source identity, unique per row
    "x_SourceChanges": STRING_LIST,  # every value derived or fixed up, and why
    "x_ProviderDataGaps": STRING_LIST,  # rule ids the provider's data cannot satisfy on this row
}

PROVIDER_X_SCHEMA: dict[str, pl.DataType] = {
    "x_ChargeType": pl.String,  # provider's own charge type (AWS line item type, ...)
    "x_ServiceCode": pl.String,
    "x_UsageType": pl.String,
    "x_Operation": pl.String,
    "x_CostCategories": pl.String,  # JSON object of provider cost categories
}


def focus_schema(include_x: bool = True, version: str = FOCUS_VERSION) -> pl.Schema:
    """The canonical FOCUS 1.2 table: 57 FOCUS columns, then the x_ columns (``version="1.3"``: the 65
    FOCUS 1.3 cost and usage columns, the x_ columns of the canonical table after them)."""
    cols: dict[str, pl.DataType] = {c.name: c.dtype for c in focus_columns(version)}
    if include_x:
        cols.update(PROVIDER_X_SCHEMA)
        cols.update(LINEAGE_SCHEMA)
    return pl.Schema(cols)


DECIMAL_COLUMNS = tuple(c.name for c in focus_columns() if c.data_type == "Decimal")

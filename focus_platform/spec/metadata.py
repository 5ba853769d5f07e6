"""FOCUS metadata published beside every FOCUS table or file (FocusVersion, DataGenerator, schema).

FOCUS 1.2 wants the metadata outside the data: a JSON document with FocusVersion, SchemaId,
CreationDate, DataGenerator(+Version) and one column definition per column, including numeric
precision and scale for Decimal columns and the provider tag prefixes for Tags.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import polars as pl

from focus_platform import __version__
from focus_platform.spec.columns import FOCUS_VERSION, focus_columns

DATA_GENERATOR = "focus-platform"
PROVIDER_TAG_PREFIXES = ["aws:"]
METADATA_SUFFIX = ".focus-metadata.json"


def _data_type(dtype: pl.DataType) -> str:
    if dtype.is_decimal():
        return "Decimal"
    if isinstance(dtype, pl.Datetime):
        return "DateTime"
    if dtype.is_integer():
        return "Integer"
    if isinstance(dtype, pl.List):
        return "JSON"  # x_ list columns: arrays of strings
    return "String"


def focus_metadata(schema: pl.Schema, *, created: datetime | None = None) -> dict:
    spec = {c.name: c for c in focus_columns()}
    columns = []
    for name, dtype in schema.items():
        entry: dict[str, object] = {"ColumnName": name,
                                    "DataType": spec[name].data_type if name in spec else _data_type(dtype)}
        if dtype.is_decimal():
            entry["NumericPrecision"], entry["NumberScale"] = dtype.precision, dtype.scale
        if name == "Tags":
            entry["ProviderTagPrefixes"] = PROVIDER_TAG_PREFIXES
        if name not in spec:
            entry["Description"] = "custom column (x_ prefix)"
        columns.append(entry)
    schema_id = uuid.uuid5(uuid.NAMESPACE_URL, "focus-platform:" + json.dumps(columns, sort_keys=True))
    return {
        "FocusVersion": FOCUS_VERSION,
        "SchemaId": str(schema_id),
        "CreationDate": (created or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "DataGenerator": DATA_GENERATOR,
        "DataGeneratorVersion": __version__,
        "ColumnDefinition": columns,
    }


def write_metadata(uri: str, schema: pl.Schema, storage_options: dict | None = None) -> str:
    """Write the metadata document to ``uri`` (a local path or s3:// / gs:// object)."""
    import pyarrow.fs as pafs

    text = json.dumps(focus_metadata(schema), indent=2)
    fs, path = pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)
    with fs.open_output_stream(path) as out:
        out.write(text.encode())
    return uri

"""Delta tables under one warehouse root: partition replace with stage → check → publish.

``replace_partition`` streams a LazyFrame into bounded Parquet parts inside the partition's folder
(not yet part of the table), runs the gate on exactly those parts, and only then commits them in
one Delta transaction that also removes the partition's previous files. A reader never sees a
partition that failed its gate, and Delta history keeps the version it replaced. Memory stays
bounded by the part size, not the partition size (the plain deltalake writer buffers its input).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction, create_table_with_add_actions

PARTITION_COLUMNS = ("x_BillingPeriod", "x_Source")
DEFAULT_ROOT = "./.data/warehouse"
ROWS_PER_PART = 1_000_000


class GateFailed(RuntimeError):
    """A gating check refused the staged partition; nothing was committed."""

    def __init__(self, message: str, details: object = None):
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class Published:
    table: str
    version: int
    rows: int
    files: int
    partition: dict[str, str]


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _local_path(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else uri


class Warehouse:
    """The Delta tables of the platform under ``root`` (a directory, ``s3://…`` or ``gs://…``)."""

    def __init__(self, root: str | None = None, storage_options: dict[str, str] | None = None):
        root = root or os.environ.get("FOCUS_WAREHOUSE_ROOT") or DEFAULT_ROOT
        self.root = str(Path(root).resolve()) if is_local(root) else root.rstrip("/")
        self.storage_options = storage_options or None

    def uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    def table(self, table: str) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri(table), storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def exists(self, table: str) -> bool:
        return self.table(table) is not None

    def scan(self, table: str, partition: dict[str, str] | None = None, version: int | None = None) -> pl.LazyFrame:
        """A table (optionally one partition, pruned by the partition columns) as a LazyFrame.

        One partition is read as the Parquet files of that partition in the table's current
        (or given) version, with the table schema (columns a file lacks are null): a plain
        streaming Parquet scan, whose memory does not grow with the partition."""
        if partition is None:
            return pl.scan_delta(self.uri(table), version=version, storage_options=self.storage_options)
        dt = DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)
        files = dt.file_uris(partition_filters=[(k, "=", v) for k, v in partition.items()])
        schema = pl.DataFrame(pa.schema(dt.schema()).empty_table()).schema
        data_schema = {k: v for k, v in schema.items() if k not in partition}
        literals = [pl.lit(v, pl.String).alias(k) for k, v in partition.items()]
        if not files:
            return pl.LazyFrame(schema=data_schema).with_columns(literals).select(schema.names())
        return (pl.scan_parquet(files, schema=data_schema, missing_columns="insert", extra_columns="ignore",
                                storage_options=self.storage_options)
                .with_columns(literals).select(schema.names()))

    def history(self, table: str) -> list[dict]:
        dt = self.table(table)
        return dt.history() if dt is not None else []

    def replace_partition(
        self,
        table: str,
        data: pl.LazyFrame | list[pl.LazyFrame],
        partition: dict[str, str],
        *,
        gate: Callable[[pl.LazyFrame], object] | None = None,
        commit_metadata: dict[str, object] | Callable[[object], dict[str, object]] | None = None,
        rows_per_part: int = ROWS_PER_PART,
    ) -> tuple[Published, object]:
        """Stage ``data`` as the new content of ``partition``, gate it, publish it in one commit.

        ``data`` holds the partition's rows (the partition columns may be present; they are written
        as Delta partition values). Returns what was published and whatever ``gate`` returned.
        """
        frames = data if isinstance(data, list) else [data]
        part_dir = "/".join(f"{k}={partition[k]}" for k in PARTITION_COLUMNS)
        stage = f"{part_dir}/stage-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        base = f"{self.uri(table)}/{stage}"
        written: list = []  # polars SinkedPath: path, num_rows, num_bytes
        try:
            schema = None
            for i, lf in enumerate(frames):
                lf = lf.drop([c for c in PARTITION_COLUMNS if c in lf.collect_schema().names()])
                schema = schema or lf.collect_schema()
                lf.sink_parquet(
                    pl.PartitionBy(f"{base}/f{i:03d}", max_rows_per_file=rows_per_part,
                                   approximate_bytes_per_file="auto"),
                    storage_options=self.storage_options, mkdir=True,
                    sinked_paths_callback=lambda args: written.extend(args.paths),
                )
            files = [w.path for w in written]
            staged = self._scan_staged(files, partition, schema)
            gate_result = gate(staged) if gate else None
            actions, rows = self._add_actions(written, partition)
            if callable(commit_metadata):
                commit_metadata = commit_metadata(gate_result)
            version = self._commit(table, actions, partition, schema, commit_metadata or {})
        except BaseException:
            self._remove_stage(table, stage)
            raise
        return Published(table, version, rows, len(files), dict(partition)), gate_result

    # -- internals ------------------------------------------------------------------------------
    def _scan_staged(self, files: list[str], partition: dict[str, str], schema: pl.Schema) -> pl.LazyFrame:
        literals = [pl.lit(v, pl.String).alias(k) for k, v in partition.items()]
        if not files:
            return pl.LazyFrame(schema=schema).with_columns(literals)
        return pl.scan_parquet(files, storage_options=self.storage_options).with_columns(literals)

    def _add_actions(self, written: list, partition: dict[str, str]) -> tuple[list[AddAction], int]:
        table_prefix = len(self.root) + 1
        actions = [
            AddAction(
                path=w.path[table_prefix:].split("/", 1)[1],  # relative to the table root
                size=w.num_bytes, partition_values=dict(partition),
                modification_time=int(time.time() * 1000), data_change=True,
                stats=json.dumps({"numRecords": w.num_rows}),
            )
            for w in written
        ]
        return actions, sum(w.num_rows for w in written)

    def _commit(self, table: str, actions: list[AddAction], partition: dict[str, str],
                data_schema: pl.Schema, metadata: dict[str, object]) -> int:
        props = CommitProperties(custom_metadata={k: json.dumps(v, default=str) for k, v in metadata.items()})
        full = pl.Schema({**dict(data_schema), **{k: pl.String for k in PARTITION_COLUMNS}})
        dt = self.table(table)
        if dt is None:
            create_table_with_add_actions(
                self.uri(table), DeltaSchema.from_arrow(arrow_schema(full)), actions, mode="append",
                partition_by=list(PARTITION_COLUMNS), storage_options=self.storage_options,
                commit_properties=props,
            )
            return 0
        merged = merge_schemas(pa.schema(dt.schema()), arrow_schema(full), table)
        dt.create_write_transaction(
            actions, mode="overwrite", schema=merged, partition_by=list(PARTITION_COLUMNS),
            partition_filters=[(k, "=", v) for k, v in partition.items()], commit_properties=props,
        )
        return self.table(table).version()

    def _remove_stage(self, table: str, stage: str) -> None:
        if is_local(self.root):
            shutil.rmtree(_local_path(f"{self.uri(table)}/{stage}"), ignore_errors=True)
        else:  # object stores (s3://, gs://): credentials from the environment, as deltalake uses
            import pyarrow.fs as pafs

            fs, path = pafs.FileSystem.from_uri(f"{self.uri(table)}/{stage}")
            fs.delete_dir_contents(path, missing_dir_ok=True)


def arrow_schema(schema: pl.Schema) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow().schema


def _plain(t: pa.DataType) -> pa.DataType:
    """Compare types without Arrow's large/view string variants (Delta has one string type)."""
    if t in (pa.large_string(), pa.string_view()):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.list_(_plain(t.value_type))
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", t.tz)
    return t


def merge_schemas(existing: pa.Schema, new: pa.Schema, table: str) -> pa.Schema:
    """Schema evolution: the table's columns, then new ones; a changed type is an error."""
    fields = list(existing)
    names = set(existing.names)
    for f in new:
        if f.name in names:
            old = existing.field(f.name).type
            if _plain(old) != _plain(f.type):
                raise ValueError(f"table {table}: column {f.name} is {old} in the table but {f.type} in the new data")
        else:
            fields.append(f.with_nullable(True))
    return pa.schema(fields)

"""Delta tables under one warehouse root: the one write path of every catalog table.

``publish`` streams each LazyFrame it is given into one Parquet file inside the partition's folder (not
yet part of the table), runs the table's contract and then the caller's gate on exactly those files,
and only then commits them in one Delta transaction that also removes the partition's previous
files, then records the restatement-log entry. The partition columns come from the table's
catalog spec (``warehouse.catalog``): billing period × export source, billing period, or none (a
publication then replaces the whole table). A reader never sees a partition that failed a gate,
and Delta history keeps the version it replaced. Memory stays bounded by the row group size, not
the partition size: a plain streaming sink per file (the plain deltalake writer buffers its input,
and Polars' multi-file sink holds about 0.7 GB more for 1 M FOCUS rows). ``drop_partition`` removes
a partition in one verified commit (retention), ``vacuum`` deletes files only versions older than a
window need, ``append`` adds rows to the append-only restatement log. Nothing outside this
package writes, deletes or vacuums a Delta table.

Roots may be local folders, ``s3://…`` or ``gs://…`` (options from ``warehouse.storage``). Commits
are safe with concurrent writers: Delta's optimistic concurrency (a conditional put of the next log
entry; on S3 ``If-None-Match``) lets one writer win; a loser whose partition nobody else touched
re-commits the same staged files on the new snapshot (writers of two partitions of one table both
land), while a partition changed under it by another writer is an error (``ConcurrentPartitionWrite``),
never a silent overwrite. Every retry is ours, never delta-rs's (``max_commit_retries=0``): a commit
is always derived from the snapshot it lands on (version = snapshot + 1), so a lost race to create
a table is re-read and committed as an ordinary partition overwrite (delta-rs 1.x would re-commit
the loser's creation — protocol, metaData, adds — as a second ``CREATE TABLE`` at a later version,
unchecked). After each commit the log entry is checked: this writer's files, removes of this
partition's files of the version it was derived from, every other partition unchanged
(``CommitVerificationFailed`` otherwise). A writer killed mid-write leaves only uncommitted files in a ``stage-…``
folder (readers never see them); ``remove_orphans`` deletes such files once they are old enough,
keeping every file any table version refers to (Delta history stays restorable).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import AddAction, create_table_with_add_actions

from focus_platform.periods import PERIOD_COLUMN, SOURCE_COLUMN, PartitionKey
from focus_platform.warehouse import restatements as rs
from focus_platform.warehouse.catalog import RESTATEMENT_LOG
from focus_platform.warehouse.catalog import table as table_spec
from focus_platform.warehouse.contracts import ContractReport, check_contract
from focus_platform.warehouse.storage import StorageConfig, storage_handler

DEFAULT_ROOT = "./.data/warehouse"
COMMIT_ATTEMPTS = 20
APPEND_ATTEMPTS = 10  # blind appends conflict only when two writers create the table at once
ORPHAN_AGE_HOURS = 24  # an uncommitted file older than this is a dead writer's leftover
# Delta's default codec (Spark, delta-rs, DuckDB, BI readers all read it): about 15 % less CPU to
# write than Polars' default zstd, for files about 1.7x larger.
PARQUET_COMPRESSION = "snappy"
# Rows per Parquet row group of a raw partition: a streaming reader holds a few row groups of the
# columns it reads, so wide raw rows (nested credits and labels) need small groups. Reading a 1 M-row
# raw GCP partition to FOCUS peaks at 1.8 GB with 100 k-row groups (Polars' default), 1.2 GB with 50 k
# and 0.7 GB with 20 k. Not for tables written from a mapping: a sink of small row groups behind heavy
# work buffers what it cannot encode yet (AWS convert at 4 M rows: 1.4 GB by default, 3.9 GB with 20 k).
RAW_ROW_GROUP_ROWS = 20_000


class GateFailed(RuntimeError):
    """A gating check refused the staged partition; nothing was committed."""

    def __init__(self, message: str, details: object = None):
        super().__init__(message)
        self.details = details


class ConcurrentPartitionWrite(RuntimeError):
    """Another writer replaced the same partition while this one was staging; nothing was committed."""


class CommitVerificationFailed(RuntimeError):
    """A commit landed but is not what this writer meant (another partition's files removed, its own
    files missing): never expected; raised loudly rather than reporting a successful write."""


@dataclass(frozen=True)
class Snapshot:
    """A partition as of one table version: its data files (paths relative to the table root)."""

    table: str
    version: int | None  # None: the table does not exist yet
    files: frozenset[str]


@dataclass(frozen=True)
class Published:
    table: str
    version: int
    rows: int
    files: int
    partition: dict[str, str]
    restatement: rs.Restatement | None = None  # the restatement-log entry recorded (logged tables)
    contract: ContractReport | None = None  # the table's contract on the published files (publish only)


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _local_path(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else uri


class Warehouse:
    """The Delta tables of the platform under ``root`` (a directory, ``s3://…`` or ``gs://…``)."""

    def __init__(self, root: str | None = None, storage_options: dict[str, str] | None = None, *,
                 config: StorageConfig | None = None):
        root = root or os.environ.get("FOCUS_WAREHOUSE_ROOT") or DEFAULT_ROOT
        self.root = str(Path(_local_path(root)).resolve()) if is_local(root) else root.rstrip("/")
        if storage_options is None and not is_local(self.root):
            storage_options = (config or StorageConfig()).storage_options(self.root)
        self.storage_options = storage_options or None
        self.commit_retries = 0  # commits re-tried after another writer won the race (observability)

    def __repr__(self) -> str:  # never the storage options (they may hold credentials)
        return f"Warehouse({self.root!r})"

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
        if not partition:  # the whole table (an unpartitioned table's one partition)
            return pl.scan_delta(self.uri(table), version=version, storage_options=self.storage_options)
        dt = DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)
        files = dt.file_uris(partition_filters=[(k, "=", v) for k, v in partition.items()])
        schema = _polars_schema(dt)
        data_schema = _data_schema(schema, partition)
        literals = [pl.lit(v, pl.String).alias(k) for k, v in partition.items()]
        if not files:
            return pl.LazyFrame(schema=data_schema).with_columns(literals).select(schema.names())
        return (pl.scan_parquet(files, schema=data_schema, missing_columns="insert", extra_columns="ignore",
                                storage_options=self.storage_options)
                .with_columns(literals).select(schema.names()))

    def history(self, table: str, limit: int | None = None) -> list[dict]:
        dt = self.table(table)
        return dt.history(limit) if dt is not None else []

    def published_fingerprint(self, table: str, partition: dict[str, str], current: Snapshot) -> str | None:
        """The fingerprint recorded by the commit that wrote the partition as it is in ``current``
        (None when none was recorded or the partition changed since: another writer, a rollback).
        One small object beside the table, not a walk through the Delta history."""
        text = self.read_text(_fingerprint_path(table, partition))
        if text is None or not current.files:
            return None
        recorded = json.loads(text)
        return recorded["fingerprint"] if recorded.get("files") == _files_digest(current.files) else None

    def _record_fingerprint(self, table: str, partition: dict[str, str], fingerprint: str,
                            files: frozenset[str]) -> None:
        """``files``: the partition's files after the commit (verified to be exactly the ones it added)."""
        self.write_text(_fingerprint_path(table, partition), json.dumps(
            {"fingerprint": fingerprint, "files": _files_digest(files)}))

    def snapshot(self, table: str, partition: dict[str, str], version: int | None = None) -> Snapshot:
        """The partition's files in the current (or given) version of the table."""
        if version is None:
            dt = self.table(table)
        else:
            dt = DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)
        if dt is None:
            return Snapshot(table, None, frozenset())
        return Snapshot(table, dt.version(), _partition_files(dt, partition))

    def read_text(self, relative: str) -> str | None:
        """A small object beside the tables written by ``write_text``; None when it is not there."""
        uri = f"{self.root}/{relative}"
        if is_local(self.root):
            path = Path(_local_path(uri))
            return path.read_text("utf-8") if path.exists() else None
        import pyarrow.fs as pafs

        handler = storage_handler(self.root, self.storage_options)
        if handler.get_file_info([relative])[0].type == pafs.FileType.NotFound:
            return None
        stream = handler.open_input_stream(relative)
        try:
            return stream.read().decode()
        finally:
            stream.close()

    def write_text(self, relative: str, text: str) -> str:
        """A small object beside the tables (e.g. FOCUS metadata), through the same object store."""
        uri = f"{self.root}/{relative}"
        if is_local(self.root):
            Path(_local_path(uri)).parent.mkdir(parents=True, exist_ok=True)
            Path(_local_path(uri)).write_text(text, "utf-8")
        else:
            # deltalake's object store writer (its pyarrow wrapper hands it Buffers it rejects)
            out = storage_handler(self.root, self.storage_options)._handler.open_output_stream(relative, None)
            try:
                out.write(text.encode())
            finally:
                out.close()
        return uri

    def partition(self, table: str, key: PartitionKey) -> dict[str, str]:
        """The Delta partition values of ``key`` in ``table``, in the order of the catalog's
        partition columns; a key that does not name exactly those columns is an error."""
        columns = table_spec(table).partition_by
        values = key.values()
        if set(values) != set(columns):
            raise ValueError(f"{table} is partitioned by {', '.join(columns) or 'nothing (one whole table)'}: "
                             f"partition key {str(key)!r} ({key.describe()}) does not name exactly those")
        return {c: values[c] for c in columns}

    def publish(
        self,
        table: str,
        data: pl.LazyFrame | list[pl.LazyFrame],
        key: PartitionKey,
        *,
        gate: Callable[[pl.LazyFrame], object] | None = None,
        commit_metadata: dict[str, object] | Callable[[object], dict[str, object]] | None = None,
        base: Snapshot | None = None,
        statistics: bool = True,
        row_group_rows: int | None = None,
        fingerprint: str | Callable[[object], str] | None = None,
        restatement: Callable[[Published, object], rs.Restatement] | None = None,
        run_id: str | None = None,
        note: str | None = None,
    ) -> tuple[Published, object]:
        """Stage ``data`` as the new content of the partition ``key`` of a catalog table, gate it,
        publish it in one commit: the one write path of every table, whatever its partition shape
        (billing period × export source, billing period, or none: then the whole table is replaced).

        ``data`` holds the partition's rows (the partition columns may be present; they are written
        as Delta partition values). Returns what was published and whatever ``gate`` returned.
        ``base``: the snapshot the caller compared against (e.g. for a restatement log or a guard):
        the commit is refused if the partition's files changed since (another writer).
        ``statistics``: Parquet min/max/null-count statistics in the files (readers prune row groups
        with them); off for a table only ever read a whole partition at a time. ``row_group_rows``: rows
        per Parquet row group (None: Polars' default).
        ``fingerprint``: what the content was built from (or ``fingerprint(gate_result)``, when it depends on
        the staged rows), recorded beside the table for ``published_fingerprint`` (a caller skips
        rebuilding a partition whose inputs are unchanged).

        Gates, in order: the table's contract (``warehouse.contracts``) on the staged files, then
        ``gate``; either raises ``GateFailed`` and nothing is committed (the published version stays).
        A logged table (catalog ``logged``) gets one restatement-log entry per publication, returned
        as ``Published.restatement``: ``restatement(published, gate_result)`` when the caller knows
        more (a delivery guard, a period status), else one measured here: rows (and totals per
        currency where the catalog names ``totals``) before and after, by ``restatements.state_reader``,
        with ``run_id`` and ``note``.
        """
        partition = self.partition(table, key)
        measure = table_spec(table).logged and restatement is None
        seen = base if base is not None or not measure else self.snapshot(table, partition)
        frames = data if isinstance(data, list) else [data]
        stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        stage = _partition_dir(partition) + f"stage-{stamp}"
        base_dir = f"{self.uri(table)}/{stage}"
        written: list = []  # polars SinkedPath: path, num_rows, num_bytes
        try:
            schema = None
            for i, lf in enumerate(frames):
                lf = lf.drop([c for c in partition if c in lf.collect_schema().names()])
                schema = schema or lf.collect_schema()
                lf.sink_parquet(
                    f"{base_dir}/f{i:03d}.parquet",
                    compression=PARQUET_COMPRESSION, statistics=statistics, row_group_size=row_group_rows,
                    storage_options=self.storage_options,
                    mkdir=True,
                    sinked_paths_callback=lambda args: written.extend(args.paths),
                )
            files = [w.path for w in written]
            staged = self._scan_staged(files, partition, schema)
            contract = check_contract(table, staged, files, self.storage_options)
            if not contract.ok:
                raise GateFailed(contract.message(), contract)
            gate_result = gate(staged) if gate else None
            after = rs.state_reader(table)(staged, None) if measure else None
            actions, rows = self._add_actions(written, partition)
            if callable(fingerprint):
                fingerprint = fingerprint(gate_result)
            if callable(commit_metadata):
                commit_metadata = commit_metadata(gate_result)
            version = self._commit(table, actions, partition, schema, commit_metadata or {}, base)
        except BaseException:
            self._remove_stage(table, stage)
            raise
        if fingerprint is not None:
            self._record_fingerprint(table, partition, fingerprint, frozenset(a.path for a in actions))
        published = Published(table, version, rows, len(files), dict(partition), contract=contract)
        if measure:
            before = self._measure(table, partition, seen)
            entry = rs.Restatement(table, partition.get(PERIOD_COLUMN), partition.get(SOURCE_COLUMN),
                                   "replace" if before else "publish", before, replace(after, version=version),
                                   version, run_id=run_id, note=note)
        else:
            entry = restatement(published, gate_result) if restatement is not None else None
        if entry is not None:
            self.record([entry])
        return replace(published, restatement=entry), gate_result

    def append(self, table: str, rows: pl.DataFrame) -> None:
        """Add ``rows`` to an append-only, unpartitioned table (the restatement log) once they pass
        the table's contract (``GateFailed`` otherwise, nothing written). Blind appends: concurrent
        writers do not conflict; a lost race to create the table is retried."""
        contract = check_contract(table, rows.lazy(), [], self.storage_options)
        if not contract.ok:
            raise GateFailed(contract.message(), contract)
        for attempt in range(APPEND_ATTEMPTS):
            try:
                write_deltalake(self.uri(table), rows.to_arrow(), mode="append", storage_options=self.storage_options)
                return
            except Exception:  # noqa: BLE001 - a concurrent creator or committer: retry
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
                self.commit_retries += 1
                time.sleep(0.05 * (attempt + 1))

    def record(self, entries: list[rs.Restatement]) -> None:
        """Entries of the restatement log: the one place they are written (``publish``,
        ``restore_partition`` and ``drop_partition`` call it; a caller records a no-op itself)."""
        self.append(RESTATEMENT_LOG, pl.DataFrame([e.row() for e in entries], schema=rs.LOG_SCHEMA))

    def _measure(self, table: str, partition: dict[str, str], seen: Snapshot) -> rs.PartitionState | None:
        """The restatement log's measure of the partition as in ``seen`` (None when it had no files)."""
        if not seen.files:
            return None
        return rs.state_reader(table)(self.scan(table, partition, version=seen.version), seen.version)

    def restore_partition(self, table: str, key: PartitionKey, version: int, *,
                          commit_metadata: dict[str, object] | None = None, base: Snapshot | None = None,
                          restatement: Callable[[Published], rs.Restatement] | None = None,
                          run_id: str | None = None) -> Published:
        """Make the partition ``key`` hold exactly the files it had in ``version`` (a rollback), in
        one commit. The files must still exist (not vacuumed). A logged table gets a restatement-log
        entry (action ``rollback``; ``restatement(published)`` when the caller knows more, else the
        partition measured before and as restored), returned as ``Published.restatement``."""
        partition = self.partition(table, key)
        measure = table_spec(table).logged and restatement is None
        seen = base if base is not None or not measure else self.snapshot(table, partition)
        old = DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)
        adds = pa.table(old.get_add_actions(flatten=True)).to_pylist()
        mine = [a for a in adds if all(a.get(f"partition.{k}") == v for k, v in partition.items())]
        now = int(time.time() * 1000)
        actions = [AddAction(path=a["path"], size=a["size_bytes"], partition_values=dict(partition),
                             modification_time=now, data_change=True,
                             stats=json.dumps({"numRecords": a["num_records"]}) if a.get("num_records") is not None
                             else None)
                   for a in mine]
        missing = [a["path"] for a in mine if not self._file_exists(table, a["path"])]
        if missing:
            raise FileNotFoundError(f"{table} version {version}: {len(missing)} data file(s) of partition "
                                    f"{partition} are gone (vacuumed?), e.g. {missing[0]}: cannot restore it")
        v = self._commit(table, actions, partition, _data_schema(_polars_schema(old), partition), commit_metadata or {},
                         base)
        published = Published(table, v, sum(int(a["num_records"] or 0) for a in mine), len(mine), dict(partition))
        if measure:
            restored = self._measure(table, partition, self.snapshot(table, partition, version=version))
            entry = rs.Restatement(table, partition.get(PERIOD_COLUMN), partition.get(SOURCE_COLUMN), "rollback",
                                   self._measure(table, partition, seen),
                                   replace(restored or rs.PartitionState(None, 0, {}, {}, ()), version=v), v,
                                   run_id=run_id, note=f"restored the partition as of version {version}")
        else:
            entry = restatement(published) if restatement is not None else None
        if entry is not None:
            self.record([entry])
        return replace(published, restatement=entry)

    def drop_partition(self, table: str, key: PartitionKey, *, run_id: str | None = None,
                       note: str | None = None) -> rs.Restatement | None:
        """Remove the partition ``key`` from ``table`` in one verified commit (remove actions only:
        the files stay on storage for time travel until ``vacuum``) and, for a logged table, record
        a restatement-log entry with action ``drop`` and the rows and totals it removed. Returns
        that entry; None when the partition holds no files (nothing committed). Every other
        partition is unchanged (``CommitVerificationFailed`` otherwise)."""
        partition = self.partition(table, key)
        if not partition:
            raise ValueError(f"{table} is not partitioned: drop_partition removes a partition, not a whole table")
        base = self.snapshot(table, partition)
        if not base.files:
            return None
        before = self._measure(table, partition, base)
        data_schema = _data_schema(_polars_schema(self.table(table)), partition)
        version = self._commit(table, [], partition, data_schema, {"dropped": partition, "note": note}, base)
        entry = rs.Restatement(table, partition.get(PERIOD_COLUMN), partition.get(SOURCE_COLUMN), "drop", before,
                               rs.PartitionState(version, 0, {}, {}, ()), version, run_id=run_id, note=note)
        if table_spec(table).logged:
            self.record([entry])
        return entry

    def vacuum(self, table: str, retain_hours: int) -> list[str]:
        """Delete the data files no table version of the last ``retain_hours`` needs (files a
        commit older than the window removed, e.g. a dropped or replaced partition's); returns
        their paths. Versions inside the window stay readable and restorable; older versions
        whose files are gone can no longer be read (time travel ends at the window). Paths are
        relative to the table root, like ``Snapshot.files``."""
        dt = self.table(table)
        if dt is None:
            return []
        prefix = self.uri(table).rstrip("/") + "/"
        return [p.removeprefix(prefix) for p in
                dt.vacuum(retention_hours=retain_hours, dry_run=False, enforce_retention_duration=False)]

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
                data_schema: pl.Schema, metadata: dict[str, object], base: Snapshot | None = None) -> int:
        """One commit replacing the partition; retried on a new snapshot when another writer won
        the race for the next version (other partitions), refused when it changed this partition.

        delta-rs does not retry on its own (``max_commit_retries=0``): each attempt re-reads the
        table, re-derives the removes from the partition's files in that version and commits exactly
        on top of it, or fails and comes back here. A lost race to create the table therefore ends
        as an ordinary partition overwrite of the winner's table."""
        marker = uuid.uuid4().hex
        custom = {k: json.dumps(v, default=str) for k, v in metadata.items()}
        custom["focus_commit"] = marker
        props = CommitProperties(custom_metadata=custom, max_commit_retries=0)
        full = pl.Schema({**dict(data_schema), **{k: pl.String for k in partition}})
        partition_by = list(partition) or None
        replaced = [(k, "=", v) for k, v in partition.items()] or None  # None: the whole table
        last_error: Exception | None = None
        for attempt in range(COMMIT_ATTEMPTS):
            if attempt:
                self.commit_retries += 1
                time.sleep(min(2.0, 0.05 * 2 ** min(attempt, 6)) * (0.5 + random.random()))
            dt = self.table(table)
            before = _files_by_partition(dt, tuple(partition)) if dt is not None else {}
            current = before.get(tuple(partition.values()), frozenset())
            if base is not None and current != base.files:
                raise ConcurrentPartitionWrite(
                    f"{table} partition {partition} was replaced by another writer (version "
                    f"{dt.version() if dt is not None else '-'}) since version {base.version} was read: nothing "
                    "committed; run again to apply this delivery on top of it")
            if dt is None:
                try:
                    create_table_with_add_actions(
                        self.uri(table), DeltaSchema.from_arrow(arrow_schema(full)), actions, mode="append",
                        partition_by=partition_by, storage_options=self.storage_options,
                        commit_properties=props,
                    )
                except Exception as exc:  # noqa: BLE001 - another writer created the table first: retry on it
                    if self.table(table) is None:
                        raise
                    last_error = exc
                    continue
                self._verify_commit(table, 0, marker, actions, partition, None)
                return 0
            version = dt.version() + 1  # no delta-rs retries: exactly on top of the version read
            merged = merge_schemas(pa.schema(dt.schema()), arrow_schema(full), table)
            try:
                dt.create_write_transaction(
                    actions, mode="overwrite", schema=merged, partition_by=partition_by,
                    partition_filters=replaced, commit_properties=props,
                )
            except CommitFailedError as exc:  # a concurrent commit won: re-read, re-check, retry
                last_error = exc
                continue
            self._verify_commit(table, version, marker, actions, partition, before)
            return version
        raise CommitFailedError(f"{table} partition {partition}: no commit after {COMMIT_ATTEMPTS} attempts "
                                f"(concurrent writers): {last_error}")

    def _verify_commit(self, table: str, version: int, marker: str, actions: list[AddAction],
                       partition: dict[str, str], before: dict[tuple, frozenset[str]] | None) -> None:
        """The log entry ``version`` is this writer's commit (its marker), adds exactly its files,
        removes exactly the partition's files of the version it was derived from (``before``: the
        files per partition of that version; None: it created the table), and leaves every other
        partition as in ``before``; the partition then holds exactly the new files. For an
        unpartitioned table the partition is the whole table."""
        entry = self.commit_actions(table, version)
        info = next((a["commitInfo"] for a in entry if "commitInfo" in a), {})
        problems = []
        if info.get("focus_commit") != marker:
            problems.append(f"version {version} is not this writer's commit ({info.get('operation')}, "
                            f"marker {info.get('focus_commit')!r}, expected {marker!r})")
        else:
            ours = {a.path for a in actions}
            adds = [a["add"] for a in entry if "add" in a]
            removes = [a["remove"] for a in entry if "remove" in a]
            if {a["path"] for a in adds} != ours:
                problems.append(f"adds {len(adds)} file(s), not this writer's {len(ours)}")
            key = tuple(partition.values())
            replaced = (before or {}).get(key, frozenset())
            removed = {r["path"] for r in removes}
            if removed != replaced:
                stray = sorted(removed - replaced) or sorted(replaced - removed)
                problems.append(f"removes {len(removed)} file(s), not the partition's {len(replaced)} of the version "
                                f"it was derived from, e.g. {stray[0]}")
            if before is None and (removes or version != 0):
                problems.append("a table creation that is not a plain version 0")
            if not problems:
                after = DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)
                now, before = _files_by_partition(after, tuple(partition)), before or {}
                if now.get(key, frozenset()) != ours:
                    problems.append(f"partition holds {len(now.get(key, ()))} file(s) after the commit, not this "
                                    f"writer's {len(ours)}")
                lost = sorted(k for k in set(before) | set(now) if k != key and before.get(k) != now.get(k))
                if lost:
                    problems.append(f"other partitions changed: {lost}")
        if problems:
            raise CommitVerificationFailed(
                f"{table} partition {partition}: commit verification failed: {'; '.join(problems)}\n"
                + self.describe_log(table))

    def commit_actions(self, table: str, version: int) -> list[dict]:
        """The actions of one log entry (``_delta_log/<version>.json``), as written."""
        relative = f"{table}/_delta_log/{version:020d}.json"
        if is_local(self.root):
            text = Path(_local_path(f"{self.root}/{relative}")).read_text("utf-8")
        else:
            stream = storage_handler(self.root, self.storage_options).open_input_stream(relative)
            try:
                text = stream.read().decode()
            finally:
                stream.close()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def describe_log(self, table: str, partition: dict[str, str] | None = None) -> str:
        """One line per log entry: operation, writer metadata, protocol/metaData actions and the
        files added / removed per partition (only entries touching ``partition`` if given):
        what to look at when a partition lost data."""
        dt = self.table(table)
        if dt is None:
            return f"{table}: no table"
        lines = [f"{table} log (versions 0..{dt.version()}):"]
        key = "/".join(partition.values()) if partition else None
        for v in range(dt.version() + 1):
            try:
                entry = self.commit_actions(table, v)
            except (OSError, ValueError) as exc:
                lines.append(f"  v{v}: unreadable ({exc})")
                continue
            info = next((a["commitInfo"] for a in entry if "commitInfo" in a), {})
            counts: dict[str, int] = {}
            for a in entry:
                kind = next(iter(a))
                if kind in ("add", "remove"):
                    pv = a[kind].get("partitionValues") or {}
                    name = f"{kind} {'/'.join(str(v) for v in pv.values()) or 'table'}"
                    counts[name] = counts.get(name, 0) + 1
                elif kind != "commitInfo":
                    counts[kind] = counts.get(kind, 0) + 1
            if key and not any(key in name for name in counts):
                continue
            meta = {k: _plain_json(info[k]) for k in ("period", "source", "delivery", "status") if k in info}
            lines.append(f"  v{v}: {info.get('operation')} {meta} {counts}")
        return "\n".join(lines)

    def remove_orphans(self, table: str, older_than_hours: int = ORPHAN_AGE_HOURS) -> list[str]:
        """Delete files no table version refers to (stages of killed writers) older than the age;
        files of every version in the log are kept (a full vacuum keeping all versions)."""
        dt = self.table(table)
        if dt is None:
            return []
        versions = sorted({int(h["version"]) for h in dt.history()})
        return dt.vacuum(retention_hours=older_than_hours, dry_run=False, enforce_retention_duration=False,
                         full=True, keep_versions=versions)

    def _file_exists(self, table: str, relative: str) -> bool:
        if is_local(self.root):
            return Path(_local_path(self.uri(table)), relative).exists()
        info = storage_handler(self.root, self.storage_options).get_file_info([f"{table}/{relative}"])
        import pyarrow.fs as pafs

        return info[0].type != pafs.FileType.NotFound

    def _remove_stage(self, table: str, stage: str) -> None:
        if is_local(self.root):
            shutil.rmtree(_local_path(f"{self.uri(table)}/{stage}"), ignore_errors=True)
        else:  # object stores: deltalake's own object store, same options as the tables
            try:
                storage_handler(self.root, self.storage_options).delete_dir(f"{table}/{stage}")
            except FileNotFoundError:
                pass


FINGERPRINTS = "_fingerprints"  # beside a table's data: hidden from Delta readers and vacuum (leading _)


def _polars_schema(dt: DeltaTable) -> pl.Schema:
    return pl.DataFrame(pa.schema(dt.schema()).empty_table()).schema


def _data_schema(schema: pl.Schema, partition: dict[str, str]) -> pl.Schema:
    """A table's columns without the partition columns (Delta partition values, not file columns)."""
    return pl.Schema({k: v for k, v in schema.items() if k not in partition})


def _fingerprint_path(table: str, partition: dict[str, str]) -> str:
    return f"{table}/{FINGERPRINTS}/{_partition_dir(partition) or 'table/'}".rstrip("/") + ".json"


def _partition_dir(partition: dict[str, str]) -> str:
    """``x_BillingPeriod=2024-01/x_Source=aws/`` (Hive style, as Delta writers lay them out); ""
    for an unpartitioned table."""
    return "".join(f"{k}={v}/" for k, v in partition.items())


def _files_digest(files: frozenset[str]) -> str:
    return hashlib.sha256("\n".join(sorted(files)).encode()).hexdigest()


def _partition_files(dt: DeltaTable, partition: dict[str, str]) -> frozenset[str]:
    adds = dt.get_add_actions(flatten=True)
    cols = {k: adds.column(f"partition.{k}").to_pylist() for k in partition if f"partition.{k}" in adds.schema.names}
    if len(cols) != len(partition):
        return frozenset()
    paths = adds.column("path").to_pylist()
    return frozenset(p for i, p in enumerate(paths) if all(cols[k][i] == v for k, v in partition.items()))


def _files_by_partition(dt: DeltaTable, columns: tuple[str, ...]) -> dict[tuple, frozenset[str]]:
    """The data files of each partition (values in the order of ``columns``; ``()`` holds every
    file of an unpartitioned table)."""
    adds = dt.get_add_actions(flatten=True)
    names = adds.schema.names
    if not all(f"partition.{k}" in names for k in columns):
        return {}
    cols = [adds.column(f"partition.{k}").to_pylist() for k in columns]
    out: dict[tuple, set[str]] = {}
    for i, path in enumerate(adds.column("path").to_pylist()):
        out.setdefault(tuple(c[i] for c in cols), set()).add(path)
    return {k: frozenset(v) for k, v in out.items()}


def _plain_json(value: object) -> object:
    """Commit metadata as written by ``_commit`` (values JSON-encoded), decoded where possible."""
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


def arrow_schema(schema: pl.Schema) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow().schema


def _plain(t: pa.DataType) -> pa.DataType:
    """Compare types without Arrow's large/view string and list variants, at any depth (Delta has
    one string type and one array type: a table written as ``list<struct<string>>`` reads back as
    ``large_list<struct<large_string>>``), field nullability aside."""
    if t in (pa.large_string(), pa.string_view()):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list(t) or pa.types.is_list_view(t):
        return pa.list_(_plain(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_plain(t.key_type), _plain(t.item_type))
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

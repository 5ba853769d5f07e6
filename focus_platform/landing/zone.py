"""The landing zone: configured export sources and the deliveries found under them.

A landing zone is a tree of provider deliveries under one root: a local directory by default,
``s3://bucket/prefix`` or ``gs://bucket/prefix`` (``landing.stores``). Each configured export source
(name, provider format, location under the root, optional export streams) is one dynamic partition
of the pipeline. For every source, discovery finds the deliveries per billing period and keeps the
newest one: by manifest (AWS assemblyId / CUR 2.0 metadata / Azure export run), else by object time.

Object keys are checked before use: a key that could name something outside its prefix (``..``)
refuses its billing period, as does a manifest naming a missing or short object.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".gz", ".jsonl", ".jsonl.gz", ".ndjson")
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
PERIOD_FOLDER = re.compile(r"^(\d{4})(\d{2})01-\d{8}$")  # legacy CUR 20180801-20180901
CUR2_PERIOD_FOLDER = re.compile(r"^BILLING_PERIOD=(\d{4})-(\d{2})$")
MONTH_FOLDER = re.compile(r"^(\d{4})-(\d{2})$")
AZURE_MANIFEST = "manifest.json"  # Cost Management exports v2, one per export run


class DeliveryError(ValueError):
    """A delivery that cannot be used as a whole (e.g. its manifest names a missing file)."""

    def __init__(self, message: str, period: str | None = None):
        super().__init__(message)
        self.period = period  # the billing period refused, when known


class ObjectMissing(DeliveryError):
    """An object listed a moment ago is gone (deleted or being replaced)."""

    def __init__(self, key: str, period: str | None = None):
        super().__init__(f"object {key!r} is not in the landing zone (deleted or replaced since it was listed)",
                         period)
        self.key = key


@dataclass(frozen=True)
class ExportSource:
    name: str
    format: str  # aws-cur (legacy CUR and CUR 2.0 are told apart per file)
    location: str  # folder under the landing root
    streams: tuple[str, ...] = ()  # export streams that together make one delivery (location/<stream>/...)

    def __post_init__(self):
        if not SOURCE_NAME.match(self.name):
            raise ValueError(f"export source name {self.name!r}: use letters, digits, '-' and '_' only")
        for stream in self.streams:
            if not SOURCE_NAME.match(stream):
                raise ValueError(f"export source {self.name}: stream {stream!r}: use letters, digits, '-' and '_' only")
        if len(set(self.streams)) != len(self.streams):
            raise ValueError(f"export source {self.name}: streams must be unique")


@dataclass(frozen=True)
class LandedObject:
    key: str  # path relative to the landing root, '/'-separated
    size: int
    modified: datetime
    etag: str = ""  # the store's version tag (S3/GCS ETag; local: mtime and size)


@dataclass
class Delivery:
    source: str
    billing_period: str  # YYYY-MM
    delivery_id: str  # assemblyId / CUR 2.0 execution id / Azure run id / digest of the objects
    files: list[str]  # keys relative to the landing root
    delivered_at: datetime
    manifest: str | None = None
    manifest_columns: list[str] = field(default_factory=list)
    objects: dict[str, LandedObject] = field(default_factory=dict)  # key → listing (data files and manifests)
    stream_of: dict[str, str] = field(default_factory=dict)  # file key → export stream (multi-stream sources)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the delivery changes: a new delivery id, or any of its objects (etag, size)
        rewritten in place under the same manifest."""
        h = hashlib.sha256(self.delivery_id.encode())
        for key in sorted(self.objects):
            o = self.objects[key]
            h.update(f"\n{o.key}|{o.size}|{o.etag}".encode())
        return h.hexdigest()[:16]


def unsafe_key(key: str) -> str | None:
    """Why an object key may not be used (it could name something outside its prefix), else None."""
    parts = key.replace("\\", "/").split("/")
    if key.startswith("/") or any(p in ("..", ".") for p in parts):
        return f"object key {key!r} escapes its prefix ('..', '.' or a leading '/')"
    if "\x00" in key:
        return f"object key {key!r} contains a NUL character"
    return None


def check_key(key: str) -> str:
    why = unsafe_key(key)
    if why:
        raise DeliveryError(why + ": refused")
    return key


class LocalStore:
    """Landing zone objects on the local filesystem (the interface every store implements:
    ``list`` by prefix, ``stat``, ``exists``, ``read_bytes``, ``open``, ``uri`` and
    ``storage_options`` for Polars / deltalake)."""

    storage_options: dict[str, str] | None = None

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root_uri = str(self.root)

    def list(self, prefix: str) -> list[LandedObject]:
        base = self._safe(prefix)
        if not base.exists():
            return []
        out = []
        for dirpath, _, files in os.walk(base):
            for f in files:
                p = Path(dirpath) / f
                out.append(self._object(p, p.stat()))
        return sorted(out, key=lambda o: o.key)

    def stat(self, key: str) -> LandedObject | None:
        p = self._safe(key)
        try:
            return self._object(p, p.stat()) if p.is_file() else None
        except FileNotFoundError:
            return None

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._safe(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return self._safe(key).open("rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc

    def uri(self, key: str) -> str:
        return str(self._safe(key))

    def exists(self, key: str) -> bool:
        return self._safe(key).exists()

    def _object(self, p: Path, st: os.stat_result) -> LandedObject:
        return LandedObject(p.relative_to(self.root).as_posix(), st.st_size,
                            datetime.fromtimestamp(st.st_mtime, timezone.utc), f"{st.st_mtime_ns:x}-{st.st_size:x}")

    def _safe(self, key: str) -> Path:
        p = (self.root / key.lstrip("/")).resolve()
        if p != self.root and self.root not in p.parents:
            raise DeliveryError(f"object key {key!r} escapes the landing zone root")
        return p


def _period_of_folder(name: str) -> str | None:
    for pattern in (PERIOD_FOLDER, CUR2_PERIOD_FOLDER, MONTH_FOLDER):
        m = pattern.match(name)
        if m:
            return f"{m.group(1)}-{m.group(2)}"
    return None


def _period_of_key(key: str) -> str | None:
    """The billing period of the innermost period folder of a key (before any '..')."""
    parts = key.split("/")[:-1]
    if ".." in parts:
        parts = parts[:parts.index("..")]
    return next((p for p in map(_period_of_folder, reversed(parts)) if p), None)


def _is_data(key: str) -> bool:
    return key.lower().endswith(DATA_SUFFIXES) and not key.lower().endswith(".json")


def _is_manifest(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return name.endswith("-Manifest.json") or name == AZURE_MANIFEST


def _digest(objects: list[LandedObject]) -> str:
    h = hashlib.sha256()
    for o in sorted(objects, key=lambda o: o.key):
        h.update(f"{o.key}|{o.size}|{o.modified.isoformat()}|{o.etag}\n".encode())
    return "sha256-" + h.hexdigest()[:16]


def discover_deliveries(store, source: ExportSource,
                        refused: dict[str, DeliveryError] | None = None) -> dict[str, Delivery]:
    """The newest delivery per billing period of one export source. With ``refused``, a refused
    delivery refuses its billing period only (recorded there); without, it raises.

    A source with ``streams`` (e.g. Azure actual + amortized cost exports) delivers a period only
    when every stream has delivered it: the newest delivery of each stream, merged into one."""
    if source.streams:
        return _discover_streams(store, source, refused)
    return _discover(store, source, refused)


def _discover_streams(store, source: ExportSource, refused: dict[str, DeliveryError] | None) -> dict[str, Delivery]:
    per_stream: dict[str, dict[str, Delivery]] = {}
    refused_periods: dict[str, DeliveryError] = {}
    base = source.location.strip("/")
    for stream in source.streams:
        sub = ExportSource(source.name, source.format, f"{base}/{stream}" if base else stream)
        stream_refused: dict[str, DeliveryError] = {}
        per_stream[stream] = _discover(store, sub, stream_refused if refused is not None else None)
        for period, exc in stream_refused.items():
            refused_periods.setdefault(period, DeliveryError(f"stream {stream}: {exc}", period))
    periods = sorted(set().union(*per_stream.values()) | set(refused_periods))
    out: dict[str, Delivery] = {}
    for period in periods:
        if period in refused_periods:
            continue
        missing = [s for s in source.streams if period not in per_stream[s]]
        if missing:
            present = [s for s in source.streams if s not in missing]
            exc = DeliveryError(
                f"source {source.name}: billing period {period} has the {', '.join(present)} export but not the "
                f"{', '.join(missing)} export ({source.location}/{missing[0]}/…): a delivery needs every stream "
                f"({', '.join(source.streams)}); refused until it lands (the published version stays)", period)
            if refused is None:
                raise exc
            refused_periods[period] = exc
            continue
        parts = [per_stream[s][period] for s in source.streams]
        out[period] = Delivery(
            source.name, period, "+".join(f"{s}:{d.delivery_id}" for s, d in zip(source.streams, parts)),
            [f for d in parts for f in d.files], max(d.delivered_at for d in parts),
            next((d.manifest for d in parts if d.manifest), None),
            [c for d in parts for c in d.manifest_columns],
            {k: o for d in parts for k, o in d.objects.items()},
            {f: s for s, d in zip(source.streams, parts) for f in d.files})
    if refused is not None:
        refused.update(refused_periods)
    return out


def _discover(store, source: ExportSource, refused: dict[str, DeliveryError] | None) -> dict[str, Delivery]:
    listed = store.list(source.location)
    refused_periods: dict[str, DeliveryError] = {}
    objects = []
    for o in listed:
        why = unsafe_key(o.key)
        if why is None:
            objects.append(o)
            continue
        period = _period_of_key(o.key)
        exc = DeliveryError(f"source {source.name}: {why}: the delivery is refused (the published version stays)",
                            period)
        if refused is None or period is None:
            raise exc
        refused_periods[period] = exc
    manifests = [o for o in objects if _is_manifest(o.key)]
    by_period: dict[str, list[Delivery]] = {}
    manifest_folders = set()
    for m in manifests:
        try:
            delivery = _from_manifest(store, source, m, objects)
        except DeliveryError as exc:
            if refused is None or exc.period is None:
                raise
            refused_periods[exc.period] = exc
            manifest_folders.add(m.key.rsplit("/", 1)[0])
            continue
        if delivery is None:
            continue
        manifest_folders.add(m.key.rsplit("/", 1)[0])
        by_period.setdefault(delivery.billing_period, []).append(delivery)
    # Data without a manifest: each folder of data files is one delivery, its period from the path
    folders: dict[str, list[LandedObject]] = {}
    for o in objects:
        if _is_data(o.key):
            folders.setdefault(o.key.rsplit("/", 1)[0], []).append(o)
    for folder, files in folders.items():
        if _covered_by_manifest(folder, manifest_folders):
            continue
        period = _period_of_key(folder + "/x")
        if period is None:
            raise DeliveryError(
                f"source {source.name}: files in {folder!r} are not in a billing-period folder "
                f"(yyyymmdd-yyyymmdd, BILLING_PERIOD=YYYY-MM or YYYY-MM)")
        by_period.setdefault(period, []).append(Delivery(
            source.name, period, _digest(files), [f.key for f in files],
            max(f.modified for f in files), objects={f.key: f for f in files}))
    if refused is not None:
        refused.update(refused_periods)
    return {p: max(ds, key=lambda d: (d.delivered_at, d.delivery_id)) for p, ds in sorted(by_period.items())
            if p not in refused_periods}


def _covered_by_manifest(folder: str, manifest_folders: set[str]) -> bool:
    """Data under a folder that has a manifest (or under its assembly / data sub-folders)."""
    for mf in manifest_folders:
        if folder == mf or folder.startswith(mf + "/"):
            return True
        # CUR 2.0: metadata/BILLING_PERIOD=... manifest describes data/BILLING_PERIOD=...
        if "/metadata/" in mf and folder == mf.replace("/metadata/", "/data/"):
            return True
    return False


def _parse_time(text: object) -> datetime | None:
    if not text:
        return None
    t = str(text).strip().replace("Z", "+00:00")
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", t)  # Azure writes 7 fractional digits
    if m:
        t = f"{m.group(1)}.{m.group(2)[:6]}{m.group(3)}"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _from_manifest(store, source: ExportSource, obj: LandedObject,
                   objects: list[LandedObject]) -> Delivery | None:
    folder = obj.key.rsplit("/", 1)[0]
    try:
        manifest = json.loads(store.read_bytes(obj.key))
    except ObjectMissing as exc:
        raise DeliveryError(f"manifest {obj.key}: {exc}", _period_of_key(obj.key)) from exc
    except (ValueError, OSError) as exc:
        raise DeliveryError(f"manifest {obj.key}: not readable JSON ({exc})", _period_of_key(obj.key)) from exc
    if not isinstance(manifest, dict):
        raise DeliveryError(f"manifest {obj.key}: not a JSON object", _period_of_key(obj.key))
    by_key = {o.key: o for o in objects}
    delivered_at = obj.modified
    sizes: dict[str, int] = {}
    if "assemblyId" in manifest:  # legacy CUR
        if folder.rsplit("/", 1)[-1] == manifest["assemblyId"]:
            return None  # the copy inside the assembly folder; the period-level manifest counts
        start = manifest.get("billingPeriod", {}).get("start", "")
        period = f"{start[:4]}-{start[4:6]}" if start else _period_of_folder(folder.rsplit("/", 1)[-1])
        report_keys = manifest.get("reportKeys", [])
        delivery_id = manifest["assemblyId"]
        columns = [f"{c.get('category')}/{c.get('name')}" for c in manifest.get("columns", [])]
    elif "dataFiles" in manifest or "executionId" in manifest:  # CUR 2.0 Data Exports
        period = _period_of_folder(folder.rsplit("/", 1)[-1]) or str(
            manifest.get("billingPeriod", {}).get("start", ""))[:7]
        report_keys = manifest.get("dataFiles", [])
        delivery_id = str(manifest.get("executionId") or _digest([obj]))
        columns = [c.get("name") for c in manifest.get("columns") or manifest.get("schema") or [] if isinstance(c, dict)]
    elif "blobs" in manifest:  # Azure Cost Management exports (v2): <export>/<yyyymmdd-yyyymmdd>/<runId>/
        run = manifest.get("runInfo") or {}
        start = str(run.get("startDate") or "")
        period = _period_of_key(obj.key) or (start[:7] if re.match(r"^\d{4}-\d{2}", start) else None)
        blobs = [b for b in manifest.get("blobs") or [] if isinstance(b, dict)]
        report_keys = [str(b.get("blobName") or b.get("blobLink") or "") for b in blobs]
        sizes = {k: int(b["byteCount"]) for k, b in zip(report_keys, blobs) if str(b.get("byteCount", "")).isdigit()}
        delivery_id = str(run.get("runId") or folder.rsplit("/", 1)[-1])
        delivered_at = _parse_time(run.get("submittedTime")) or obj.modified
        columns = []
        if manifest.get("blobCount") is not None and int(manifest["blobCount"]) != len(blobs):
            raise DeliveryError(f"manifest {obj.key}: blobCount {manifest['blobCount']} but {len(blobs)} blobs listed: "
                                "a partial export run; refused (the published version stays)", period)
    else:
        raise DeliveryError(f"manifest {obj.key}: neither a CUR (assemblyId), a CUR 2.0 (dataFiles) nor an "
                            "Azure export (blobs) manifest", _period_of_key(obj.key))
    if not period:
        raise DeliveryError(f"manifest {obj.key}: no billing period (path or manifest)")
    try:
        files = [_resolve(k, source.location, set(by_key), obj.key) for k in report_keys]
    except DeliveryError as exc:
        raise DeliveryError(str(exc), period) from exc
    if not files:
        raise DeliveryError(f"manifest {obj.key}: lists no data files", period)
    for name, key in zip(report_keys, files):
        if name in sizes and by_key[key].size != sizes[name]:
            raise DeliveryError(
                f"manifest {obj.key}: {key} has {by_key[key].size} bytes, the manifest says {sizes[name]}: "
                "the object is partial (still being written?); the delivery is refused (the published version stays)",
                period)
    return Delivery(source.name, period, delivery_id, files, delivered_at, obj.key, columns,
                    {k: by_key[k] for k in [*files, obj.key]})


def _resolve(report_key: str, location: str, keys: set[str], manifest_key: str) -> str:
    """A manifest's object key (bucket-relative, or an s3:// URI) as a landing-zone key."""
    key = re.sub(r"^[a-z0-9]+://[^/]+/", "", report_key).lstrip("/")
    if not key or unsafe_key(key):
        raise DeliveryError(f"manifest {manifest_key}: file {report_key!r} escapes the landing zone")
    parts = key.split("/")
    # the key's tail under the source location, or under the manifest's own folder (Azure exports
    # name blobs by their full container path, or by a name relative to the run folder)
    for base in (location.strip("/"), manifest_key.rsplit("/", 1)[0] if "/" in manifest_key else ""):
        for i in range(len(parts)):
            candidate = "/".join([base] + parts[i:]) if base else "/".join(parts[i:])
            if candidate in keys:
                return candidate
    raise DeliveryError(f"manifest {manifest_key}: data file {report_key!r} is not in the landing zone; "
                        f"the delivery is refused (the previously published version stays)")

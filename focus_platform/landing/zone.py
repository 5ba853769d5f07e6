"""The landing zone: configured export sources and the deliveries found under them.

A landing zone is a tree of provider deliveries under one root (a local directory by default).
Each configured export source (name, provider format, location under the root) is one dynamic
partition of the pipeline. For every source, discovery finds the deliveries per billing period
and keeps the newest one: by manifest (AWS assemblyId / CUR 2.0 metadata), else by object time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".gz")
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
PERIOD_FOLDER = re.compile(r"^(\d{4})(\d{2})01-\d{8}$")  # legacy CUR 20180801-20180901
CUR2_PERIOD_FOLDER = re.compile(r"^BILLING_PERIOD=(\d{4})-(\d{2})$")
MONTH_FOLDER = re.compile(r"^(\d{4})-(\d{2})$")


class DeliveryError(ValueError):
    """A delivery that cannot be used as a whole (e.g. its manifest names a missing file)."""

    def __init__(self, message: str, period: str | None = None):
        super().__init__(message)
        self.period = period  # the billing period refused, when known


@dataclass(frozen=True)
class ExportSource:
    name: str
    format: str  # aws-cur (legacy CUR and CUR 2.0 are told apart per file)
    location: str  # folder under the landing root

    def __post_init__(self):
        if not SOURCE_NAME.match(self.name):
            raise ValueError(f"export source name {self.name!r}: use letters, digits, '-' and '_' only")


@dataclass(frozen=True)
class LandedObject:
    key: str  # path relative to the landing root, '/'-separated
    size: int
    modified: datetime
    etag: str = ""


@dataclass
class Delivery:
    source: str
    billing_period: str  # YYYY-MM
    delivery_id: str  # assemblyId / CUR 2.0 execution id / digest of the objects
    files: list[str]  # keys relative to the landing root
    delivered_at: datetime
    manifest: str | None = None
    manifest_columns: list[str] = field(default_factory=list)


class LocalStore:
    """Landing zone objects on the local filesystem."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def list(self, prefix: str) -> list[LandedObject]:
        base = self._safe(prefix)
        if not base.exists():
            return []
        out = []
        for dirpath, _, files in os.walk(base):
            for f in files:
                p = Path(dirpath) / f
                st = p.stat()
                out.append(LandedObject(p.relative_to(self.root).as_posix(), st.st_size,
                                        datetime.fromtimestamp(st.st_mtime, timezone.utc)))
        return sorted(out, key=lambda o: o.key)

    def read_bytes(self, key: str) -> bytes:
        return self._safe(key).read_bytes()

    def uri(self, key: str) -> str:
        return str(self._safe(key))

    def exists(self, key: str) -> bool:
        return self._safe(key).exists()

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


def _is_data(key: str) -> bool:
    return key.lower().endswith(DATA_SUFFIXES) and not key.lower().endswith(".json")


def _digest(objects: list[LandedObject]) -> str:
    h = hashlib.sha256()
    for o in sorted(objects, key=lambda o: o.key):
        h.update(f"{o.key}|{o.size}|{o.modified.isoformat()}|{o.etag}\n".encode())
    return "sha256-" + h.hexdigest()[:16]


def discover_deliveries(store: LocalStore, source: ExportSource,
                        refused: dict[str, DeliveryError] | None = None) -> dict[str, Delivery]:
    """The newest delivery per billing period of one export source. With ``refused``, a refused
    delivery refuses its billing period only (recorded there); without, it raises."""
    objects = store.list(source.location)
    manifests = [o for o in objects if o.key.endswith("-Manifest.json")]
    by_period: dict[str, list[Delivery]] = {}
    manifest_folders = set()
    refused_periods: dict[str, DeliveryError] = {}
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
        period = next((p for p in map(_period_of_folder, reversed(folder.split("/"))) if p), None)
        if period is None:
            raise DeliveryError(
                f"source {source.name}: files in {folder!r} are not in a billing-period folder "
                f"(yyyymmdd-yyyymmdd, BILLING_PERIOD=YYYY-MM or YYYY-MM)")
        by_period.setdefault(period, []).append(Delivery(
            source.name, period, _digest(files), [f.key for f in files],
            max(f.modified for f in files)))
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


def _from_manifest(store: LocalStore, source: ExportSource, obj: LandedObject,
                   objects: list[LandedObject]) -> Delivery | None:
    try:
        manifest = json.loads(store.read_bytes(obj.key))
    except (ValueError, OSError) as exc:
        raise DeliveryError(f"manifest {obj.key}: not readable JSON ({exc})") from exc
    keys = {o.key for o in objects}
    if "assemblyId" in manifest:  # legacy CUR
        folder = obj.key.rsplit("/", 1)[0]
        if folder.rsplit("/", 1)[-1] == manifest["assemblyId"]:
            return None  # the copy inside the assembly folder; the period-level manifest counts
        start = manifest.get("billingPeriod", {}).get("start", "")
        period = f"{start[:4]}-{start[4:6]}" if start else _period_of_folder(folder.rsplit("/", 1)[-1])
        report_keys = manifest.get("reportKeys", [])
        delivery_id = manifest["assemblyId"]
        columns = [f"{c.get('category')}/{c.get('name')}" for c in manifest.get("columns", [])]
    elif "dataFiles" in manifest or "executionId" in manifest:  # CUR 2.0 Data Exports
        folder = obj.key.rsplit("/", 1)[0]
        period = _period_of_folder(folder.rsplit("/", 1)[-1]) or str(
            manifest.get("billingPeriod", {}).get("start", ""))[:7]
        report_keys = manifest.get("dataFiles", [])
        delivery_id = str(manifest.get("executionId") or _digest([obj]))
        columns = [c.get("name") for c in manifest.get("columns") or manifest.get("schema") or [] if isinstance(c, dict)]
    else:
        raise DeliveryError(f"manifest {obj.key}: neither a CUR (assemblyId) nor a CUR 2.0 (dataFiles) manifest")
    try:
        files = [_resolve(k, source.location, keys, obj.key) for k in report_keys]
    except DeliveryError as exc:
        raise DeliveryError(str(exc), period) from exc
    if not files:
        raise DeliveryError(f"manifest {obj.key}: lists no data files")
    return Delivery(source.name, period, delivery_id, files, obj.modified, obj.key, columns)


def _resolve(report_key: str, location: str, keys: set[str], manifest_key: str) -> str:
    """A manifest's object key (bucket-relative, or an s3:// URI) as a landing-zone key."""
    key = re.sub(r"^[a-z0-9]+://[^/]+/", "", report_key).lstrip("/")
    if ".." in key.split("/"):
        raise DeliveryError(f"manifest {manifest_key}: file {report_key!r} escapes the landing zone")
    parts = key.split("/")
    for i in range(len(parts)):
        candidate = "/".join([location.strip("/")] + parts[i:]) if location.strip("/") else "/".join(parts[i:])
        if candidate in keys:
            return candidate
    raise DeliveryError(f"manifest {manifest_key}: data file {report_key!r} is not in the landing zone; "
                        f"the delivery is refused (the previously published version stays)")

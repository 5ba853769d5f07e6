"""The landing zone: configured export sources and the deliveries found under them.

A landing zone is a tree of provider deliveries under one root: a local directory by default,
``s3://bucket/prefix`` or ``gs://bucket/prefix`` (``landing.stores``). Each configured export source
(name, provider format, location under the root, optional export streams, optional declared billing
currency) is one dynamic partition of the pipeline.

``discover(store, source)`` looks at one export source and never raises for its problems: its
``Discovery`` holds the delivery of each billing period, the periods refused (each with one sentence
saying why and where) or why the source as a whole is refused. One source's problem never hides
another source's deliveries, one period's problem never another period's. ``discover_deliveries``
is the same discovery for callers that need every period: it raises the first refusal.

Which delivery of a billing period counts
-----------------------------------------
A delivery is a manifest with the files it names, or a folder of data files without one. Its billing
period comes from the manifest or from the innermost period folder of its path
(``yyyymmdd-yyyymmdd``, ``BILLING_PERIOD=YYYY-MM`` or ``YYYY-MM``). Deliveries of one period are
ordered only where the provider's layout says which supersedes which; such deliveries form one
*series* and its newest delivery counts (manifest time, else the newest object):

- legacy CUR: the period-level ``<report>/<yyyymmdd-yyyymmdd>/<report>-Manifest.json`` names the
  current assembly (``assemblyId``); every assembly folder beside it, and the manifest copy inside
  each, is superseded by it.
- CUR 2.0: ``metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json`` is rewritten at each refresh;
  an export that creates new files writes one manifest per execution (``executionId``) in
  sub-folders of the period folder: the newest manifest wins.
- Azure Cost Management exports: the runs of one export under one period folder
  (``<yyyymmdd-yyyymmdd>/<run id>/``, with or without ``manifest.json``): the newest run wins
  (``runInfo.submittedTime``, else object time). Generally, the run sub-folders of one period folder
  are one series; data files directly in a period folder are another.

Two deliveries of one period in different series are ambiguous: ``2023-11/`` beside
``20231101-20231201/``, ``BILLING_PERIOD=2023-11/`` beside ``2023-11/``, the manifests of two
reports, data directly in a period folder beside run folders in it. Nothing says which one is
current and taking either could lose or double-count a month, so the period is refused, naming every
copy (the published version stays); the other periods go on.

A source with ``streams`` (Azure actual + amortized exports, ``<location>/<stream>/…``) has each
stream discovered by the rules above; a period is delivered when every stream has it and their
period folders cover the same dates (a whole month: ``yyyymm01-<last day>``,
``yyyymm01-<first of next month>``, ``YYYY-MM`` or ``BILLING_PERIOD=YYYY-MM``). A period some stream
lacks, or whose streams' folders cover different dates, is refused, naming each stream's folder or
periods; the streams are never paired across periods.

Refused per period: an object key that could name something outside its prefix (``..``) inside the
period's folder, a manifest naming a missing object or an object shorter than it says, an unreadable
manifest, ambiguous copies, a folder named for a month that does not exist (``2023-13``, ``2023-00``),
a file that would be left unread (below). Refused as a whole source: its location missing (``location
… does not exist under <root>``; names are case-sensitive), a data file, manifest or archive outside
every billing-period folder (a stray file at the source root) or outside every stream folder, an
escaping key outside a period folder, a manifest without a billing period, a listing that fails. A
location that exists but holds nothing is no refusal: ``Discovery.note`` says "no deliveries yet".

Which files are read
--------------------
Inside a billing-period folder (and its run, assembly and execution folders) every file is a data
file (``DATA_SUFFIXES``), a manifest (``<report>-Manifest.json``, ``manifest.json``) or a companion
the provider writes beside them and nothing reads (``PROVIDER_COMPANIONS``: the Redshift files of a
legacy CUR). Any other file there — a ZIP (a legacy CUR can be delivered as ZIP; ZIP is not read), a
``.xlsx``, a note — refuses its period, naming it: loading the rest would lose its rows silently.
Outside every period folder nothing is a delivery: data files, manifests and archives
(``ARCHIVE_SUFFIXES``) there are stray deliveries and refuse the source; other files (a README,
``expected_totals.json``, AWS's ``aws-programmatic-access-test-object``) are left alone. Hidden files
(a name starting with '.': ``.DS_Store``, macOS ``._*`` copies, editor locks) are ignored everywhere,
as under ``invoices/``. A local landing zone follows symbolic links to files and folders that stay under
its root; a link leaving the root, a dangling link or a link to a folder holding it (a loop) is listed
as an object that cannot be read (``LandedObject.problem``) and refuses its period (or the source).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from focus_platform.periods import BillingPeriod, is_billing_period

DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".gz", ".jsonl", ".jsonl.gz", ".ndjson")
ARCHIVE_SUFFIXES = (".zip", ".7z", ".bz2", ".xz", ".zst", ".tar")  # deliveries packed in a form not read
PROVIDER_COMPANIONS = ("-RedshiftManifest.json", "-RedshiftCommands.sql")  # legacy CUR, beside its manifest
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
DATE_RANGE_FOLDER = re.compile(r"^(\d{4})(\d{2})(\d{2})-(\d{4})(\d{2})(\d{2})$")  # 20180801-20180901
CUR2_PERIOD_FOLDER = re.compile(r"^BILLING_PERIOD=(\d{4})-(\d{2})$")
MONTH_FOLDER = re.compile(r"^(\d{4})-(\d{2})$")
AZURE_MANIFEST = "manifest.json"  # Cost Management exports v2, one per export run
KEEPS_PUBLISHED = "refused (the published version stays)"


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
    billing_currency: str | None = None  # ISO 4217 code declared for exports without a currency column

    def __post_init__(self):
        if not SOURCE_NAME.match(self.name):
            raise ValueError(f"export source name {self.name!r}: use letters, digits, '-' and '_' only")
        if self.location and unsafe_key(self.location):
            raise ValueError(f"export source {self.name}: location {self.location!r} must be a folder under the "
                             "landing root (no '..', '.' or leading '/')")
        for stream in self.streams:
            if not SOURCE_NAME.match(stream):
                raise ValueError(f"export source {self.name}: stream {stream!r}: use letters, digits, '-' and '_' only")
        if len(set(self.streams)) != len(self.streams):
            raise ValueError(f"export source {self.name}: streams must be unique")
        if self.billing_currency is not None and not is_currency_code(self.billing_currency):
            raise ValueError(f"export source {self.name}: billing_currency {self.billing_currency!r} is not an "
                             "ISO 4217 currency code (three capital letters, e.g. USD, EUR, JPY)")


def is_currency_code(code: str) -> bool:
    from focus_platform.spec.rules import iso_currency_codes

    return bool(CURRENCY_CODE.match(code)) and code in iso_currency_codes()


@dataclass(frozen=True)
class LandedObject:
    key: str  # path relative to the landing root, '/'-separated
    size: int
    modified: datetime
    etag: str = ""  # the store's version tag (S3/GCS ETag; local: mtime and size)
    problem: str = ""  # why it cannot be read (a local link leaving the root, dangling or looping), else ""


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

    @property
    def origin(self) -> str:
        """Where it was found: its manifest, else the folder of its data files."""
        return self.manifest or self.files[0].rsplit("/", 1)[0]


@dataclass
class Discovery:
    """What discovery found under one export source: the delivery of each billing period, the
    periods refused (each with why), or why the source as a whole is refused (then nothing else)."""

    source: ExportSource
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    refused: dict[str, DeliveryError] = field(default_factory=dict)
    error: DeliveryError | None = None

    @property
    def note(self) -> str | None:
        """A sentence when nothing was found and nothing refused: the location is there but empty."""
        if self.error or self.deliveries or self.refused:
            return None
        return f"export source {self.source.name} ({_where(self.source)}): no deliveries yet (the location is empty)"

    @property
    def problems(self) -> list[str]:
        """One sentence per refusal: the source's, else each refused period's."""
        return [str(self.error)] if self.error else [str(self.refused[p]) for p in sorted(self.refused)]

    def delivery(self, period: str) -> Delivery | None:
        """The delivery of one billing period (None: nothing delivered); its refusal is raised."""
        if self.error:
            raise self.error
        if period in self.refused:
            raise self.refused[period]
        return self.deliveries.get(period)

    def every_delivery(self) -> dict[str, Delivery]:
        """Every period's delivery; the first refusal is raised."""
        if self.error:
            raise self.error
        if self.refused:
            raise self.refused[min(self.refused)]
        return self.deliveries


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
        """Every file under a prefix, through symbolic links that stay under the root (module docstring);
        a link that cannot be followed is listed with its ``problem``."""
        base = self._safe(prefix)
        if not base.is_dir():
            return []
        return sorted(self._walk(self.root / prefix.lstrip("/"), (base,)), key=lambda o: o.key)

    def folder_exists(self, prefix: str) -> bool:
        return self._safe(prefix).is_dir()

    def _walk(self, folder: Path, above: tuple[Path, ...]) -> Iterator[LandedObject]:
        """The files under ``folder`` (``above``: the real folders walked down to it, itself last)."""
        for entry in folder.iterdir():
            real = Path(os.path.realpath(entry))  # never raises: a loop of links resolves to a missing path
            problem = self._link_problem(entry, real, above) if entry.is_symlink() else None
            if problem:
                yield LandedObject(self._key(entry), 0, datetime.fromtimestamp(entry.lstat().st_mtime, timezone.utc),
                                   problem=problem)
            elif entry.is_dir():
                yield from self._walk(entry, (*above, real))
            else:
                yield self._object(entry, entry.stat())

    def _link_problem(self, link: Path, real: Path, above: tuple[Path, ...]) -> str | None:
        """Why a symbolic link is not followed, else None."""
        what = f"{self._key(link)} is a symbolic link to {os.readlink(link)}"
        if not real.exists():
            return f"{what}, which does not exist (a dangling link, or links pointing at each other)"
        if real != self.root and self.root not in real.parents:
            return f"{what}, outside the landing zone root {self.root}: not read (move or copy it under the root)"
        if any(real == folder or real in folder.parents for folder in above):
            return f"{what}, a folder holding it (a loop): not followed"
        return None

    def _key(self, p: Path) -> str:
        return p.relative_to(self.root).as_posix()

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
        return LandedObject(self._key(p), st.st_size,
                            datetime.fromtimestamp(st.st_mtime, timezone.utc), f"{st.st_mtime_ns:x}-{st.st_size:x}")

    def _safe(self, key: str) -> Path:
        p = (self.root / key.lstrip("/")).resolve()
        if p != self.root and self.root not in p.parents:
            raise DeliveryError(f"object key {key!r} escapes the landing zone root")
        return p


def _period_of_folder(name: str) -> str | None:
    m = DATE_RANGE_FOLDER.match(name)
    if m:
        return f"{m.group(1)}-{m.group(2)}" if m.group(3) == "01" else None
    for pattern in (CUR2_PERIOD_FOLDER, MONTH_FOLDER):
        m = pattern.match(name)
        if m:
            return f"{m.group(1)}-{m.group(2)}"
    return None


def _dates_covered(name: str) -> str:
    """What a billing-period folder covers: 'YYYY-MM' for a whole month (in any layout's spelling),
    else the folder's own date range."""
    m = DATE_RANGE_FOLDER.match(name)
    if not m:
        return _period_of_folder(name) or name
    try:
        period = BillingPeriod(int(m.group(1)), int(m.group(2)))
        end = date(int(m.group(4)), int(m.group(5)), int(m.group(6)))
    except ValueError:  # PeriodError included: no such month
        return name
    next_first = period.end.date()
    whole = m.group(3) == "01" and end in (next_first - timedelta(days=1), next_first)
    return str(period) if whole else name


def _period_folder_index(parts: list[str]) -> int | None:
    """The position of the innermost billing-period folder among a key's folders (before any '..')."""
    if ".." in parts:
        parts = parts[:parts.index("..")]
    return next((i for i in range(len(parts) - 1, -1, -1) if _period_of_folder(parts[i])), None)


def _period_of_key(key: str) -> str | None:
    """The billing period of the innermost period folder of a key."""
    folders = key.split("/")[:-1]
    i = _period_folder_index(folders)
    return None if i is None else _period_of_folder(folders[i])


def _series(delivery: Delivery) -> str:
    """The series a delivery belongs to (module docstring): its period folder's run sub-folders are
    one series; data directly in the period folder, or each manifest there, is a series of its own."""
    folder, name = (delivery.manifest.rsplit("/", 1) if delivery.manifest and "/" in delivery.manifest
                    else (delivery.origin, delivery.manifest or ""))
    parts = folder.split("/")
    i = _period_folder_index(parts)
    if i is not None and i < len(parts) - 1:
        return "/".join(parts[:i + 1]) + "/*"
    return f"{folder}|{name}"


def _period_folder_of(delivery: Delivery) -> str:
    """The billing-period folder a delivery was found in (its origin when it has none)."""
    parts = delivery.origin.split("/")
    i = _period_folder_index(parts if delivery.manifest is None else parts[:-1])
    return delivery.origin if i is None else "/".join(parts[:i + 1])


def _is_data(key: str) -> bool:
    return key.lower().endswith(DATA_SUFFIXES) and not key.lower().endswith(".json")


def _is_manifest(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return name.endswith("-Manifest.json") or name == AZURE_MANIFEST


def _is_hidden(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith(".")


def _is_delivery_like(key: str) -> bool:
    """A data file, a manifest or an archive: outside every period folder, a stray delivery."""
    return _is_data(key) or _is_manifest(key) or key.lower().endswith(ARCHIVE_SUFFIXES)


def _left_unread(key: str) -> str | None:
    """Why a file would be left unread where that loses data (module docstring), else None: inside a
    billing-period folder anything but data, a manifest or a provider companion; outside, an archive."""
    if _is_data(key) or _is_manifest(key) or key.endswith(PROVIDER_COMPANIONS):
        return None
    if _period_of_key(key) is None and not key.lower().endswith(ARCHIVE_SUFFIXES):
        return None  # not part of any delivery (a README, expected totals, the AWS access test object)
    return (f"{key} would be left unread: not a data file ({', '.join(DATA_SUFFIXES)}) nor a manifest "
            "(<report>-Manifest.json, manifest.json); ZIP and other archives are not read (a legacy CUR "
            "delivered as ZIP: unzip it in place)")


def _digest(objects: list[LandedObject]) -> str:
    h = hashlib.sha256()
    for o in sorted(objects, key=lambda o: o.key):
        h.update(f"{o.key}|{o.size}|{o.modified.isoformat()}|{o.etag}\n".encode())
    return "sha256-" + h.hexdigest()[:16]


def _recency(delivery: Delivery) -> tuple[datetime, str]:
    return delivery.delivered_at, delivery.delivery_id


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------
def discover(store, source: ExportSource) -> Discovery:
    """The deliveries of one export source and its refusals (module docstring); never raises for a
    problem of this source or its objects."""
    try:
        objects = store.list(source.location)
        if not objects and not store.folder_exists(source.location):
            raise DeliveryError(f"location {source.location} does not exist under {store.root_uri} (names are "
                                "case-sensitive: check sources.json)")
        found, refused = (_discover_streams(store, source, objects) if source.streams
                          else _discover_objects(store, source, objects))
    except (DeliveryError, OSError) as exc:
        return Discovery(source, error=DeliveryError(f"export source {source.name} ({_where(source)}): {exc}; the "
                                                     f"whole source is {KEEPS_PUBLISHED}"))
    return Discovery(source, found, {p: DeliveryError(f"export source {source.name}, billing period {p}: {exc}", p)
                                     for p, exc in refused.items()})


def _where(source: ExportSource) -> str:
    return f"{source.location}/" if source.location else "the landing root"


def discover_deliveries(store, source: ExportSource) -> dict[str, Delivery]:
    """The delivery of every billing period of one export source; the first refusal is raised."""
    return discover(store, source).every_delivery()


Found = tuple[dict[str, Delivery], dict[str, str]]  # deliveries and refusals (why) per billing period


def _discover_streams(store, source: ExportSource, objects: list[LandedObject]) -> Found:
    base = source.location.strip("/")
    prefixes = {stream: f"{base}/{stream}/" if base else f"{stream}/" for stream in source.streams}
    stray = [o for o in objects if (o.problem or _is_delivery_like(o.key)) and not _is_hidden(o.key)
             and not any(o.key.startswith(p) for p in prefixes.values())]
    if stray:
        raise DeliveryError(stray[0].problem or f"{stray[0].key} is outside the export streams' folders "
                            f"({', '.join(prefixes.values())}): a stray file (move it into its stream's folder or "
                            "remove it)")
    per_stream: dict[str, dict[str, Delivery]] = {}
    refused: dict[str, str] = {}
    for stream, prefix in prefixes.items():
        sub = ExportSource(source.name, source.format, prefix.rstrip("/"))
        try:
            per_stream[stream], stream_refused = _discover_objects(
                store, sub, [o for o in objects if o.key.startswith(prefix)])
        except DeliveryError as exc:
            raise DeliveryError(f"stream {stream}: {exc}") from exc
        for period, why in stream_refused.items():
            refused.setdefault(period, f"stream {stream}: {why}")
    out: dict[str, Delivery] = {}
    for period in sorted(set().union(*per_stream.values()) - set(refused)):
        why = _unpaired(source, period, per_stream, prefixes)
        if why:
            refused[period] = why
            continue
        parts = [per_stream[s][period] for s in source.streams]
        out[period] = Delivery(
            source.name, period, "+".join(f"{s}:{d.delivery_id}" for s, d in zip(source.streams, parts)),
            [f for d in parts for f in d.files], max(d.delivered_at for d in parts),
            next((d.manifest for d in parts if d.manifest), None),
            [c for d in parts for c in d.manifest_columns],
            {k: o for d in parts for k, o in d.objects.items()},
            {f: s for s, d in zip(source.streams, parts) for f in d.files})
    return out, refused


def _unpaired(source: ExportSource, period: str, per_stream: dict[str, dict[str, Delivery]],
              prefixes: dict[str, str]) -> str | None:
    """Why the streams' deliveries of a period cannot make one delivery (None: they can)."""
    missing = [s for s in source.streams if period not in per_stream[s]]
    if missing:
        present = [f"the {s} export ({_period_folder_of(per_stream[s][period])})"
                   for s in source.streams if s not in missing]
        holds = [f"{prefixes[s]} holds {', '.join(sorted(per_stream[s])) or 'no billing period'}" for s in missing]
        return (f"{_names(present)} delivered it but not the {', '.join(missing)} export ({'; '.join(holds)}): "
                f"a delivery needs every stream ({', '.join(source.streams)}); {KEEPS_PUBLISHED} until it lands")
    folders = {s: _period_folder_of(per_stream[s][period]) for s in source.streams}
    if len({_dates_covered(f.rsplit("/", 1)[-1]) for f in folders.values()}) > 1:
        return (f"the streams' folders cover different dates ({_names([f'{s}: {f}' for s, f in folders.items()])}): "
                f"not paired; {KEEPS_PUBLISHED}")
    return None


def _discover_objects(store, source: ExportSource, listed: list[LandedObject]) -> Found:
    refused: dict[str, str] = {}
    objects = []
    for o in listed:
        if _is_hidden(o.key):
            continue
        why = unsafe_key(o.key) or o.problem or _left_unread(o.key)
        if not why:
            objects.append(o)
            continue
        period = _period_of_key(f"{o.key}/x" if o.problem else o.key)  # a link may be the period folder itself
        if period is None:
            raise DeliveryError(why)
        refused.setdefault(period, f"{why}: the delivery is {KEEPS_PUBLISHED}")
    candidates: dict[str, list[Delivery]] = {}
    manifest_folders = set()
    for m in (o for o in objects if _is_manifest(o.key)):
        try:
            delivery = _manifest_delivery(store, source, m, objects)
        except DeliveryError as exc:
            if exc.period is None:
                raise
            refused.setdefault(exc.period, str(exc))
            manifest_folders.add(m.key.rsplit("/", 1)[0])
            continue
        if delivery is None:
            continue
        manifest_folders.add(m.key.rsplit("/", 1)[0])
        candidates.setdefault(delivery.billing_period, []).append(delivery)
    # Data without a manifest: each folder of data files is one delivery, its period from the path
    folders: dict[str, list[LandedObject]] = {}
    for o in objects:
        if _is_data(o.key):
            folders.setdefault(o.key.rsplit("/", 1)[0] if "/" in o.key else "", []).append(o)
    for folder, files in folders.items():
        if _covered_by_manifest(folder, manifest_folders):
            continue
        period = _period_of_key(folder + "/x")
        if period is None:
            raise DeliveryError(
                f"{files[0].key} is not in a billing-period folder (yyyymmdd-yyyymmdd, BILLING_PERIOD=YYYY-MM or "
                "YYYY-MM): a stray file (move it into its period's folder or remove it)")
        candidates.setdefault(period, []).append(Delivery(
            source.name, period, _digest(files), [f.key for f in files],
            max(f.modified for f in files), objects={f.key: f for f in files}))
    found = {}
    for period, deliveries in sorted(candidates.items()):
        if period in refused:
            continue
        if not is_billing_period(period):
            refused[period] = (f"{_names(sorted({_period_folder_of(d) for d in deliveries}))}: named for month "
                               f"{period[5:]}, which does not exist (months are 01 to 12): not a billing period, "
                               "refused; rename the folder")
            continue
        newest = _newest_of_each_series(deliveries)
        if len(newest) > 1:
            refused[period] = (f"delivered {len(newest)} times, in {_names(sorted(d.origin for d in newest))}, and "
                               "no manifest or run order says which one is current: ambiguous, "
                               f"{KEEPS_PUBLISHED}; remove the copies that are not current")
        else:
            found[period] = newest[0]
    return found, refused


def _newest_of_each_series(deliveries: list[Delivery]) -> list[Delivery]:
    series: dict[str, list[Delivery]] = {}
    for d in deliveries:
        series.setdefault(_series(d), []).append(d)
    return [max(ds, key=_recency) for ds in series.values()]


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


def _manifest_delivery(store, source: ExportSource, obj: LandedObject,
                       objects: list[LandedObject]) -> Delivery | None:
    """The delivery a manifest describes; a manifest of unexpected shape (a field of another type,
    a count that is not a number) refuses its period like any other bad manifest."""
    try:
        return _from_manifest(store, source, obj, objects)
    except DeliveryError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DeliveryError(f"manifest {obj.key}: unexpected content ({type(exc).__name__}: {exc}); the delivery is "
                            f"{KEEPS_PUBLISHED}", _period_of_key(obj.key)) from exc


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
        period = _period_of_key(obj.key) or (start[:7] if MONTH_FOLDER.match(start[:7]) else None)
        blobs = [b for b in manifest.get("blobs") or [] if isinstance(b, dict)]
        report_keys = [str(b.get("blobName") or b.get("blobLink") or "") for b in blobs]
        sizes = {k: int(b["byteCount"]) for k, b in zip(report_keys, blobs) if str(b.get("byteCount", "")).isdigit()}
        delivery_id = str(run.get("runId") or folder.rsplit("/", 1)[-1])
        delivered_at = _parse_time(run.get("submittedTime")) or obj.modified
        columns = []
        if manifest.get("blobCount") is not None and int(manifest["blobCount"]) != len(blobs):
            raise DeliveryError(f"manifest {obj.key}: blobCount {manifest['blobCount']} but {len(blobs)} blobs listed: "
                                f"a partial export run; {KEEPS_PUBLISHED}", period)
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
                f"the object is partial (still being written?); the delivery is {KEEPS_PUBLISHED}",
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
                        f"the delivery is {KEEPS_PUBLISHED}")

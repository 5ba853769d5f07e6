"""Export-source configuration (``sources.json`` at the landing root, or a file named explicitly) and
the settings read from the environment.

```json
{"sources": [
  {"name": "aws-main", "format": "aws-cur", "location": "cur/aws-main"},
  {"name": "azure-ea", "format": "azure-cost-details", "location": "azure/ea", "streams": ["actual", "amortized"]},
  {"name": "oci", "format": "oci-cost", "location": "oci", "billing_currency": "EUR"}
]}
```

Per source: ``name`` (letters, digits, '-', '_'; unique) and ``format`` (a registered format) are
required; ``location`` is the folder under the landing root (default: the name; no two sources'
folders overlap, so no object is read by two sources); ``streams``: export streams that together
make one delivery, in folders ``<location>/<stream>/``; ``billing_currency``: the ISO 4217 code the
source bills in (``spec/iso4217.txt``), declared for exports that carry no currency column; the
pipeline passes it to ``Lineage.billing_currency``, used only where a row has no currency and
recorded per row. Any other key is refused (a misspelt key would otherwise be ignored silently).

Every problem is one ``SourcesFileError`` sentence naming the file and the entry
(``sources[2] (azure-ea)``): not valid JSON (with line and column), a missing or mistyped key, an
unknown format, an invalid name, location, stream or currency, a name used twice, overlapping
locations.

Settings (``SettingError`` names the variable, its value and what is allowed):
``FOCUS_LANDING_ROOT`` / ``FOCUS_WAREHOUSE_ROOT``: a folder, ``s3://bucket/prefix`` or
``gs://bucket/prefix`` (anything else that starts like a URL, e.g. ``s3:/bucket``, is refused, not
taken as a local folder); ``FOCUS_MAX_DROP_SHARE``: a number from 0 to 1 (the re-delivery guard).
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path

from focus_platform.landing.zone import ExportSource, ObjectMissing
from focus_platform.settings import SettingError
from focus_platform.sources import FORMATS
from focus_platform.warehouse.storage import scheme

SOURCES_FILE = "sources.json"
ROOT_SCHEMES = {"": "a folder", "s3": "s3://bucket/prefix", "gs": "gs://bucket/prefix"}
# a URL scheme (two letters or more: C:\ is a drive) not followed by '//' (file:///x, s3://b are URLs)
MALFORMED_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(?!//)")
# key → (JSON type, what it must be)
ENTRY_KEYS: dict[str, tuple[type, str]] = {
    "name": (str, "a string"), "format": (str, "a string"), "location": (str, "a string"),
    "streams": (list, "a list of folder names"), "billing_currency": (str, "a string (an ISO 4217 code)"),
}
REQUIRED_KEYS = ("name", "format")


class SourcesFileError(ValueError):
    """A ``sources.json`` that cannot be used; the message names the file and the entry."""


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
def checked_root(name: str, value: str) -> str:
    """A landing or warehouse root (``name``: the variable or field it comes from): a folder, s3:// or gs://.
    A value that starts like a URL but is not ``scheme://…`` (``s3:/bucket``, ``gs:bucket``) is refused,
    not taken as a local folder of that name."""
    kind = scheme(value)
    allowed = f"allowed: {', '.join(ROOT_SCHEMES.values())}"
    malformed = MALFORMED_URL.match(value) if not kind else None
    if malformed:
        raise SettingError(f"{name}={value!r}: starts like a URL ({malformed.group(1)}:) without '//' after the "
                           f"scheme; {allowed} (a local folder whose name holds ':': ./{value})")
    if kind not in ROOT_SCHEMES:
        raise SettingError(f"{name}={value!r}: unsupported scheme {kind}://; {allowed}")
    if kind and not value.split("://", 1)[1].split("/", 1)[0]:
        raise SettingError(f"{name}={value!r}: no bucket; {allowed}")
    return value


def root_setting(variable: str, default: str) -> str:
    """A landing or warehouse root from the environment, else ``default``."""
    return checked_root(variable, os.environ.get(variable) or default)


def share_setting(variable: str, default: float) -> float:
    """A share from the environment (else ``default``): a number from 0 to 1."""
    text = os.environ.get(variable)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingError(f"{variable}={text!r}: not a number; allowed: 0 to 1") from None
    if not 0 <= value <= 1:  # NaN fails too
        raise SettingError(f"{variable}={text!r}: out of range; allowed: 0 to 1")
    return value


def default_landing_root() -> str:
    return root_setting("FOCUS_LANDING_ROOT", str(resources.files("focus_platform") / "sample_data" / "landing"))


# ---------------------------------------------------------------------------------------------
# sources.json
# ---------------------------------------------------------------------------------------------
def load_sources(root: str, sources_file: str | None = None, store=None) -> list[ExportSource]:
    """The configured export sources: ``sources_file`` (a local path), else ``sources.json`` at the
    landing root (read through ``store`` when the root is an object store)."""
    label, data = _read_sources_file(root, sources_file, store)
    entries = _entries(label, data)
    sources = [_source(f"{label}: sources[{i}]", entry) for i, entry in enumerate(entries)]
    seen: dict[str, int] = {}
    for i, s in enumerate(sources):
        if s.name in seen:
            raise SourcesFileError(f"{label}: sources[{i}]: export source name {s.name!r} is already used by "
                                   f"sources[{seen[s.name]}]; names must be unique")
        seen[s.name] = i
        for j, other in enumerate(sources[:i]):
            if _overlap(s.location, other.location):
                raise SourcesFileError(
                    f"{label}: sources[{i}] ({s.name}): location {s.location!r} overlaps the location "
                    f"{other.location!r} of sources[{j}] ({other.name}): their objects would be read by both "
                    "sources (counted twice); give each source a folder of its own")
    return sources


def _overlap(a: str, b: str) -> bool:
    """Whether one location is the other or holds it (the landing root, '', holds every location)."""
    a, b = a.strip("/"), b.strip("/")
    return a == b or not a or not b or b.startswith(a + "/") or a.startswith(b + "/")


def _read_sources_file(root: str, sources_file: str | None, store) -> tuple[str, bytes]:
    if sources_file or store is None:
        path = Path(sources_file) if sources_file else Path(root) / SOURCES_FILE
        if not path.is_file():
            raise SourcesFileError(f"{path}: no export sources configured (the file does not exist)")
        return str(path), path.read_bytes()
    label = f"{str(root).rstrip('/')}/{SOURCES_FILE}"
    try:
        return label, store.read_bytes(SOURCES_FILE)
    except ObjectMissing as exc:
        raise SourcesFileError(f"{label}: no export sources configured (the object does not exist)") from exc


def _entries(label: str, data: bytes) -> list:
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SourcesFileError(f"{label}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise SourcesFileError(f"{label}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    if not isinstance(document, dict):
        raise SourcesFileError(f"{label}: expected an object {{\"sources\": [...]}}, found {_json_type(document)}")
    if "sources" not in document:
        raise SourcesFileError(f"{label}: no \"sources\" key at the top level (found: {', '.join(document) or 'none'})")
    if not isinstance(document["sources"], list):
        raise SourcesFileError(f"{label}: \"sources\" must be a list, not {_json_type(document['sources'])}")
    return document["sources"]


def _source(where: str, entry: object) -> ExportSource:
    if not isinstance(entry, dict):
        raise SourcesFileError(f"{where} is {_json_type(entry)}, not an object with \"name\" and \"format\"")
    if isinstance(entry.get("name"), str):
        where = f"{where} ({entry['name']})"
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise SourcesFileError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(ENTRY_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    if missing:
        raise SourcesFileError(f"{where}: missing {missing[0]!r}")
    for key, value in entry.items():
        kind, what = ENTRY_KEYS[key]
        if value is None and key not in REQUIRED_KEYS:
            continue  # null: not set
        if not isinstance(value, kind):
            raise SourcesFileError(f"{where}: {key} must be {what}, not {_json_type(value)}")
        odd = next((v for v in value if not isinstance(v, str)), None) if kind is list else None
        if odd is not None:
            raise SourcesFileError(f"{where}: {key} must be {what}, not a list holding {_json_type(odd)}")
    if entry["format"] not in FORMATS:
        raise SourcesFileError(f"{where}: unknown format {entry['format']!r}; known: {', '.join(FORMATS)}")
    location = entry.get("location")
    try:
        return ExportSource(entry["name"], entry["format"], entry["name"] if location is None else location,
                            tuple(entry.get("streams") or ()), entry.get("billing_currency"))
    except ValueError as exc:
        raise SourcesFileError(f"{where}: {exc}") from exc


def _json_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)

"""Export-source configuration: ``sources.json`` at the landing root (or a file named explicitly).

```json
{"sources": [
  {"name": "aws-main", "format": "aws-cur", "location": "cur/aws-main"},
  {"name": "azure-ea", "format": "azure-cost", "location": "azure/ea", "streams": ["actual", "amortized"]}
]}
```

``streams``: export streams that together make one delivery, in folders ``<location>/<stream>/``.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from focus_platform.landing.zone import DeliveryError, ExportSource
from focus_platform.sources import FORMATS

SOURCES_FILE = "sources.json"


def default_landing_root() -> str:
    return os.environ.get("FOCUS_LANDING_ROOT") or str(resources.files("focus_platform") / "sample_data" / "landing")


def load_sources(root: str, sources_file: str | None = None, store=None) -> list[ExportSource]:
    """The configured export sources: ``sources_file`` (a local path), else ``sources.json`` at the
    landing root (read through ``store`` when the root is an object store)."""
    if sources_file or store is None:
        path = Path(sources_file) if sources_file else Path(root) / SOURCES_FILE
        label = str(path)
        if not path.exists():
            raise FileNotFoundError(f"no export sources configured: {path} does not exist")
        text = path.read_text("utf-8")
    else:
        label = f"{str(root).rstrip('/')}/{SOURCES_FILE}"
        try:
            text = store.read_bytes(SOURCES_FILE).decode("utf-8")
        except DeliveryError as exc:
            raise FileNotFoundError(f"no export sources configured: {label} does not exist") from exc
    entries = json.loads(text).get("sources", [])
    sources = []
    for e in entries:
        streams = e.get("streams") or ()
        if isinstance(streams, str) or not all(isinstance(s, str) for s in streams):
            raise ValueError(f"{label}: source {e.get('name')}: streams must be a list of folder names")
        sources.append(ExportSource(e["name"], e["format"], e.get("location", e["name"]), tuple(streams)))
    for s in sources:
        if s.format not in FORMATS:
            raise ValueError(f"{label}: source {s.name}: unknown format {s.format!r}; known: {', '.join(FORMATS)}")
    names = [s.name for s in sources]
    if len(names) != len(set(names)):
        raise ValueError(f"{label}: export source names must be unique")
    return sources

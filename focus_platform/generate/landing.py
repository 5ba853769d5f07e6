"""The landing zone's ``sources.json`` beside a generated delivery, so that
``focus-platform demo --landing-root <out>`` runs on it as is.

Generating several providers into one folder adds each one's sources: an entry of the same name is
replaced, the others are kept.
"""

from __future__ import annotations

import json
from pathlib import Path

SOURCES_FILE = "sources.json"


def export_source(name: str, fmt: str, location: str, streams: tuple[str, ...] = ()) -> dict:
    """One entry of ``sources.json``: the export source's name, format and folder under the landing root."""
    return {"name": name, "format": fmt, "location": location, **({"streams": list(streams)} if streams else {})}


def write_sources(out_dir: Path, sources: list[dict]) -> Path:
    """Add ``sources`` to ``out_dir/sources.json`` (created when missing) and return its path."""
    path = out_dir / SOURCES_FILE
    kept = json.loads(path.read_text("utf-8")).get("sources", []) if path.exists() else []
    names = {s["name"] for s in sources}
    merged = [s for s in kept if s.get("name") not in names] + sources
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sources": merged}, indent=2) + "\n", encoding="utf-8")
    return path

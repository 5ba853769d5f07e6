"""Export-source configuration: ``sources.json`` at the landing root (or a file named explicitly)."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from focus_platform.landing.zone import ExportSource
from focus_platform.sources import FORMATS


def default_landing_root() -> str:
    return os.environ.get("FOCUS_LANDING_ROOT") or str(resources.files("focus_platform") / "sample_data" / "landing")


def load_sources(root: str, sources_file: str | None = None) -> list[ExportSource]:
    path = Path(sources_file) if sources_file else Path(root) / "sources.json"
    if not path.exists():
        raise FileNotFoundError(f"no export sources configured: {path} does not exist")
    entries = json.loads(path.read_text("utf-8")).get("sources", [])
    sources = [ExportSource(e["name"], e["format"], e.get("location", e["name"])) for e in entries]
    for s in sources:
        if s.format not in FORMATS:
            raise ValueError(f"{path}: source {s.name}: unknown format {s.format!r}; known: {', '.join(FORMATS)}")
    names = [s.name for s in sources]
    if len(names) != len(set(names)):
        raise ValueError(f"{path}: export source names must be unique")
    return sources

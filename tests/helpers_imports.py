"""What a module imports, read from its source (no import run): the independent-gate tests use it to
show that a format's ``totals`` never imports its ``mapping``."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_names(module_file: str | Path) -> list[str]:
    """Every imported name, dotted: ``import a.b [as c]`` gives ``a.b`` (and ``c``), ``from a.b import c [as d]``
    gives ``a.b.c`` (and ``d``); a relative ``from . import c`` gives ``.c``."""
    names = []
    for node in ast.walk(ast.parse(Path(module_file).read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names += [part for alias in node.names for part in (alias.name, alias.asname) if part]
        elif isinstance(node, ast.ImportFrom):
            names += [f"{node.module or ''}.{alias.name}" for alias in node.names]
            names += [alias.asname for alias in node.names if alias.asname]
    return names

"""The one Definitions object of the code location (``dg dev`` / ``dagster dev -w workspace.yaml``):
everything under ``focus_platform/defs/``, assembled by folder (no hand-kept lists)."""

from pathlib import Path

import dagster as dg

import focus_platform.defs

defs = dg.ComponentTree.from_module(defs_module=focus_platform.defs,
                                    project_root=Path(focus_platform.defs.__file__).parents[2]).build_defs()

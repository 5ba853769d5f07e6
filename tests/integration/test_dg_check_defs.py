"""`dg check defs` (the Dagster CLI) loads the project's definitions from pyproject's [tool.dg]."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("dg") is None, reason="dg (dagster-dg-cli) is not installed")
def test_dg_check_defs(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DO_NOT_TRACK": "1"}
    done = subprocess.run(["dg", "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr

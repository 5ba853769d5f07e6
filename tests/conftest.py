"""Shared test fixtures: where the sample data is (inside the repo; ../shared is not needed).

The samples hold billing periods from 2018: the tests run with ``FOCUS_RETENTION=keep`` (set before
any definitions load), like the demo on the embedded sample; the retention tests set their own policy.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

os.environ.setdefault("FOCUS_RETENTION", "keep")

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
SAMPLE_LANDING = Path(str(resources.files("focus_platform") / "sample_data" / "landing"))
WORKSHOP_OCT = SAMPLE_LANDING / "aws-workshop/WorkshopCUR/20181001-20181101/wa_labs_Oct2018-WorkshopCUR-00001.snappy.parquet"
WORKSHOP_NOV = SAMPLE_LANDING / "aws-workshop/WorkshopCUR/20181101-20181201/wa_labs_Nov2018-WorkshopCUR-00001.snappy.parquet"
KOKU_DELIVERY = next((SAMPLE_LANDING / "aws-koku").rglob("*.csv.gz"))
FC_SAMPLE = SAMPLE_LANDING / "aws-fc-sample/2023-11/focus_converters_sample-anonymous-aws-export-dataset.csv"

AWS_SAMPLES = {
    "workshop-oct-2018-parquet": WORKSHOP_OCT,
    "workshop-nov-2018-parquet": WORKSHOP_NOV,
    "koku-delivery-csv-gz": KOKU_DELIVERY,
    "focus-converters-csv": FC_SAMPLE,
    "koku-2023-06-sp-covered-csv": FIXTURES / "aws-samples/koku_2023-06-01.csv",
    "koku-2022-07-marketplace-snake-csv": FIXTURES / "aws-samples/koku_2022-07-01-alt-columns.csv",
    "cur2-synthetic-parquet": FIXTURES / "aws-samples/cur_anon_sample_cur2.parquet",
}


@pytest.fixture(scope="session")
def aws_samples() -> dict[str, Path]:
    return AWS_SAMPLES


def pytest_sessionstart(session):
    """Create the official validator's own venv on first use (needs Python 3.12; skipped without)."""
    import os
    import subprocess

    from focus_platform.conformance.official_validator import find_validator

    if hasattr(session.config, "workerinput"):  # xdist worker: the controller did the setup
        return
    if find_validator() is None and not os.environ.get("FOCUS_SKIP_VALIDATOR_SETUP"):
        subprocess.run(["bash", str(TESTS.parent / ".ci" / "setup_validator.sh")], check=False)

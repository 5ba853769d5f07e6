"""The official focus-validator on our FOCUS output of every AWS sample: no failing leaf rule
outside the allow-list (each allow-list entry names the validator / rule-model bug)."""

from __future__ import annotations

import pytest

from focus_platform.conformance import official_validator as ov
from focus_platform.pipeline import convert_files
from tests.conftest import AWS_SAMPLES

pytestmark = pytest.mark.validator


@pytest.mark.parametrize("name", sorted(AWS_SAMPLES))
def test_official_validator_passes_outside_allowlist(validator, name, tmp_path):
    out = tmp_path / f"{name}.parquet"
    convert_files([str(AWS_SAMPLES[name])], str(out))
    report = ov.run_official_validator(out, output_dir=tmp_path / "validator")
    print(report.summary_table())
    assert report.unexpected_failures == {}, report.summary_table()
    assert report.errored_rules == {}, report.summary_table()
    assert len(report.passed_leaf_rules) > 100

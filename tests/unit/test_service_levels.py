"""Service levels: the README's table is the generated one, targets come from FOCUS_SLO_TARGETS
with one-line errors, and the measured M2 / M15 functions."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from focus_platform.service_levels import (
    SERVICE_LEVELS,
    TARGETS_ENV,
    ServiceLevelError,
    end_to_end_success,
    markdown_table,
    meets,
    normalization_latency,
    target,
)

README = Path(__file__).resolve().parents[2] / "README.md"
LANDED = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def test_readme_table_is_the_generated_one():
    found = re.search(r"<!-- service-levels:[^\n]*-->\n(.*?)\n<!-- /service-levels -->", README.read_text(), re.S)
    assert found, "README.md lacks the service-levels section markers"
    assert found.group(1) == markdown_table()


def test_module_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "focus_platform.service_levels"], capture_output=True, text=True,
                         check=True, env={TARGETS_ENV: "M3=0.5"}).stdout  # defaults, whatever the environment
    assert out == markdown_table() + "\n"


def test_every_service_level_and_the_invariants_are_declared_once():
    ids = [s.id for s in SERVICE_LEVELS]
    assert ids == [f"M{n}" for n in range(1, 16)] + ["conservation", "conformance"]
    planned = {s.id for s in SERVICE_LEVELS if "(planned)" in s.measured_at}
    assert planned == {"M10"}


def test_default_targets_and_comparisons():
    env: dict[str, str] = {}
    assert (target("M3", env), target("M5", env), target("M8", env), target("M2", env)) == (0.001, 0.001, 0.005, 3600)
    assert meets("M5", 0.0009, env) and not meets("M5", 0.001, env)
    assert meets("M3", 0.001, env) and not meets("M3", 0.0011, env)  # drift above 0.1 % is the ERROR
    assert meets("M11", 1.0, env) and not meets("M11", 0.99, env)
    assert meets("M15", 0.99, env) and not meets("M15", 0.98, env)
    assert target("M6", env) is None


def test_targets_are_overridden_by_the_environment(monkeypatch):
    monkeypatch.setenv(TARGETS_ENV, " M3=0.002 , M5=0.01,M2=7200")
    assert (target("M3"), target("M5"), target("M2"), target("M8")) == (0.002, 0.01, 7200, 0.005)
    assert meets("M5", 0.005) and meets("M3", 0.0015)


@pytest.mark.parametrize(("value", "says"), [
    ("M3", "bad entry 'M3'"),
    ("M99=0.1", "bad entry 'M99=0.1'"),
    ("M5=abc", "M5 takes a fraction from 0 to 1"),
    ("M5=2", "M5 takes a fraction from 0 to 1"),
    ("M2=-5", "M2 takes a number of seconds"),
    ("conservation=0.1", "bad entry 'conservation=0.1'"),  # an invariant is not configurable
    ("M6=3", "bad entry 'M6=3'"),  # no numeric target
    ("M5=0.001,M5=0.002", "M5 is given twice"),
])
def test_a_bad_entry_is_one_line_naming_the_variable_and_the_entry(monkeypatch, value, says):
    monkeypatch.setenv(TARGETS_ENV, value)
    with pytest.raises(ServiceLevelError) as err:
        target("M8")
    message = str(err.value)
    assert message.startswith(f"{TARGETS_ENV}: ") and says in message and "\n" not in message


def test_unknown_service_level_and_a_target_less_one_are_errors():
    with pytest.raises(ServiceLevelError, match="unknown service level 'M16'"):
        target("M16", {})
    with pytest.raises(ServiceLevelError, match="M6 .* has no numeric target"):
        meets("M6", 3, {})


def test_m2_normalization_latency():
    fast = normalization_latency(LANDED, LANDED + timedelta(minutes=20), {})
    assert (fast.service_level, fast.value, fast.meets) == ("M2", 1200.0, True)
    slow = normalization_latency(LANDED, LANDED + timedelta(hours=2), {})
    assert (slow.value, slow.meets) == (7200.0, False)
    other_zone = datetime(2026, 12, 7, 11, 30, tzinfo=UTC).astimezone(tz=None)
    assert normalization_latency(LANDED, other_zone, {}).value == 5400.0
    assert normalization_latency(LANDED, LANDED + timedelta(hours=2), {TARGETS_ENV: "M2=10800"}).meets


def test_m2_refuses_naive_times_and_a_commit_before_the_delivery():
    with pytest.raises(ValueError, match="M2: landed time 2026-12-07T10:00:00 has no time zone"):
        normalization_latency(LANDED.replace(tzinfo=None), LANDED, {})
    with pytest.raises(ValueError, match="published at .* before its delivery landed"):
        normalization_latency(LANDED, LANDED - timedelta(seconds=1), {})


def test_m15_end_to_end_success():
    assert end_to_end_success([True] * 99 + [False], {}).meets
    run = end_to_end_success([True] * 98 + [False] * 2, {})
    assert (run.service_level, run.value, run.meets) == ("M15", 0.98, False)
    assert end_to_end_success([True, False], {TARGETS_ENV: "M15=0.5"}).meets
    empty = end_to_end_success([], {})
    assert (empty.value, empty.meets, empty.reason) == (None, None, "no runs to measure")

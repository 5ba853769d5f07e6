"""The command line end to end: ``generate`` then ``demo`` on what it wrote prints the generator's
expected totals to the cent; every user error is one line on stderr (``error: …``) and exit status
1, a traceback only with ``--debug``; one bad export source does not stop the others."""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from decimal import Decimal

import pytest

from focus_platform.cli import main

MONEY_PAIR = re.compile(r"(-?\d+\.\d+) ([A-Z]{3})\s+(-?\d+\.\d+) ([A-Z]{3})")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def instance_dirs(tmp_path, monkeypatch):
    """A Dagster home and warehouse of the test's own; the roots the CLI sets are restored after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("FOCUS_LANDING_ROOT", "")
    monkeypatch.setenv("FOCUS_WAREHOUSE_ROOT", "")
    return tmp_path


def demo_summary(stdout: str) -> dict[tuple[str, str], dict]:
    """The demo's table: per (source, period) its status, check text and totals per currency."""
    partitions: dict[tuple[str, str], dict] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("job "):  # the downstream runs' table follows the partitions'
            break
        pair = MONEY_PAIR.search(line)
        if line and not line[0].isspace() and not line.startswith(("source ", "Delta ", "Dagster ", "Open ")):
            source, period, status = line.split()[:3]
            current = partitions.setdefault((source, period), {"status": status, "line": line, "totals": {}})
        if pair and current is not None:
            billed, currency, effective, _ = pair.groups()
            current["totals"][currency] = (Decimal(billed), Decimal(effective))
    return partitions


def expected_by_partition(expected: dict, source_of) -> dict[tuple[str, str], dict[str, tuple[Decimal, Decimal]]]:
    sums: dict = defaultdict(lambda: defaultdict(lambda: [Decimal(0), Decimal(0)]))
    for record in expected["totals"]:
        cell = sums[(source_of(record), record["billing_period"])][record["currency"]]
        cell[0] += Decimal(record["billed_cost"])
        cell[1] += Decimal(record["amortized_cost"])
    return {key: {c: tuple(v) for c, v in by_currency.items()} for key, by_currency in sums.items()}


GENERATED = {  # case: (generate arguments, expected_totals.json under the output folder, record -> source)
    "aws-cur": (["aws-cur", "--rows", "600"], "focus-demo/expected_totals.json", lambda r: "focus-demo"),
    "aws-cur2": (["aws-cur", "--layout", "cur2", "--rows", "600"], "focus-demo/expected_totals.json",
                 lambda r: "focus-demo"),
    "azure": (["azure", "--rows", "2000"], "expected_totals.json", lambda r: r["source"]),
    "oci": (["oci", "--rows", "400"], "oci-cost/expected_totals.json", lambda r: "oci-cost"),
    "gcp": (["gcp", "--rows", "800"], "gcp-billing/expected_totals.json", lambda r: "gcp-billing"),
}



@pytest.mark.slow
@pytest.mark.parametrize("case", GENERATED)
def test_generate_then_demo_prints_the_expected_totals(case, instance_dirs, capsys):
    args, expected_file, source_of = GENERATED[case]
    out = instance_dirs / "landing"
    rc, stdout, err = run_cli(capsys, "generate", *args, "--months", "2", "--out", str(out))
    assert rc == 0, err
    assert (out / "sources.json").exists()
    expected = expected_by_partition(json.loads((out / expected_file).read_text()), source_of)

    rc, stdout, err = run_cli(capsys, "demo", "--landing-root", str(out),
                              "--warehouse-root", str(instance_dirs / "warehouse"))
    assert rc == 0, stdout + err[-3000:]
    assert "Traceback" not in err
    printed = demo_summary(stdout)
    assert set(printed) == set(expected) and len({p for _, p in expected}) == 2
    downstream = stdout[stdout.index("\njob "):].split("\n\n")[0].splitlines()[2:]  # the rest of the graph ran
    assert [line.split()[:2] for line in downstream] == [["invoices_and_rates", "-"]] + [
        [job, period] for job in ("reconciliation", "allocation", "forecasts")
        for period in sorted({p for _, p in expected})]
    assert not any("FAILED" in line for line in downstream), downstream
    for key, partition in printed.items():
        assert partition["totals"] == expected[key], key
        if partition["status"] != "ok":  # a check that did not pass is named with its severity
            assert partition["status"] in ("warn", "error") and "failed: " in partition["line"], partition["line"]
    home = instance_dirs / "dagster"
    assert re.search(rf"DAGSTER_HOME={re.escape(str(home.resolve()))} (FOCUS_RETENTION=\S+ )?dg dev -w ", stdout)
    assert f"Dagster instance: {home.resolve()}" in stdout

    rc, stdout, err = run_cli(capsys, "demo", "--landing-root", str(out),  # again: nothing new delivered
                              "--warehouse-root", str(instance_dirs / "warehouse"))
    assert rc == 0, err[-3000:]
    assert stdout.count("raw_exports and focus_costs: unchanged (no new version)") == len(expected)


def test_demo_runs_under_the_definitions_jobs(instance_dirs, capsys):
    import dagster as dg

    out = instance_dirs / "landing"
    assert run_cli(capsys, "generate", "oci", "--rows", "200", "--out", str(out))[0] == 0
    rc, stdout, err = run_cli(capsys, "demo", "--landing-root", str(out),
                              "--warehouse-root", str(instance_dirs / "warehouse"))
    assert rc == 0, err[-3000:]
    runs = dg.DagsterInstance.get().get_runs()
    assert runs and {r.job_name for r in runs} == {"focus_pipeline", "invoices_and_rates", "reconciliation",
                                                   "allocation", "forecasts"}
    assert all(r.tags.get("focus/origin") == "demo" for r in runs)


def test_a_deleted_file_prints_the_partition_change(instance_dirs, capsys):
    out = instance_dirs / "landing"
    assert run_cli(capsys, "generate", "oci", "--rows", "400", "--out", str(out))[0] == 0
    demo = ["demo", "--landing-root", str(out), "--warehouse-root", str(instance_dirs / "warehouse")]
    assert run_cli(capsys, *demo)[0] == 0
    files = sorted((out / "oci-cost" / "2024-01").iterdir())
    files[0].unlink()
    rc, stdout, err = run_cli(capsys, *demo)
    assert rc == 0, err[-3000:]
    changed = [line.strip() for line in stdout.splitlines() if line.startswith(" ") and "->" in line]
    assert changed[0].startswith("raw_exports and focus_costs: replaced: rows "), stdout
    assert re.search(r"\(-\d+\.\d %\)", changed[0]), changed[0]
    assert any(re.match(r"[A-Z]{3} billed -?\d+\.\d+ -> -?\d+\.\d+ \(-\d+\.\d %\)$", line) for line in changed[1:])


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_invalid_sources_json_is_one_line(instance_dirs, capsys):
    landing = instance_dirs / "landing"
    landing.mkdir()
    (landing / "sources.json").write_text('{"sources": [')
    rc, stdout, err = run_cli(capsys, "demo", "--landing-root", str(landing))
    assert rc == 1
    assert "sources.json" in one_error_line(err)

    rc, stdout, err = run_cli(capsys, "demo", "--landing-root", str(instance_dirs / "nowhere"))
    assert rc == 1
    assert str(instance_dirs / "nowhere") in one_error_line(err)


def test_invalid_setting_is_one_line_and_debug_shows_the_traceback(instance_dirs, capsys, monkeypatch):
    landing = instance_dirs / "landing"
    assert run_cli(capsys, "generate", "oci", "--rows", "100", "--out", str(landing))[0] == 0
    monkeypatch.setenv("FOCUS_MAX_DROP_SHARE", "abc")
    rc, stdout, err = run_cli(capsys, "demo", "--landing-root", str(landing))
    assert rc == 1
    assert "FOCUS_MAX_DROP_SHARE" in one_error_line(err)
    with pytest.raises(ValueError, match="FOCUS_MAX_DROP_SHARE"):
        main(["--debug", "demo", "--landing-root", str(landing)])
    with pytest.raises(ValueError, match="FOCUS_MAX_DROP_SHARE"):
        main(["demo", "--landing-root", str(landing), "--debug"])


def test_convert_errors_are_one_line(tmp_path, capsys):
    src = tmp_path / "notes.txt"
    src.write_text("not a billing export\n")
    rc, stdout, err = run_cli(capsys, "convert", str(src), "--out", str(tmp_path / "o.parquet"))
    assert rc == 1 and str(src) in one_error_line(err)
    csv = tmp_path / "focus.csv"
    csv.write_text("BilledCost,BillingCurrency\n1.5,USD\n")
    rc, stdout, err = run_cli(capsys, "convert", str(csv), "--out", str(tmp_path / "o.parquet"),
                              "--billing-currency", "usd")
    assert rc == 1 and "usd" in one_error_line(err)


@pytest.mark.slow
def test_one_bad_source_does_not_stop_the_others(instance_dirs, capsys):
    """A stray file refuses its source, a missing export stream and a missing manifest file refuse
    their periods: each is one line naming what is wrong, the rest is published, exit status 1."""
    landing = instance_dirs / "landing"
    assert run_cli(capsys, "generate", "azure", "--rows", "2000", "--months", "2", "--out", str(landing))[0] == 0
    stray = landing / "stray"
    stray.mkdir()
    (stray / "export.csv").write_text("a,b\n1,2\n")
    config = json.loads((landing / "sources.json").read_text())
    config["sources"].append({"name": "stray", "format": "aws-cur", "location": "stray"})
    (landing / "sources.json").write_text(json.dumps(config))
    for folder in (landing / "azure-mca" / "amortized").glob("202402*"):
        shutil.rmtree(folder)  # azure-mca 2024-02: the amortized export has not landed
    missing = sorted((landing / "azure-ea" / "actual").glob("202401*/*/*.csv"))[0]
    missing.unlink()  # azure-ea 2024-01: its manifest names a file that is not there

    rc, stdout, err = run_cli(capsys, "demo", "--landing-root", str(landing),
                              "--warehouse-root", str(instance_dirs / "warehouse"))
    assert rc == 1
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, err
    assert any("stray" in e and "stray/export.csv" in e for e in errors), errors
    assert any(e.startswith("error: azure-ea 2024-01: ") and missing.name in e for e in errors), errors
    assert any(e.startswith("error: azure-mca 2024-02: ") and "amortized" in e for e in errors), errors
    printed = demo_summary(stdout)
    assert printed[("azure-ea", "2024-01")]["status"] == "FAILED"
    assert "delivery_accepted (error)" in printed[("azure-ea", "2024-01")]["line"]
    assert printed[("azure-mca", "2024-02")]["status"] == "FAILED"
    assert printed[("azure-ea", "2024-02")]["status"] == "ok"
    assert printed[("azure-mca", "2024-01")]["status"] == "ok"
    assert not any(source == "stray" for source, _ in printed)
    assert re.search(r"Delta tables under \S+: raw_azure_cost_details, focus_costs, focus_quarantine, period_status, "
                     r"restatement_log, invoices, exchange_rates, invoice_reconciliation, sku_catalog, "
                     r"cost_allocations, allocation_diff, focus_costs_v1_3, spend_forecasts, forecast_backtests, "
                     r"budget_status, cost_anomalies\n", stdout)  # no policies in this landing zone: no actions


def test_generate_adds_its_sources_to_sources_json(tmp_path, capsys):
    out = tmp_path / "landing"
    assert run_cli(capsys, "generate", "oci", "--rows", "100", "--out", str(out))[0] == 0
    assert run_cli(capsys, "generate", "azure", "--rows", "1600", "--out", str(out))[0] == 0
    assert run_cli(capsys, "generate", "oci", "--rows", "100", "--seed", "1", "--out", str(out))[0] == 0
    sources = json.loads((out / "sources.json").read_text())["sources"]
    assert [s["name"] for s in sources] == ["azure-ea", "azure-mca", "oci-cost"]
    assert sources[0] == {"name": "azure-ea", "format": "azure-cost-details", "location": "azure-ea",
                          "streams": ["actual", "amortized"]}


def test_a_period_that_is_not_one_or_has_no_delivery_is_said(instance_dirs, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--period", "2024-13"])
    assert exit_.value.code == 2
    assert "'2024-13' is not a billing period YYYY-MM (month 01 to 12)" in capsys.readouterr().err
    rc, stdout, err = run_cli(capsys, "demo", "--period", "2030-01")
    assert rc == 1
    assert "no delivery of billing period 2030-01 for any source under" in one_error_line(err)


def test_periods_without_a_partition_and_missing_locations_are_said_and_the_rest_runs(instance_dirs, capsys):
    """A period folder outside the billing-period window, a source whose location does not exist:
    one line each, exit 1; the good source is published; an empty location is a note."""
    landing = instance_dirs / "landing"
    assert run_cli(capsys, "generate", "oci", "--rows", "300", "--out", str(landing))[0] == 0
    shutil.copytree(landing / "oci-cost", landing / "oci-old")
    (landing / "oci-old" / "2024-01").rename(landing / "oci-old" / "2016-12")
    (landing / "oci-empty").mkdir()
    config = json.loads((landing / "sources.json").read_text())
    config["sources"] += [{"name": "oci-old", "format": "oci-cost", "location": "oci-old"},
                          {"name": "oci-gone", "format": "oci-cost", "location": "Oci-Cost"},
                          {"name": "oci-empty", "format": "oci-cost", "location": "oci-empty"}]
    (landing / "sources.json").write_text(json.dumps(config))
    rc, stdout, err = run_cli(capsys, "demo", "--landing-root", str(landing),
                              "--warehouse-root", str(instance_dirs / "warehouse"))
    assert rc == 1 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert any("oci-old" in e and "2016-12 is outside the billing-period window 2017-01" in e for e in errors), err
    assert any("oci-gone" in e and "location Oci-Cost does not exist" in e for e in errors), err
    assert any(line.startswith("note: ") and "oci-empty" in line and "no deliveries yet" in line
               for line in err.splitlines()), err
    assert demo_summary(stdout)[("oci-cost", "2024-01")]["status"] == "ok"


def test_a_malformed_root_url_is_refused_naming_the_flag(instance_dirs, capsys):
    rc, _, err = run_cli(capsys, "demo", "--warehouse-root", "s3:/bucket")
    assert rc == 1 and "--warehouse-root='s3:/bucket': starts like a URL (s3:) without '//'" in one_error_line(err)


def test_unknown_money_fails_the_demo_until_accepted_and_then_warns(instance_dirs, capsys):
    landing = instance_dirs / "landing"
    assert run_cli(capsys, "generate", "oci", "--rows", "300", "--file-format", "csv", "--out", str(landing))[0] == 0
    report = sorted((landing / "oci-cost" / "2024-01").glob("*.csv"))[0]
    lines = report.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("cost/myCost")] = '"1,234.56"'
    report.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    argv = ["demo", "--landing-root", str(landing), "--warehouse-root", str(instance_dirs / "warehouse")]
    rc, stdout, err = run_cli(capsys, *argv)
    assert rc == 1 and demo_summary(stdout)[("oci-cost", "2024-01")]["status"] == "FAILED"
    assert f"{report.name} row 1: cost/myCost: '1,234.56' is not a number" in err
    rc, stdout, err = run_cli(capsys, *argv, "--accept-unknown-money")
    assert rc == 0 and demo_summary(stdout)[("oci-cost", "2024-01")]["status"] == "warn"
    assert "warning: accepted deliberately (unknown money override)" in stdout

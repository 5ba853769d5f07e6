"""The operate domain through Dagster: the ``service_levels`` job evaluates M11 per partitioned table and
M15, the ``retention`` job drops what the policy no longer keeps through the write path, and M11 turns
green; the dropped version stays readable by time travel inside the window."""

from __future__ import annotations

import polars as pl

from focus_platform.warehouse.catalog import FOCUS_TABLE, RESTATEMENT_LOG
from tests.integration.conftest import published_sample_month

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def evaluations(result) -> dict[str, bool]:
    return {e.event_specific_data.check_name: e.event_specific_data.passed for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_retention_job_and_service_level_checks(tmp_path, monkeypatch):
    from focus_platform.definitions import defs

    month = published_sample_month(tmp_path)
    instance, res, wh = month.instance, month.resources, month.warehouse
    before = wh.table(FOCUS_TABLE).version()

    service_levels = defs.resolve_job_def("service_levels")
    green = evaluations(service_levels.execute_in_process(instance=instance, resources=res, run_config=QUIET))
    assert green["end_to_end_success"] and all(green.values()), green  # everything kept (FOCUS_RETENTION=keep)
    assert {"retention_focus_costs", "retention_raw_aws_cur", "retention_invoice_reconciliation"} <= set(green)

    monkeypatch.setenv("FOCUS_RETENTION", "default=12")  # 2023-11 is now past every table's policy
    red = evaluations(service_levels.execute_in_process(instance=instance, resources=res, run_config=QUIET))
    assert not red["retention_focus_costs"] and not red["retention_raw_aws_cur"], red

    run = defs.resolve_job_def("retention").execute_in_process(instance=instance, resources=res, run_config=QUIET)
    assert run.success
    drops = wh.scan(RESTATEMENT_LOG).filter(pl.col("action") == "drop").collect()
    assert sorted(drops["table"]) == ["focus_costs", "focus_quarantine", "invoice_reconciliation", "raw_aws_cur",
                                      "sku_catalog"]
    assert wh.scan(FOCUS_TABLE).collect().height == 0
    assert wh.scan(FOCUS_TABLE, version=before).collect().height > 0  # inside the time-travel window
    after = evaluations(service_levels.execute_in_process(instance=instance, resources=res, run_config=QUIET))
    assert all(v for k, v in after.items() if k.startswith("retention_")), after

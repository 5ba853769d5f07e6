"""Declarative automation: downstream assets follow their upstream partitions.

``follows_upstream`` is Dagster's eager condition without its latest-time-window limit: a partition
is requested when a partition it depends on was updated since it was last requested or updated,
for every billing period Dagster offers (the retention window, ``partitions``), so a late fix to a
month two years back flows through like the open month. It waits while an upstream partition or
the partition itself is in progress. It never requests a partition only because it is missing
(that would backfill every empty month on the first tick). The default automation-condition
sensor ``automation`` below evaluates it (running by default; ``dg dev`` runs the daemon).
"""

import dagster as dg


def follows_upstream(ignore: str | None = None) -> dg.AutomationCondition:
    """``ignore``: an upstream asset whose updates do not trigger (another trigger covers it)."""
    updated = dg.AutomationCondition.any_deps_updated()
    if ignore:
        updated = updated.ignore(dg.AssetSelection.assets(ignore))
    label = "follows upstream (every period)" + (f", not {ignore}" if ignore else "")
    return (updated.since_last_handled()
            & ~dg.AutomationCondition.any_deps_in_progress()
            & ~dg.AutomationCondition.in_progress()).with_label(label)


# Evaluates every asset's automation condition, running by default (Dagster's own default sensor is
# created stopped on a new instance: a late re-delivery would then stop at raw_exports + focus_costs).
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30, description="evaluates follows_upstream for every asset, every period")

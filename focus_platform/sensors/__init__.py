"""Sensors: register configured export sources and request runs for new or changed deliveries."""


import json

import dagster as dg

from focus_platform.assets import focus_costs, raw_exports
from focus_platform.assets.partitions import EXPORT_SOURCE, partition_key
from focus_platform.landing.zone import DeliveryError
from focus_platform.resources import LandingZoneResource


@dg.sensor(minimum_interval_seconds=60, asset_selection=[raw_exports, focus_costs],
           default_status=dg.DefaultSensorStatus.STOPPED)
def delivery_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource):
    """New export sources become partitions; a new or changed delivery runs exactly its partition."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    sources = landing_zone.sources()
    known = set(context.instance.get_dynamic_partitions(EXPORT_SOURCE))
    new_sources = [s.name for s in sources if s.name not in known]
    requests, problems = [], []
    for source in sources:
        try:
            refused: dict = {}
            deliveries = landing_zone.deliveries(source, refused)
            problems.extend(str(e) for e in refused.values())
        except DeliveryError as exc:
            problems.append(str(exc))
            continue
        for period, delivery in deliveries.items():
            key = f"{source.name}|{period}"
            if seen.get(key) != delivery.delivery_id:
                requests.append(dg.RunRequest(run_key=f"{key}|{delivery.delivery_id}",
                                              partition_key=partition_key(period, source.name)))
                seen[key] = delivery.delivery_id
    for p in problems:
        context.log.warning(p)
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps(seen, sort_keys=True),
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(EXPORT_SOURCE, new_sources)] if new_sources else [],
        skip_reason=None if requests or new_sources else
        dg.SkipReason("no new or changed deliveries" + (f"; {len(problems)} refused" if problems else "")),
    )

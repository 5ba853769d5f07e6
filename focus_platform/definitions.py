"""The one Definitions object of the code location (``dg dev`` / ``dagster dev -w workspace.yaml``)."""

import dagster as dg

from focus_platform.assets import ASSETS
from focus_platform.assets.reconciliation import RECONCILIATION_ASSETS
from focus_platform.jobs import JOBS
from focus_platform.resources import default_resources
from focus_platform.sensors import SENSORS

defs = dg.Definitions(assets=[*ASSETS, *RECONCILIATION_ASSETS], jobs=JOBS, sensors=SENSORS,
                      resources=default_resources())

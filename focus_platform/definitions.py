"""The one Definitions object of the code location (``dg dev`` / ``dagster dev -w workspace.yaml``)."""

import dagster as dg

from focus_platform.assets import ASSETS
from focus_platform.jobs import focus_pipeline_job
from focus_platform.resources import default_resources
from focus_platform.sensors import SENSORS

defs = dg.Definitions(assets=ASSETS, jobs=[focus_pipeline_job], sensors=SENSORS,
                      resources=default_resources())

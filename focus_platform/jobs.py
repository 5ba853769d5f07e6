"""Jobs: the whole chain for one (billing period, export source) partition."""

import dagster as dg

from focus_platform.assets import ASSETS

focus_pipeline_job = dg.define_asset_job("focus_pipeline", selection=ASSETS,
                                         description="raw export → FOCUS 1.2 for one billing period × source")

"""Celery settings of the workers (``celery -A dagster_celery.app worker``): dagster-celery's app imports a
module of this name when it is importable, so put this folder on the workers' PYTHONPATH.

The broker and result store are the Redis of ``DAGSTER_CELERY_BROKER_URL``, the same the instance's
``CeleryRunLauncher`` sends runs to (deploy/vm/dagster.yaml).
"""

import os

BROKER_VARIABLE = "DAGSTER_CELERY_BROKER_URL"
if not os.environ.get(BROKER_VARIABLE):
    raise RuntimeError(f"{BROKER_VARIABLE} is not set: the Redis URL (redis://host:6379/0) the instance's "
                       "CeleryRunLauncher sends runs to")
broker_url = os.environ[BROKER_VARIABLE]
result_backend = broker_url
# A worker takes a run only when it has a free process for it: a run never waits behind another one on a
# busy worker while a second worker is idle.
worker_disable_prefetch = True
worker_prefetch_multiplier = 1

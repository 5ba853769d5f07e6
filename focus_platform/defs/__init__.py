"""The Dagster layer, one folder per kind and one module per domain, assembled by folder
(``focus_platform.definitions``): ``assets/`` (ingest, reconcile, operate: each with its checks,
automation, jobs and schedules), ``sensors/`` (discovering external data: deliveries, invoices),
``resources/``, and the shared ``partitions``, ``checks`` (a check declared once) and ``automation``.
"""

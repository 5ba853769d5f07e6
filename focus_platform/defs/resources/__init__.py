"""Dagster resources: the landing zone and the warehouse (local by default; ``s3://`` / ``gs://`` by
configuration), and the notifier that sends alerts to the webhooks of ``<landing>/alerts/endpoints.yaml``.

Credentials are never part of the configuration shown in the UI: leave them empty and the
providers' own chains apply (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / roles,
``GOOGLE_APPLICATION_CREDENTIALS``), or set them with ``dg.EnvVar("…")``, whose value Dagster does
not display. S3-compatible endpoints: ``endpoint_url`` or ``AWS_ENDPOINT_URL`` (+ ``AWS_ALLOW_HTTP``).
"""

from pathlib import Path

import dagster as dg

from focus_platform.alerts import (
    ALERTS_FILE,
    AlertConfig,
    AlertConfigError,
    Notifier,
    read_alert_config,
)
from focus_platform.landing.config import (
    checked_root,
    default_landing_root,
    load_sources,
    root_setting,
    share_setting,
)
from focus_platform.landing.stores import DEFAULT_PAGE_SIZE, open_store
from focus_platform.landing.zone import Discovery, ExportSource, discover
from focus_platform.warehouse.delta import DEFAULT_ROOT, Warehouse
from focus_platform.warehouse.restatements import DEFAULT_MAX_DROP_SHARE
from focus_platform.warehouse.storage import StorageConfig

INVOICE_PREFIX = "invoices"


class _StorageFields(dg.ConfigurableResource):
    endpoint_url: str = ""  # S3-compatible endpoint; else AWS_ENDPOINT_URL
    region: str = ""  # else AWS_REGION / AWS_DEFAULT_REGION
    allow_http: bool = False  # plain-http endpoint (moto, MinIO); also AWS_ALLOW_HTTP=true
    aws_access_key_id: str = ""  # dg.EnvVar only; empty: the AWS credential chain
    aws_secret_access_key: str = ""  # dg.EnvVar only
    gcs_project: str = ""
    gcs_service_account_path: str = ""  # dg.EnvVar only; empty: GOOGLE_APPLICATION_CREDENTIALS

    def storage_config(self) -> StorageConfig:
        return StorageConfig(endpoint_url=self.endpoint_url, region=self.region,
                             allow_http=True if self.allow_http else None,
                             aws_access_key_id=self.aws_access_key_id,
                             aws_secret_access_key=self.aws_secret_access_key, gcs_project=self.gcs_project,
                             gcs_service_account_path=self.gcs_service_account_path)


class LandingZoneResource(_StorageFields):
    """Deliveries of the configured export sources under ``root`` (a folder, ``s3://bucket/prefix``
    or ``gs://bucket/prefix``; ``sources.json`` beside them, or ``sources_file``)."""

    root: str = ""
    sources_file: str = ""
    page_size: int = DEFAULT_PAGE_SIZE  # objects per listing request

    def resolved_root(self) -> str:
        return checked_root("landing_zone root", self.root) if self.root else default_landing_root()

    def store(self):
        return open_store(self.resolved_root(), self.storage_config(), page_size=self.page_size)

    def sources(self) -> list[ExportSource]:
        root = self.resolved_root()
        return load_sources(root, self.sources_file or None, None if "://" not in root else self.store())

    def source(self, name: str) -> ExportSource:
        for s in self.sources():
            if s.name == name:
                return s
        raise dg.Failure(f"export source {name!r} is not configured in {self.resolved_root()}")

    def discover(self, source: ExportSource) -> Discovery:
        """One source's deliveries and refusals (never raised for its problems)."""
        return discover(self.store(), source)

    def discover_all(self) -> list[Discovery]:
        """Every configured source's deliveries and refusals, in configuration order: one source's
        problem is its own ``Discovery.error`` / ``refused``, never raised, never hiding the others."""
        store = self.store()
        return [discover(store, s) for s in self.sources()]

    def invoice_lookup(self):
        """``has_invoice(billing_account, period)``: an invoice file under
        ``invoices/<billing account>/<YYYY-MM>…`` (one listing per account, cached)."""
        store, cache = self.store(), {}

        def has_invoice(account: str, period: str) -> bool:
            if account not in cache:
                try:
                    cache[account] = [o.key.rsplit("/", 1)[-1] for o in store.list(f"{INVOICE_PREFIX}/{account}")]
                except ValueError:  # an account id that is not a safe key
                    cache[account] = []
            return any(name.startswith(period) for name in cache[account])
        return has_invoice


class WarehouseResource(_StorageFields):
    """The Delta warehouse root (``FOCUS_WAREHOUSE_ROOT``, default ./.data/warehouse; ``s3://…`` or
    ``gs://…``) and the re-delivery guard's allowed drop (``FOCUS_MAX_DROP_SHARE``, default 0.5)."""

    root: str = ""
    max_drop_share: float = DEFAULT_MAX_DROP_SHARE

    def warehouse(self) -> Warehouse:
        root = checked_root("warehouse root", self.root) if self.root else root_setting("FOCUS_WAREHOUSE_ROOT",
                                                                                       DEFAULT_ROOT)
        return Warehouse(root, config=self.storage_config())


class NotifierResource(dg.ConfigurableResource):
    """Alerts to webhooks (``focus_platform.alerts``): endpoints, routes by severity and the Dagster UI's URL from
    ``<landing>/alerts/endpoints.yaml`` (read through the landing store), or from ``endpoints_file`` (a local
    path) instead. Without a file nothing is routed: alerts are recorded by their callers, never sent."""

    landing_zone: LandingZoneResource
    endpoints_file: str = ""

    def alert_config(self) -> AlertConfig:
        """The alerts config; a file that cannot be read or used is a ``dg.Failure`` naming it."""
        try:
            return read_alert_config(self._files())
        except (AlertConfigError, OSError) as exc:
            raise dg.Failure(str(exc)) from exc

    def notifier(self) -> Notifier:
        """A notifier over the config (each incident sent once per notifier)."""
        return Notifier(self.alert_config())

    def _files(self) -> list[tuple[str, bytes]]:
        if self.endpoints_file:
            return [(self.endpoints_file, Path(self.endpoints_file).read_bytes())]
        store = self.landing_zone.store()
        return [(store.uri(ALERTS_FILE), store.read_bytes(ALERTS_FILE))] if store.exists(ALERTS_FILE) else []


def default_resources() -> dict[str, object]:
    """The resources from the environment, each setting checked (``landing.config``: a ``SettingError``
    names the variable, its value and what is allowed)."""
    landing_zone = LandingZoneResource(root=default_landing_root())
    return {
        "landing_zone": landing_zone,
        "notifier": NotifierResource(landing_zone=landing_zone),
        "warehouse": WarehouseResource(root=root_setting("FOCUS_WAREHOUSE_ROOT", DEFAULT_ROOT),
                                       max_drop_share=share_setting("FOCUS_MAX_DROP_SHARE", DEFAULT_MAX_DROP_SHARE)),
    }


# picked up by the folder assembly (``focus_platform.definitions``): the resources every asset and sensor takes
resources = dg.Definitions(resources=default_resources())

"""Dagster resources: the landing zone and the warehouse (local by default)."""


import dagster as dg

from focus_platform.landing.config import default_landing_root, load_sources
from focus_platform.landing.zone import Delivery, ExportSource, LocalStore, discover_deliveries
from focus_platform.warehouse.delta import DEFAULT_ROOT, Warehouse


class LandingZoneResource(dg.ConfigurableResource):
    """Deliveries of the configured export sources under ``root`` (``sources.json`` beside them)."""

    root: str = ""
    sources_file: str = ""

    def resolved_root(self) -> str:
        return self.root or default_landing_root()

    def store(self) -> LocalStore:
        return LocalStore(self.resolved_root())

    def sources(self) -> list[ExportSource]:
        return load_sources(self.resolved_root(), self.sources_file or None)

    def source(self, name: str) -> ExportSource:
        for s in self.sources():
            if s.name == name:
                return s
        raise dg.Failure(f"export source {name!r} is not configured in {self.resolved_root()}")

    def deliveries(self, source: ExportSource, refused: dict | None = None) -> dict[str, Delivery]:
        return discover_deliveries(self.store(), source, refused)


class WarehouseResource(dg.ConfigurableResource):
    """The Delta warehouse root (``FOCUS_WAREHOUSE_ROOT``, default ./.data/warehouse)."""

    root: str = ""

    def warehouse(self) -> Warehouse:
        return Warehouse(self.root or None)


def default_resources() -> dict[str, object]:
    return {
        "landing_zone": LandingZoneResource(root=dg.EnvVar("FOCUS_LANDING_ROOT").get_value(default_landing_root())),
        "warehouse": WarehouseResource(root=dg.EnvVar("FOCUS_WAREHOUSE_ROOT").get_value(DEFAULT_ROOT)),
    }

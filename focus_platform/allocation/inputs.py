"""What a landing zone holds for allocation, read in one place (no Dagster here).

All optional: without them allocation still runs on the built-in default rules.

```
<landing>/allocation/settings.yaml         active: and candidate: rules files (rules.select_rules)
<landing>/allocation/rules/*.yaml          rules versions
<landing>/allocation/drivers/<name>/*.csv  driver tables (engine.read_driver)
<landing>/allocation/spot_checks/**.csv    M7 spot checks (a YYYY-MM in the path limits a file to that period)
<landing>/accounts/**                      the account catalog (accounts.read_catalog)
<landing>/kubernetes/<cluster>/*.csv       OpenCost exports + nodes.csv (kubernetes.read_cluster)
```
Files directly under ``drivers/`` or ``kubernetes/`` belong to no driver or cluster and are not read;
hidden files and READMEs are never inputs. A bad file raises its module's one-line error (``INPUT_ERRORS``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import polars as pl

from focus_platform.allocation import accounts, engine, kubernetes, measures, rules
from focus_platform.allocation.model import Rules
from focus_platform.periods import is_billing_period

ALLOCATION_PREFIX = rules.ALLOCATION_FOLDER
SETTINGS_KEY = rules.SETTINGS_FILE
RULES_PREFIX = f"{ALLOCATION_PREFIX}/rules"
DRIVERS_PREFIX = f"{ALLOCATION_PREFIX}/drivers"
SPOT_CHECKS_PREFIX = f"{ALLOCATION_PREFIX}/spot_checks"
KUBERNETES_PREFIX = "kubernetes"
INPUT_PREFIXES = (ALLOCATION_PREFIX, KUBERNETES_PREFIX)  # what changes allocation (besides focus_costs)
INPUT_ERRORS = (rules.RulesError, accounts.CatalogError, engine.AllocationError, kubernetes.KubernetesError,
                measures.SpotCheckError)
_PERIOD_IN_PATH = re.compile(r"(?<!\d)(\d{4}-\d{2})(?!\d)")


def is_input_file(key: str) -> bool:
    """A data file of an input folder (not a hidden file, not a folder's README)."""
    name = key.rsplit("/", 1)[-1]
    return not name.startswith(".") and name.lower() != "readme.md"


def landed_files(store, prefix: str) -> list[tuple[str, bytes]]:
    """(key, bytes) of every input file under a prefix, in key order (none when the folder is absent)."""
    return [(o.key, store.read_bytes(o.key)) for o in store.list(prefix) if is_input_file(o.key)]


def folder_of(key: str, prefix: str) -> str:
    """The first folder below ``prefix`` in a key (a driver's name, a cluster's name)."""
    return key.removeprefix(f"{prefix}/").split("/", 1)[0]


def by_folder(files: list[tuple[str, bytes]], prefix: str) -> dict[str, list[tuple[str, bytes]]]:
    """The files of each folder below ``prefix`` (one driver, one cluster); files directly under ``prefix``
    belong to none."""
    out: dict[str, list[tuple[str, bytes]]] = {}
    for key, data in files:
        if "/" in key.removeprefix(f"{prefix}/"):
            out.setdefault(folder_of(key, prefix), []).append((key, data))
    return out


def periods_in_path(key: str) -> list[str]:
    """The billing periods a file's path names (``spot_checks/2018-10/rows.csv``); none: it names no period."""
    return sorted({p for p in _PERIOD_IN_PATH.findall(key) if is_billing_period(p)})


def read_rules(store) -> tuple[Rules, Rules | None]:
    """The active and candidate rules (``rules.RulesError`` naming file and YAML path for a bad one)."""
    files = {key.removeprefix(f"{ALLOCATION_PREFIX}/"): data for key, data in landed_files(store, RULES_PREFIX)}
    settings = store.read_bytes(SETTINGS_KEY) if store.exists(SETTINGS_KEY) else None
    return rules.select_rules(files, settings)


@dataclass(frozen=True)
class LandingInputs:
    """Every allocation input of a landing zone, read once per run."""
    active: Rules
    candidate: Rules | None = None
    catalog: pl.DataFrame | None = None
    drivers: dict[str, pl.DataFrame] = field(default_factory=dict)
    telemetry: pl.DataFrame | None = None  # every cluster's OpenCost rows (x_Cluster)
    nodes: pl.DataFrame | None = None  # every cluster's nodes
    spot_checks: pl.DataFrame | None = None  # as the active rules read them (x_SpotCheckFile: the file)

    def for_period(self, ruleset: Rules, period: str) -> engine.AllocationInputs:
        """The engine's inputs for one period (the node weights of every cluster in that period)."""
        weights = None
        if ruleset.kubernetes is not None and self.telemetry is not None:
            weights = kubernetes.node_weights(self.telemetry, self.nodes, ruleset.kubernetes, period)
        return engine.AllocationInputs(ruleset, accounts=self.catalog, drivers=self.drivers, kubernetes=weights)

    def spot_checks_of(self, period: str) -> pl.DataFrame | None:
        """The spot checks that apply to a period: those of files whose path names it, or names no period."""
        if self.spot_checks is None:
            return None
        files = self.spot_checks["x_SpotCheckFile"].unique().to_list()
        applying = [f for f in files if not periods_in_path(f) or period in periods_in_path(f)]
        checks = self.spot_checks.filter(pl.col("x_SpotCheckFile").is_in(applying))
        return checks if checks.height else None


def read_inputs(store) -> LandingInputs:
    """Every allocation input of the landing zone (any landing store); a bad file raises one of INPUT_ERRORS."""
    active, candidate = read_rules(store)
    catalog_files = accounts.catalog_files(store)
    clusters = [kubernetes.read_cluster(files, name)
                for name, files in by_folder(landed_files(store, KUBERNETES_PREFIX), KUBERNETES_PREFIX).items()]
    spot = landed_files(store, SPOT_CHECKS_PREFIX)
    return LandingInputs(
        active, candidate,
        catalog=accounts.read_catalog(catalog_files) if catalog_files else None,
        drivers={name: engine.read_driver(files, name)
                 for name, files in by_folder(landed_files(store, DRIVERS_PREFIX), DRIVERS_PREFIX).items()},
        telemetry=pl.concat([t for t, _ in clusters]) if clusters else None,
        nodes=pl.concat([n for _, n in clusters]) if clusters else None,
        spot_checks=measures.read_spot_checks(spot, active) if spot else None)

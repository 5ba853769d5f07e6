"""Kubernetes node cost split to namespaces and workloads from OpenCost telemetry (no Dagster here).

Inputs, per cluster, under ``<landing>/kubernetes/<cluster>/``:

* **OpenCost CSV exports** (``EXPORT_CSV_FILE``; opencost ``pkg/costmodel/csv_export.go``): one row
  per container and UTC day, header ``Date, Namespace, ControllerKind, ControllerName, Pod,
  Container, CPUCoreUsageAverage, CPUCoreRequestAverage, RAMBytesUsageAverage,
  RAMBytesRequestAverage, NetworkReceiveBytes, NetworkTransferBytes, GPUs, PVBytes, CPUCost,
  RAMCost, NetworkCost, PVCost, GPUCost, TotalCost``, then ``Labels`` (JSON, with
  ``EXPORT_CSV_LABELS_ALL``) and one ``Label_<key>`` column per key of ``EXPORT_CSV_LABELS_LIST``.
  The export names neither the node nor its provider id, but OpenCost copies the node labels of
  ``ALLOCATION_NODE_LABELS_INCLUDE_LIST`` onto each allocation's labels, so a cluster exporting with
  ``ALLOCATION_NODE_LABELS_INCLUDE_LIST=kubernetes.io/hostname,…`` and
  ``EXPORT_CSV_LABELS_LIST=kubernetes_io_hostname`` has each row's node in the column
  ``Label_kubernetes_io_hostname`` (required here). OpenCost's own costs (list prices) are not read:
  cost comes from the nodes' FOCUS rows.
* **``nodes.csv``**: ``node,provider_id,cpu_cores,memory_bytes`` — per node its name, ``.spec.providerID``
  and ``.status.capacity`` (``cpu``, ``memory``) as ``kubectl get nodes -o json`` gives them (Kubernetes
  quantities such as ``3920m`` or ``16393216Ki`` are read as such).

Weights (``node_weights``): per node and day, a workload's weight is ``cpu_weight × cpu / max(capacity,
Σ cpu) + (1 − cpu_weight) × memory / max(capacity, Σ memory)``, its CPU and memory (requests, usage,
or the larger of the two) as a share of the node's capacity — over-committed nodes scale the workloads
to 100 %. Idle (the rest) is an ``__idle__`` row owned by ``idle_values`` (``idle: owner``), or left
out so that the split spreads it pro rata (``idle: share``). OpenCost's averages are over the time a
container ran within the day (the export has no duration), so they are read as covering the day.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Context, Decimal

import polars as pl

from focus_platform.allocation.model import (
    BASIS_MAX,
    BASIS_USAGE,
    IDLE_OWNER,
    Kubernetes,
)

WEIGHT = pl.Decimal(38, 12)
QUANTITY = pl.Decimal(38, 12)
NODES_FILE = "nodes.csv"
IDLE_NAMESPACE = "__idle__"
UNMOUNTED_NAMESPACE = "__unmounted__"  # OpenCost's row for unmounted volumes and load balancers: no node, no CPU/RAM
NODE_COLUMN = "Label_kubernetes_io_hostname"
REQUIRED_COLUMNS = ("Date", "Namespace", "CPUCoreUsageAverage", "CPUCoreRequestAverage",
                    "RAMBytesUsageAverage", "RAMBytesRequestAverage", NODE_COLUMN)
WORKLOAD_COLUMNS = ("ControllerKind", "ControllerName", "Pod", "Container")  # absent in old exports: null
QUANTITY_COLUMNS = ("CPUCoreUsageAverage", "CPUCoreRequestAverage", "RAMBytesUsageAverage", "RAMBytesRequestAverage")
NODE_FILE_COLUMNS = ("node", "provider_id", "cpu_cores", "memory_bytes")
BARE_POD_KIND = "pod"  # a pod without a controller is its own workload
TELEMETRY_SCHEMA = pl.Schema({
    "x_Cluster": pl.String, "x_File": pl.String, "x_Row": pl.Int64, "Date": pl.Date, "Node": pl.String,
    "Namespace": pl.String, **{name: pl.String for name in WORKLOAD_COLUMNS},
    **{name: QUANTITY for name in QUANTITY_COLUMNS}})

NODES_SCHEMA = pl.Schema({"x_Cluster": pl.String, "node": pl.String, "provider_id": pl.String,
                          "ResourceId": pl.String, "cpu_cores": QUANTITY, "memory_bytes": QUANTITY})

_DIVISION = Context(prec=80)
_WEIGHT_STEP = Decimal("1e-12")
_QUANTITY_SUFFIXES = {"m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
                      "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20,
                      "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50}
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$")
_NUMBER = r"^\d+(\.\d*)?([eE][-+]?\d+)?$"
_AWS_INSTANCE = re.compile(r"^aws://[^/]*/(?:[^/]+/)*(i-[0-9a-f]+)$")
_AZURE_VMSS_INSTANCE = re.compile(r"(?i)^(.*/virtualmachinescalesets/[^/]+)/virtualmachines/[^/]+$")
_GCE_INSTANCE = re.compile(r"^gce://([^/]+)/([^/]+)/([^/]+)$")


class KubernetesError(ValueError):
    """Unreadable telemetry or nodes file: one line naming the file, row and column."""


@dataclass(frozen=True)
class KubernetesReport:
    """What the telemetry does not cover or does not say, for one period."""
    unmapped_namespaces: tuple[tuple[str, str], ...] = ()  # (cluster, namespace) no namespaces rule matches
    missing_days: dict[str, tuple[date, ...]] = field(default_factory=dict)  # cluster → days without telemetry
    unknown_nodes: tuple[tuple[str, str], ...] = ()  # (cluster, node) named by telemetry, absent from nodes.csv
    rows_unknown_node: int = 0  # telemetry rows of those nodes (ignored)
    rows_without_node: int = 0  # telemetry rows with CPU or memory but an empty node column (ignored)
    rows_outside_period: int = 0  # telemetry rows of other days than the period's (ignored)

    def lines(self) -> list[str]:
        """One readable line per finding (empty when the telemetry covers the period cleanly)."""
        out = [f"{cluster}: no telemetry on {day_ranges(days)}" for cluster, days in self.missing_days.items() if days]
        out += [f"{cluster}: namespace {ns!r} has no owner mapping (keeps the node row's owner)"
                for cluster, ns in self.unmapped_namespaces]
        out += [f"{cluster}: node {node!r} is not in {NODES_FILE} ({self.rows_unknown_node} rows ignored in all)"
                for cluster, node in self.unknown_nodes]
        if self.rows_without_node:
            out.append(f"{self.rows_without_node} telemetry rows name no node ({NODE_COLUMN} empty): ignored")
        if self.rows_outside_period:
            out.append(f"{self.rows_outside_period} telemetry rows outside the period: ignored")
        return out


def day_ranges(days: tuple[date, ...]) -> str:
    """``2026-11-21..2026-11-30, 2026-11-03`` style: consecutive days as one range."""
    ranges: list[list[date]] = []
    for day in sorted(days):
        if ranges and day - ranges[-1][1] == timedelta(days=1):
            ranges[-1][1] = day
        else:
            ranges.append([day, day])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in ranges)


# --- reading ---------------------------------------------------------------------------------------

def _csv_columns(data: bytes, path: str) -> dict[str, list[str]]:
    """The file's columns as strings, refusing an empty file, a bad encoding or a row of another width."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KubernetesError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise KubernetesError(f"{path}: empty file (no header)")
    columns: dict[str, list[str]] = {name: [] for name in header}
    if len(columns) != len(header):
        raise KubernetesError(f"{path}: repeated column names in the header")
    for row_number, row in enumerate(reader, start=1):
        if len(row) != len(header):
            raise KubernetesError(f"{path}: data row {row_number} has {len(row)} fields, the header {len(header)}")
        for name, value in zip(header, row):
            columns[name].append(value)
    return columns


def _require_columns(path: str, columns: dict[str, list[str]], required: tuple[str, ...]) -> None:
    for name in required:
        if name not in columns:
            hint = (": export with ALLOCATION_NODE_LABELS_INCLUDE_LIST including kubernetes.io/hostname and "
                    "EXPORT_CSV_LABELS_LIST=kubernetes_io_hostname so that each row names its node"
                    if name == NODE_COLUMN else "")
            raise KubernetesError(f"{path}: column {name!r} missing{hint}")


def _first_bad(path: str, raw: pl.Series, bad: pl.Series, column: str, what: str) -> None:
    if bad.any():
        index = int(bad.arg_true()[0])
        raise KubernetesError(f"{path}, data row {index + 1}, column {column}: {raw[index]!r} is not {what}")


def _quantity(path: str, raw: pl.Series, column: str) -> pl.Series:
    """A non-negative number (OpenCost writes Go floats) as Decimal(38,12), refusing anything else."""
    text = raw.str.strip_chars()
    typed = text.cast(QUANTITY, strict=False)
    _first_bad(path, raw, ~text.str.contains(_NUMBER) | typed.is_null(), column, "a non-negative number")
    return typed


def _read_export(path: str, data: bytes, cluster: str) -> pl.DataFrame:
    columns = _csv_columns(data, path)
    _require_columns(path, columns, REQUIRED_COLUMNS)
    rows = len(columns["Date"])
    raw = pl.DataFrame({name: pl.Series(columns[name], dtype=pl.String) for name in columns})
    day = raw["Date"].str.strip_chars().str.to_date("%Y-%m-%d", strict=False)
    _first_bad(path, raw["Date"], day.is_null(), "Date", "a date (YYYY-MM-DD)")
    blank = pl.Series([None] * rows, dtype=pl.String)
    return pl.DataFrame({
        "x_Cluster": [cluster] * rows,
        "x_File": [path] * rows,
        "x_Row": pl.int_range(1, rows + 1, eager=True, dtype=pl.Int64),
        "Date": day,
        "Node": _non_blank(raw[NODE_COLUMN]),
        "Namespace": raw["Namespace"],
        **{name: _non_blank(raw[name]) if name in raw.columns else blank for name in WORKLOAD_COLUMNS},
        **{name: _quantity(path, raw[name], name) for name in QUANTITY_COLUMNS},
    }, schema=TELEMETRY_SCHEMA)


def _non_blank(values: pl.Series) -> pl.Series:
    """Trimmed text, an empty cell as null."""
    stripped = values.str.strip_chars()
    return pl.select(pl.when(stripped != "").then(stripped)).to_series().alias(values.name)


def read_opencost(files: list[tuple[str, bytes]], cluster: str) -> pl.DataFrame:
    """OpenCost CSV exports of one cluster as one typed frame (``TELEMETRY_SCHEMA``), each row with
    its file and data row. Raises ``KubernetesError`` naming the file, row and column of the first
    bad value (a missing column, a date that is not ``YYYY-MM-DD``, a quantity that is not a number)."""
    frames = [_read_export(path, data, cluster) for path, data in files]
    return pl.concat(frames) if frames else TELEMETRY_SCHEMA.to_frame()


def kubernetes_quantity(text: str) -> Decimal | None:
    """A Kubernetes resource quantity (``4``, ``3920m``, ``16393216Ki``, ``1.5Gi``) as a Decimal; None if not one."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        return None
    number, suffix = match.groups()
    return Decimal(number) * _QUANTITY_SUFFIXES[suffix] if suffix else Decimal(number)


def resource_id(provider_id: str) -> str:
    """A node's ``.spec.providerID`` as FOCUS ResourceId holds the instance: AWS ``aws:///us-east-1a/i-0abc``
    → ``i-0abc``; Azure ``azure:///subscriptions/…/virtualMachineScaleSets/<set>/virtualMachines/<n>`` →
    the scale set's id (cost details bill a scale set, not its instances; a plain VM keeps its id); GCP
    ``gce://<project>/<zone>/<name>`` → ``//compute.googleapis.com/projects/<project>/zones/<zone>/instances/<name>``.
    Anything else (OCI instance OCIDs, or an id already written as the bill has it) is kept as is."""
    value = provider_id.strip()
    if aws := _AWS_INSTANCE.match(value):
        return aws.group(1)
    if value.lower().startswith("azure://"):
        arm = value[len("azure://"):]
        vmss = _AZURE_VMSS_INSTANCE.match(arm)
        return vmss.group(1) if vmss else arm
    if gce := _GCE_INSTANCE.match(value):
        project, zone, name = gce.groups()
        return f"//compute.googleapis.com/projects/{project}/zones/{zone}/instances/{name}"
    return value


def read_nodes(path: str, data: bytes, cluster: str) -> pl.DataFrame:
    """A cluster's ``nodes.csv`` (``NODES_SCHEMA``): each node once, a provider id, capacities above 0."""
    columns = _csv_columns(data, path)
    _require_columns(path, columns, NODE_FILE_COLUMNS)
    seen: set[str] = set()
    rows = []
    for index, values in enumerate(zip(*(columns[name] for name in NODE_FILE_COLUMNS)), start=1):
        node, provider_id, cpu, memory = (v.strip() for v in values)
        where = f"{path}, data row {index}"
        if not node:
            raise KubernetesError(f"{where}, column node: empty")
        if node in seen:
            raise KubernetesError(f"{where}, column node: {node!r} listed twice")
        if not provider_id:
            raise KubernetesError(f"{where}, column provider_id: empty for node {node!r}")
        capacities = []
        for column, raw in (("cpu_cores", cpu), ("memory_bytes", memory)):
            quantity = kubernetes_quantity(raw)
            if quantity is None or quantity <= 0:
                raise KubernetesError(f"{where}, column {column}: {raw!r} is not a capacity above 0")
            capacities.append(quantity.quantize(_WEIGHT_STEP, rounding=ROUND_FLOOR))
        seen.add(node)
        rows.append((cluster, node, provider_id, resource_id(provider_id), *capacities))
    return pl.DataFrame(rows, schema=NODES_SCHEMA, orient="row")


def read_cluster(files: list[tuple[str, bytes]], cluster: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(telemetry, nodes) of one cluster folder: ``nodes.csv`` is the nodes file, every other CSV an export."""
    def is_nodes_file(path: str) -> bool:
        return path.replace("\\", "/").rsplit("/", 1)[-1] == NODES_FILE

    nodes = [(path, data) for path, data in files if is_nodes_file(path)]
    if len(nodes) != 1:
        raise KubernetesError(f"kubernetes/{cluster}: expected one {NODES_FILE} beside the OpenCost exports, "
                              f"found {len(nodes)}")
    exports = [(path, data) for path, data in files if not is_nodes_file(path)]
    return read_opencost(exports, cluster), read_nodes(*nodes[0], cluster)


# --- weights ---------------------------------------------------------------------------------------

def _period_days(period: str) -> tuple[date, date]:
    """[first day, first day of the next month) of a 'YYYY-MM' period."""
    first = datetime.strptime(period, "%Y-%m").date()
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following


def _in_period(telemetry: pl.DataFrame, period: str) -> pl.DataFrame:
    first, following = _period_days(period)
    return telemetry.filter(pl.col("Date").is_between(first, following, closed="left"),
                            pl.col("Namespace") != UNMOUNTED_NAMESPACE)


def _basis(k8s: Kubernetes, resource: str) -> pl.Expr:
    request, usage = pl.col(f"{resource}RequestAverage"), pl.col(f"{resource}UsageAverage")
    if k8s.basis == BASIS_USAGE:
        return usage
    if k8s.basis == BASIS_MAX:
        return pl.max_horizontal(request, usage)
    return request


def owner_dimensions(k8s: Kubernetes) -> list[str]:
    """The dimensions the namespace rules and idle values set, in order of first mention."""
    names = [d for rule in k8s.namespaces for d in rule.values] + list(k8s.idle_values)
    return list(dict.fromkeys(names))


def namespace_owner(k8s: Kubernetes, namespace: str) -> dict[str, str] | None:
    """The owner values of the first rule whose pattern fully matches ``namespace`` (None: no rule matches)."""
    return next((rule.values for rule in k8s.namespaces if re.fullmatch(rule.pattern, namespace)), None)


def _share(part: Decimal, whole: Decimal) -> Decimal:
    return _DIVISION.divide(part, whole) if whole else Decimal(0)


def _workload_weights(frame: pl.DataFrame, cpu_weight: Decimal) -> pl.Series:
    """Each row's weight, floored to 12 places so that a node-day's weights never pass 1."""
    memory_weight = 1 - cpu_weight
    weights = [
        (cpu_weight * _share(cpu, cpu_whole) + memory_weight * _share(ram, ram_whole))
        .quantize(_WEIGHT_STEP, rounding=ROUND_FLOOR)
        for cpu, cpu_whole, ram, ram_whole in frame.select("cpu", "cpu_whole", "ram", "ram_whole").iter_rows()]
    return pl.Series("weight", weights, dtype=WEIGHT)


def node_weights(telemetry: pl.DataFrame, nodes: pl.DataFrame, k8s: Kubernetes, period: str) -> pl.DataFrame:
    """Per node (``ResourceId``) and UTC day of ``period``: the weight of each workload and of idle capacity.

    Columns: ResourceId, x_WindowStart, x_WindowEnd (UTC, one day), x_Cluster, x_Namespace,
    x_AllocatedResourceId (``<cluster>/<namespace>/<kind>/<controller>``), x_AllocatedResourceName,
    weight (Decimal(38,12)), then one column per ``owner_dimensions(k8s)`` (null: the node row keeps its
    own value). With ``idle: owner`` each node-day's weights sum to exactly 1 (idle = 1 − the workloads);
    with ``idle: share`` there is no idle row (a node-day without any workload weight is one ``__idle__``
    row of weight 1 that keeps the node row's owner). Telemetry outside the period, of nodes absent from
    the nodes file, or without a node is left out (``kubernetes_report`` counts it)."""
    dims = owner_dimensions(k8s)
    node_day = ["x_Cluster", "Node", "Date"]
    workloads = (
        _in_period(telemetry, period)
        .join(nodes.rename({"node": "Node"}), on=["x_Cluster", "Node"], how="inner")
        .with_columns(kind=pl.coalesce("ControllerKind", pl.lit(BARE_POD_KIND)),
                      workload=pl.coalesce("ControllerName", "Pod"),
                      cpu=_basis(k8s, "CPUCore"), ram=_basis(k8s, "RAMBytes"))
        .group_by(*node_day, "ResourceId", "cpu_cores", "memory_bytes", "Namespace", "kind", "workload")
        .agg(pl.col("cpu").sum(), pl.col("ram").sum())
        .with_columns(cpu_whole=pl.max_horizontal("cpu_cores", pl.col("cpu").sum().over(node_day)),
                      ram_whole=pl.max_horizontal("memory_bytes", pl.col("ram").sum().over(node_day)))
        .sort(*node_day, "Namespace", "kind", "workload", nulls_last=True))
    workloads = workloads.with_columns(_workload_weights(workloads, k8s.cpu_weight))
    owners = _namespace_owners(k8s, dims, workloads["Namespace"].unique().to_list())
    rows = workloads.filter(pl.col("weight") > 0).join(owners, on="Namespace", how="left").select(
        *node_day, "ResourceId",
        x_Namespace=pl.col("Namespace"),
        x_AllocatedResourceId=pl.concat_str("x_Cluster", "Namespace", "kind", pl.col("workload").fill_null(""),
                                            separator="/"),
        x_AllocatedResourceName=pl.col("workload"),
        weight=pl.col("weight"),
        **{d: pl.col(d) for d in dims})
    idle = _idle_rows(workloads, k8s, dims, node_day)
    return (pl.concat([rows, idle], how="vertical")
            .with_columns(x_WindowStart=pl.col("Date").cast(pl.Datetime("us", "UTC")))
            .select("ResourceId", "x_WindowStart",
                    x_WindowEnd=pl.col("x_WindowStart") + pl.duration(days=1),
                    x_Cluster=pl.col("x_Cluster"), x_Node=pl.col("Node"),
                    **{c: pl.col(c) for c in ("x_Namespace", "x_AllocatedResourceId", "x_AllocatedResourceName",
                                               "weight", *dims)})
            .sort("x_Cluster", "x_Node", "x_WindowStart", "x_Namespace", "x_AllocatedResourceId"))


def _namespace_owners(k8s: Kubernetes, dims: list[str], namespaces: list[str]) -> pl.DataFrame:
    owners = {ns: namespace_owner(k8s, ns) or {} for ns in namespaces}
    return pl.DataFrame({"Namespace": list(owners), **{d: [o.get(d) for o in owners.values()] for d in dims}},
                        schema={"Namespace": pl.String, **{d: pl.String for d in dims}})


def _idle_rows(workloads: pl.DataFrame, k8s: Kubernetes, dims: list[str], node_day: list[str]) -> pl.DataFrame:
    """``idle: owner``: 1 − the workloads' weights, owned by idle_values, where above 0. ``idle: share``: only
    node-days whose workloads weigh nothing, weight 1 and no owner values (the node row keeps its owner)."""
    totals = workloads.group_by(*node_day, "ResourceId").agg(used=pl.col("weight").sum())
    if k8s.idle == IDLE_OWNER:
        totals = totals.with_columns(weight=(pl.lit(Decimal(1), WEIGHT) - pl.col("used")).cast(WEIGHT))
        values = k8s.idle_values
    else:
        totals = totals.filter(pl.col("used") == 0).with_columns(weight=pl.lit(Decimal(1), WEIGHT))
        values = {}
    return totals.filter(pl.col("weight") > 0).select(
        *node_day, "ResourceId",
        x_Namespace=pl.lit(IDLE_NAMESPACE),
        x_AllocatedResourceId=pl.concat_str("x_Cluster", pl.lit(IDLE_NAMESPACE), separator="/"),
        x_AllocatedResourceName=pl.lit(IDLE_NAMESPACE),
        weight=pl.col("weight"),
        **{d: pl.lit(values.get(d), pl.String) for d in dims})


def kubernetes_report(telemetry: pl.DataFrame, nodes: pl.DataFrame, k8s: Kubernetes, period: str) -> KubernetesReport:
    """What ``node_weights`` leaves out or cannot own, for ``period``: namespaces without an owner mapping,
    days of the period without telemetry (per cluster of the telemetry or the nodes file), nodes
    absent from the nodes file, rows without a node, rows outside the period."""
    first, following = _period_days(period)
    in_period = _in_period(telemetry, period)
    known = nodes.select("x_Cluster", Node="node")
    unknown = in_period.filter(pl.col("Node").is_not_null()).join(known, on=["x_Cluster", "Node"], how="anti")
    without_node = in_period.filter(pl.col("Node").is_null(), pl.any_horizontal(
        [pl.col(c) > 0 for c in QUANTITY_COLUMNS]))
    namespaces = in_period.select("x_Cluster", "Namespace").unique().sort("x_Cluster", "Namespace").rows()
    days = [first + timedelta(days=i) for i in range((following - first).days)]
    clusters = sorted(set(telemetry["x_Cluster"].to_list()) | set(nodes["x_Cluster"].to_list()))
    covered = {c: set(in_period.filter(pl.col("x_Cluster") == c)["Date"].to_list()) for c in clusters}
    return KubernetesReport(
        unmapped_namespaces=tuple((c, ns) for c, ns in namespaces if namespace_owner(k8s, ns) is None),
        missing_days={c: tuple(d for d in days if d not in covered[c]) for c in clusters},
        unknown_nodes=tuple(unknown.select("x_Cluster", "Node").unique().sort("x_Cluster", "Node").rows()),
        rows_unknown_node=unknown.height,
        rows_without_node=without_node.height,
        rows_outside_period=telemetry.height - telemetry.filter(
            pl.col("Date").is_between(first, following, closed="left")).height,
    )


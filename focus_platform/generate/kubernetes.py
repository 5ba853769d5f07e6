"""Synthetic OpenCost telemetry for clusters made of the compute instances of generated FOCUS rows.

``generate_kubernetes(focus, out, seed=...)`` picks the nodes, then writes under ``out/kubernetes/``::

    <cluster>/nodes.csv                        node, provider_id, cpu_cores, memory_bytes
    <cluster>/opencost-<YYYY-MM-DD>.csv        one OpenCost CSV export per UTC day (its documented header,
                                               plus Label_kubernetes_io_hostname naming each row's node)
    expected_namespace_shares.csv              the truth: per node and day, each namespace's weight

Nodes are compute instances: Usage rows whose ResourceId is an instance as the bill names it (AWS
``i-…``, an Azure VM or scale set, a zonal GCE instance, an OCI instance OCID). Instances that carry a
cluster tag (``CLUSTER_TAG_KEYS``) form their tag's cluster; the generated bills carry none, so then
up to ``nodes_per_cluster`` instances of one region per cluster are chosen by seed among those with the most
usage rows.
Every node reports every day of the months its rows fall in. Workloads request CPU in steps of 250m and
memory in steps of 256 MiB on nodes of 4, 8 or 16 cores (4 GiB per core) and never more than the node
holds, so each share is an exact decimal and the truth (``requests`` basis, ``cpu_weight`` 0.5, idle as
``__idle__``) is exact to the last digit. Deterministic for a seed.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from focus_platform.allocation.kubernetes import (
    IDLE_NAMESPACE,
    NODE_COLUMN,
    NODES_FILE,
    resource_id,
)

CLUSTER_TAG_KEYS = ("eks:cluster-name", "aws:eks:cluster-name", "kubernetes-cluster", "goog-k8s-cluster-name",
                    "cluster")
EXPECTED_FILE = "expected_namespace_shares.csv"
OPENCOST_HEADER = ("Date", "Namespace", "ControllerKind", "ControllerName", "Pod", "Container",
                   "CPUCoreUsageAverage", "CPUCoreRequestAverage", "RAMBytesUsageAverage", "RAMBytesRequestAverage",
                   "NetworkReceiveBytes", "NetworkTransferBytes", "GPUs", "PVBytes", "CPUCost", "RAMCost",
                   "NetworkCost", "PVCost", "GPUCost", "TotalCost", NODE_COLUMN)
NODE_SIZES = (4, 8, 16)  # cores; memory: 4 GiB per core
CPU_STEP = Decimal("0.25")  # cores
MEMORY_STEP = 256 * 2**20  # bytes
GIB = 2**30
LIST_CORE_HOUR, LIST_GIB_HOUR = 0.031611, 0.004237  # OpenCost's default-like list prices (its cost columns only)
INSTANCE_ID = re.compile(r"(?i)^(i-[0-9a-f]+|/subscriptions/.+/providers/microsoft\.compute/"
                         r"(virtualmachines|virtualmachinescalesets)/[^/]+|//compute\.googleapis\.com/projects/[^/]+/"
                         r"zones/[^/]+/instances/[^/]+|ocid1\.instance\..+)$")
_GCE = re.compile(r"^//compute\.googleapis\.com/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$")
WORKLOADS = (  # namespace, controller kind, controller name, max pods, max CPU steps, max memory steps per pod
    ("payments", "deployment", "payments-api", 3, 4, 4),
    ("payments", "deployment", "ledger-worker", 2, 2, 8),
    ("checkout", "deployment", "checkout-web", 3, 2, 2),
    ("ml-train", "job", "trainer", 1, 8, 16),
    ("ml-serve", "deployment", "model-server", 2, 4, 12),
    ("data-etl", "cronjob", "nightly-etl", 1, 4, 8),
    ("monitoring", "daemonset", "node-exporter", 1, 1, 1),
    ("kube-system", "daemonset", "kube-proxy", 1, 1, 1),
)


@dataclass(frozen=True)
class Node:
    cluster: str
    name: str
    resource_id: str
    provider_id: str
    cores: int

    @property
    def memory_bytes(self) -> int:
        return self.cores * 4 * GIB


@dataclass(frozen=True)
class KubernetesSummary:
    out_dir: Path
    clusters: dict[str, int]  # cluster → nodes
    days: int
    telemetry_rows: int
    files: list[Path]
    expected_path: Path
    tagged: bool  # True: clusters from instance tags; False: nodes chosen by seed


def provider_id(resource: str, zone: str | None, region: str | None) -> str | None:
    """The ``.spec.providerID`` a node on this instance has (None when the bill's id cannot give one)."""
    if resource.startswith("i-"):
        place = zone or (f"{region}a" if region else None)
        return f"aws:///{place}/{resource}" if place else None
    if resource.lower().startswith("/subscriptions/"):
        return f"azure://{resource}"
    if gce := _GCE.match(resource):
        return "gce://{}/{}/{}".format(*gce.groups())
    return resource


def _instances(focus: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per compute instance: its id, zone, region, cluster tag (if any), usage rows and months."""
    lf = focus.lazy() if isinstance(focus, pl.DataFrame) else focus
    tags = pl.col("Tags").str.json_path_match
    cluster_tag = pl.coalesce([tags(f'$["{key}"]') for key in CLUSTER_TAG_KEYS])
    return (lf.filter(pl.col("ChargeCategory") == "Usage", pl.col("ResourceId").str.contains(INSTANCE_ID.pattern))
            .group_by("ResourceId")
            .agg(zone=pl.col("AvailabilityZone").drop_nulls().min(), region=pl.col("RegionId").drop_nulls().min(),
                 cluster=cluster_tag.drop_nulls().min(), rows=pl.len(),
                 months=pl.col("ChargePeriodStart").dt.strftime("%Y-%m").unique().sort())
            .sort("ResourceId").collect())


def choose_nodes(focus: pl.DataFrame | pl.LazyFrame, *, seed: int, clusters: tuple[str, ...],
                 nodes_per_cluster: int) -> tuple[list[Node], list[str], bool]:
    """(nodes, months covered, whether clusters came from tags)."""
    rng = np.random.default_rng(seed)
    found = _instances(focus).with_columns(
        provider_id=pl.struct("ResourceId", "zone", "region").map_elements(
            lambda r: provider_id(r["ResourceId"], r["zone"], r["region"]), return_dtype=pl.String))
    found = found.filter(pl.col("provider_id").is_not_null(),
                         pl.col("provider_id").map_elements(resource_id, return_dtype=pl.String)
                         == pl.col("ResourceId"))
    tagged = found.filter(pl.col("cluster").is_not_null())
    if tagged.height:
        picked = [(row["cluster"], row) for row in tagged.sort("cluster", "ResourceId").iter_rows(named=True)]
    else:
        ranked = found.with_columns(draw=pl.Series(rng.random(found.height))).sort(
            "rows", "draw", descending=[True, False])
        picked = _one_region_each(list(ranked.iter_rows(named=True)), clusters, nodes_per_cluster)
    count: dict[str, int] = {}
    nodes = []
    for cluster, row in picked:
        count[cluster] = count.get(cluster, 0) + 1
        nodes.append(Node(cluster, f"{cluster}-node-{count[cluster]}", row["ResourceId"], row["provider_id"],
                          int(rng.choice(NODE_SIZES))))
    months = sorted({m for _, row in picked for m in row["months"]})
    return nodes, months, bool(tagged.height)


def _one_region_each(ranked: list[dict], clusters: tuple[str, ...], size: int) -> list[tuple[str, dict]]:
    """Each cluster in turn takes the best-ranked instance left and up to ``size`` − 1 more of its region."""
    left, picked = list(ranked), []
    for cluster in clusters:
        if not left:
            break
        region = left[0]["region"]
        members = [row for row in left if row["region"] == region][:size]
        picked += [(cluster, row) for row in members]
        left = [row for row in left if row not in members]
    return picked


def _days(months: list[str]) -> list[date]:
    days = []
    for month in months:
        day = date.fromisoformat(f"{month}-01")
        while day.strftime("%Y-%m") == month:
            days.append(day)
            day += timedelta(days=1)
    return days


def _go_float(value: float) -> str:
    """A float as Go's strconv.FormatFloat(f, 'f', -1, 64) writes it (shortest, never an exponent)."""
    return np.format_float_positional(value, trim="-")


def _node_day(node: Node, day: date, rng: np.random.Generator) -> tuple[list[list[str]], dict[str, Decimal]]:
    """One node's OpenCost rows for one day and each namespace's true weight (requests, cpu_weight 0.5)."""
    cpu_free, memory_free = Decimal(node.cores), node.memory_bytes
    rows, cpu_by_ns, memory_by_ns = [], {}, {}
    for namespace, kind, controller, max_pods, max_cpu, max_memory in WORKLOADS:
        if kind != "daemonset" and rng.random() < 0.35:
            continue
        for pod_index in range(int(rng.integers(1, max_pods + 1))):
            cpu = CPU_STEP * int(rng.integers(1, max_cpu + 1))
            memory = MEMORY_STEP * int(rng.integers(1, max_memory + 1))
            if cpu > cpu_free or memory > memory_free:
                continue
            cpu_free, memory_free = cpu_free - cpu, memory_free - memory
            cpu_by_ns[namespace] = cpu_by_ns.get(namespace, 0) + cpu
            memory_by_ns[namespace] = memory_by_ns.get(namespace, 0) + memory
            pod = f"{controller}-{node.name.rsplit('-', 1)[-1]}{pod_index}-{int(rng.integers(16**5)):05x}"
            cpu_used = float(cpu) * float(rng.uniform(0.1, 1.3))
            memory_used = float(memory) * float(rng.uniform(0.3, 1.1))
            cpu_cost = float(cpu) * 24 * LIST_CORE_HOUR
            ram_cost = memory / GIB * 24 * LIST_GIB_HOUR
            rows.append([day.isoformat(), namespace, kind, controller, pod, "app", _go_float(cpu_used), _go_float(float(cpu)),
                         _go_float(memory_used), str(memory), "0", "0", "0", "0", _go_float(cpu_cost),
                         _go_float(ram_cost), "0", "0", "0", _go_float(cpu_cost + ram_cost), node.name])
    half = Decimal("0.5")
    shares = {ns: half * cpu_by_ns[ns] / node.cores + half * Decimal(memory_by_ns[ns]) / node.memory_bytes
              for ns in cpu_by_ns}
    shares[IDLE_NAMESPACE] = 1 - sum(shares.values(), Decimal(0))
    return rows, shares


def _unmounted_row(day: date) -> list[str]:
    """OpenCost's row for volumes no pod mounts: no node, no CPU or memory."""
    return [day.isoformat(), "__unmounted__", "", "", "__unmounted__", "__unmounted__", "0", "0", "0", "0", "0",
            "0", "0", "10737418240", "0", "0", "0", "0.013", "0", "0.013", ""]


def _write_csv(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def generate_kubernetes(focus: pl.DataFrame | pl.LazyFrame, out: str | Path, *, seed: int = 0,
                        clusters: tuple[str, ...] = ("k8s-prod", "k8s-dev"),
                        nodes_per_cluster: int = 3) -> KubernetesSummary:
    """Write OpenCost telemetry, nodes files and the true namespace shares for clusters on ``focus``'s instances.

    Raises ValueError when the rows hold no compute instance to run a cluster on."""
    if not clusters or nodes_per_cluster < 1:
        raise ValueError("clusters must name at least one cluster and nodes_per_cluster be >= 1")
    nodes, months, tagged = choose_nodes(focus, seed=seed, clusters=clusters, nodes_per_cluster=nodes_per_cluster)
    if not nodes:
        raise ValueError("the FOCUS rows hold no compute instance (Usage rows with an instance ResourceId)")
    rng = np.random.default_rng([seed, 12])
    root = Path(out) / "kubernetes"
    days = _days(months)
    files: list[Path] = []
    expected: list[list[str]] = []
    telemetry_rows = 0
    for cluster in dict.fromkeys(n.cluster for n in nodes):
        members = [n for n in nodes if n.cluster == cluster]
        folder = root / cluster
        folder.mkdir(parents=True, exist_ok=True)
        files.append(_write_csv(folder / NODES_FILE, ("node", "provider_id", "cpu_cores", "memory_bytes"),
                                [[n.name, n.provider_id, str(n.cores), str(n.memory_bytes)] for n in members]))
        for day in days:
            rows = []
            for node in members:
                node_rows, shares = _node_day(node, day, rng)
                rows += node_rows
                expected += [[cluster, node.name, node.resource_id, day.isoformat(), ns, f"{w:.12f}"]
                             for ns, w in sorted(shares.items())]
            rows.append(_unmounted_row(day))
            telemetry_rows += len(rows)
            files.append(_write_csv(folder / f"opencost-{day.isoformat()}.csv", OPENCOST_HEADER, rows))
    expected_path = _write_csv(root / EXPECTED_FILE,
                               ("x_Cluster", "x_Node", "ResourceId", "date", "namespace", "weight"), expected)
    sizes = {c: sum(n.cluster == c for n in nodes) for c in dict.fromkeys(n.cluster for n in nodes)}
    return KubernetesSummary(root, sizes, len(days), telemetry_rows, files, expected_path, tagged)

"""Kubernetes allocation inputs: OpenCost exports and nodes files read and checked, node weights per day,
the report of what the telemetry does not cover, the telemetry generator, and a reserved cluster's
namespace costs summing to the nodes' EffectiveCost and BilledCost (not their list price)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.allocation.kubernetes import (
    IDLE_NAMESPACE,
    KubernetesError,
    kubernetes_quantity,
    kubernetes_report,
    node_weights,
    read_cluster,
    read_nodes,
    read_opencost,
    resource_id,
)
from focus_platform.allocation.model import Kubernetes, NamespaceOwner
from focus_platform.generate.kubernetes import EXPECTED_FILE, generate_kubernetes

FIXTURE = Path(__file__).parents[1] / "fixtures" / "kubernetes" / "eks-prod"
PERIOD = "2026-11"
HEADER = ("Date,Namespace,ControllerKind,ControllerName,Pod,Container,CPUCoreUsageAverage,CPUCoreRequestAverage,"
          "RAMBytesUsageAverage,RAMBytesRequestAverage,CPUCost,RAMCost,TotalCost,Label_kubernetes_io_hostname\n")
NODES = b"node,provider_id,cpu_cores,memory_bytes\nn1,aws:///us-east-1a/i-01,4,16Gi\nn2,aws:///us-east-1a/i-02,8,32Gi\n"
RULES = Kubernetes(namespaces=(NamespaceOwner("payments|checkout", {"team": "web"}),
                               NamespaceOwner("ml-.*", {"team": "ml", "product": "models"})),
                   idle_values={"team": "k8s-idle"})
GIB = 2**30


def _fixture_files() -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in sorted(FIXTURE.glob("*.csv"))]


def _export(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def _row(day: str, namespace: str, workload: str, cpu: str, memory: int, node: str = "n1",
         cpu_used: str = "0.1", memory_used: int = 1) -> str:
    return f"{day},{namespace},deployment,{workload},{workload}-1,app,{cpu_used},{cpu},{memory_used},{memory},0,0,0,{node}"


def _weights(rows: list[str], k8s: Kubernetes = RULES) -> pl.DataFrame:
    telemetry = read_opencost([("export.csv", _export(*rows))], "c1")
    return node_weights(telemetry, read_nodes("nodes.csv", NODES, "c1"), k8s, PERIOD)


def _error(files: list[tuple[str, bytes]]) -> str:
    with pytest.raises(KubernetesError) as caught:
        read_opencost(files, "c1")
    return str(caught.value)


# --- reading ---------------------------------------------------------------------------------------

def test_reads_an_opencost_export_as_documented():
    telemetry, nodes = read_cluster(_fixture_files(), "eks-prod")
    assert telemetry.height == 9 and telemetry["x_Cluster"].unique().to_list() == ["eks-prod"]
    first = telemetry.row(0, named=True)
    assert first["Date"] == date(2026, 11, 1) and first["Node"] == "ip-10-0-1-23.ec2.internal"
    assert (first["Namespace"], first["ControllerKind"], first["ControllerName"], first["Container"]) == (
        "payments", "deployment", "payments-api", "api")
    assert first["CPUCoreRequestAverage"] == Decimal("1") and first["RAMBytesUsageAverage"] == Decimal("1503238553.6")
    assert telemetry.schema["CPUCoreRequestAverage"] == pl.Decimal(38, 12)
    unmounted = telemetry.filter(pl.col("Namespace") == "__unmounted__").row(0, named=True)
    assert unmounted["Node"] is None and unmounted["ControllerKind"] is None
    assert nodes.select("node", "ResourceId", "cpu_cores", "memory_bytes").rows() == [
        ("ip-10-0-1-23.ec2.internal", "i-0a1b2c3d4e5f60718", Decimal("4"), Decimal(16 * GIB)),
        ("ip-10-0-2-7.ec2.internal", "i-0f9e8d7c6b5a40312", Decimal("3.92"), Decimal(16393216 * 1024))]


def test_missing_column_is_named_with_how_to_export_it():
    message = _error([("a.csv", b"Date,Namespace,CPUCoreUsageAverage\n2026-11-01,x,1\n")])
    assert message == "a.csv: column 'CPUCoreRequestAverage' missing"
    no_node = HEADER.replace(",Label_kubernetes_io_hostname", "").encode()
    message = _error([("b.csv", no_node)])
    assert message.startswith("b.csv: column 'Label_kubernetes_io_hostname' missing: export with "
                              "ALLOCATION_NODE_LABELS_INCLUDE_LIST")


@pytest.mark.parametrize("value", ["abc", "", "-1", "1.5.2", "NaN", "inf"])
def test_non_numeric_request_names_file_row_and_column(value):
    rows = _export(_row("2026-11-01", "payments", "api", "1", 1), _row("2026-11-01", "payments", "web", value, 1))
    assert _error([("ok.csv", _export()), ("bad.csv", rows)]) == (
        f"bad.csv, data row 2, column CPUCoreRequestAverage: {value!r} is not a non-negative number")


def test_bad_date_and_ragged_row_are_refused():
    assert _error([("d.csv", _export(_row("11/01/2026", "x", "a", "1", 1)))]) == (
        "d.csv, data row 1, column Date: '11/01/2026' is not a date (YYYY-MM-DD)")
    assert _error([("r.csv", _export(_row("2026-11-01", "x", "a", "1", 1) + ",extra"))]) == (
        "r.csv: data row 1 has 15 fields, the header 14")
    assert _error([("e.csv", b"")]) == "e.csv: empty file (no header)"


@pytest.mark.parametrize("line, message", [
    ("n1,aws:///a/i-01,4,16Gi\nn1,aws:///a/i-02,4,16Gi", "data row 2, column node: 'n1' listed twice"),
    ("n1,,4,16Gi", "data row 1, column provider_id: empty for node 'n1'"),
    ("n1,aws:///a/i-01,four,16Gi", "data row 1, column cpu_cores: 'four' is not a capacity above 0"),
    ("n1,aws:///a/i-01,4,0", "data row 1, column memory_bytes: '0' is not a capacity above 0"),
])
def test_bad_nodes_file(line, message):
    with pytest.raises(KubernetesError, match="^nodes.csv, " + message):
        read_nodes("nodes.csv", f"node,provider_id,cpu_cores,memory_bytes\n{line}\n".encode(), "c1")


def test_cluster_folder_needs_one_nodes_file():
    with pytest.raises(KubernetesError, match="expected one nodes.csv beside the OpenCost exports, found 0"):
        read_cluster([("k/c1/export.csv", _export())], "c1")


def test_kubernetes_quantities():
    assert kubernetes_quantity("3920m") == Decimal("3.920")
    assert kubernetes_quantity("16393216Ki") == Decimal(16393216 * 1024)
    assert kubernetes_quantity("1.5Gi") == Decimal("1.5") * GIB
    assert kubernetes_quantity("17179869184") == Decimal(16 * GIB)
    assert kubernetes_quantity("12 cores") is None


@pytest.mark.parametrize("provider_id, expected", [
    ("aws:///us-east-1a/i-0abc123def4567890", "i-0abc123def4567890"),
    ("azure:///subscriptions/s1/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/"
     "aks-pool-1-vmss/virtualMachines/3",
     "/subscriptions/s1/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-pool-1-vmss"),
    ("azure:///subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
     "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"),
    ("gce://proj-1/us-central1-a/gke-main-pool-1a2b", "//compute.googleapis.com/projects/proj-1/zones/"
     "us-central1-a/instances/gke-main-pool-1a2b"),
    ("ocid1.instance.oc1.iad.abc", "ocid1.instance.oc1.iad.abc"),
])
def test_provider_ids_as_focus_resource_ids(provider_id, expected):
    assert resource_id(provider_id) == expected


# --- weights ---------------------------------------------------------------------------------------

def test_weights_per_node_day_sum_to_the_whole_node():
    telemetry, nodes = read_cluster(_fixture_files(), "eks-prod")
    weights = node_weights(telemetry, nodes, RULES, PERIOD)
    assert weights.schema["weight"] == pl.Decimal(38, 12)
    assert weights.columns[:8] == ["ResourceId", "x_WindowStart", "x_WindowEnd", "x_Cluster", "x_Node",
                                   "x_Namespace", "x_AllocatedResourceId", "x_AllocatedResourceName"]
    sums = weights.group_by("ResourceId", "x_WindowStart").agg(pl.col("weight").sum())
    assert sums.height == 4 and sums["weight"].to_list() == [Decimal(1)] * 4
    day1 = weights.filter(pl.col("ResourceId") == "i-0a1b2c3d4e5f60718",
                          pl.col("x_WindowStart") == datetime(2026, 11, 1, tzinfo=timezone.utc))
    by_workload = dict(zip(day1["x_AllocatedResourceId"], day1["weight"]))
    # payments-api: (1 + 0.25 cores) / 4 and (2 GiB + 256 MiB) / 16 GiB, half each
    assert by_workload["eks-prod/payments/deployment/payments-api"] == Decimal("0.5") * Decimal("1.25") / 4 + (
        Decimal("0.5") * Decimal(2 * GIB + 2**28) / (16 * GIB))
    assert by_workload["eks-prod/ml-train/job/trainer-20261101"] == Decimal("0.375")
    assert day1.filter(pl.col("x_Namespace") == IDLE_NAMESPACE)["team"].to_list() == ["k8s-idle"]
    assert (day1["x_WindowEnd"] - day1["x_WindowStart"]).unique().to_list() == [timedelta(days=1)]
    bare = weights.filter(pl.col("x_Namespace") == "legacy-batch").row(0, named=True)
    assert (bare["x_AllocatedResourceId"], bare["x_AllocatedResourceName"]) == (
        "eks-prod/legacy-batch/pod/debug-shell", "debug-shell")
    assert bare["team"] is None and bare["product"] is None  # unmapped: the node row keeps its owner
    assert weights.filter(pl.col("x_Namespace") == "ml-train").select("team", "product").row(0) == ("ml", "models")
    assert "__unmounted__" not in weights["x_Namespace"].to_list()


def test_weights_are_floored_so_idle_is_never_negative():
    weights = _weights([_row("2026-11-01", "payments", f"w{i}", "0.1", 1_000_000_005) for i in range(7)])
    assert weights.filter(pl.col("x_Namespace") != IDLE_NAMESPACE)["weight"].to_list()[0] == Decimal(
        "0.041603830602")  # ½ · 0.1/4 + ½ · 1000000005/16 GiB = 0.04160383060225…, floored (not rounded up)
    assert weights["weight"].sum() == Decimal(1)


def test_over_committed_node_scales_workloads_to_the_whole():
    weights = _weights([_row("2026-11-01", "payments", "api", "6", 8 * GIB),
                        _row("2026-11-01", "ml-a", "train", "2", 8 * GIB)])  # 8 cores requested on 4
    assert weights["x_Namespace"].to_list() == ["ml-a", "payments"]  # memory 16 of 16 GiB, CPU 8 of 4: no idle
    assert weights["weight"].to_list() == [Decimal("0.375"), Decimal("0.625")]


def test_idle_share_mode_spreads_idle_pro_rata():
    rows = [_row("2026-11-01", "payments", "api", "1", 4 * GIB), _row("2026-11-01", "ml-a", "t", "0.5", 2 * GIB),
            _row("2026-11-01", "payments", "api", "0", 0, node="n2")]
    shared = _weights(rows, Kubernetes(idle="share", namespaces=RULES.namespaces, idle_values={"team": "k8s-idle"}))
    owned = _weights(rows)
    n1 = shared.filter(pl.col("ResourceId") == "i-01")
    assert IDLE_NAMESPACE not in n1["x_Namespace"].to_list()
    assert n1["weight"].to_list() == owned.filter(pl.col("ResourceId") == "i-01",
                                                  pl.col("x_Namespace") != IDLE_NAMESPACE)["weight"].to_list()
    assert n1["weight"][1] / n1["weight"][0] == 2  # payments: twice ml-a, idle shared in that ratio by the split
    # a node-day whose workloads weigh nothing keeps its cost on the node row's own owner
    n2 = shared.filter(pl.col("ResourceId") == "i-02")
    assert n2.select("x_Namespace", "weight", "team").rows() == [(IDLE_NAMESPACE, Decimal(1), None)]


@pytest.mark.parametrize("basis, expected", [("requests", "0.125"), ("usage", "0.25"), ("max", "0.25")])
def test_basis(basis, expected):
    rows = [_row("2026-11-01", "payments", "api", "1", 0, cpu_used="2", memory_used=0)]
    weights = _weights(rows, Kubernetes(basis=basis))
    assert weights.filter(pl.col("x_Namespace") == "payments")["weight"].to_list() == [Decimal(expected)]


# --- report ----------------------------------------------------------------------------------------

def test_report_names_what_the_telemetry_does_not_cover():
    rows = [_row(f"2026-11-{d:02d}", "payments", "api", "1", GIB) for d in range(1, 21)]
    rows += [_row("2026-11-05", "billing-old", "job", "1", GIB),  # no mapping (a namespace since removed)
             _row("2026-11-05", "payments", "api", "1", GIB, node="ghost-node"),
             _row("2026-11-05", "payments", "api", "1", GIB, node=""),
             _row("2026-10-31", "payments", "api", "1", GIB), _row("2026-12-01", "payments", "api", "1", GIB)]
    telemetry = read_opencost([("export.csv", _export(*rows))], "c1")
    nodes = read_nodes("nodes.csv", NODES, "c1")
    report = kubernetes_report(telemetry, nodes, RULES, PERIOD)
    assert report.missing_days == {"c1": tuple(date(2026, 11, d) for d in range(21, 31))}
    assert report.unmapped_namespaces == (("c1", "billing-old"),)
    assert report.unknown_nodes == (("c1", "ghost-node"),) and report.rows_unknown_node == 1
    assert report.rows_without_node == 1 and report.rows_outside_period == 2
    assert report.lines() == [
        "c1: no telemetry on 2026-11-21..2026-11-30",
        "c1: namespace 'billing-old' has no owner mapping (keeps the node row's owner)",
        "c1: node 'ghost-node' is not in nodes.csv (1 rows ignored in all)",
        "1 telemetry rows name no node (Label_kubernetes_io_hostname empty): ignored",
        "2 telemetry rows outside the period: ignored"]
    weights = node_weights(telemetry, nodes, RULES, PERIOD)
    assert weights["x_WindowStart"].dt.date().max() == date(2026, 11, 20)
    assert weights["ResourceId"].unique().to_list() == ["i-01"]  # ghost-node and the node-less row ignored
    assert weights.filter(pl.col("x_Namespace") == "billing-old")["team"].to_list() == [None]


# --- generator -------------------------------------------------------------------------------------

def _generated_focus() -> pl.DataFrame:
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    ids = [f"i-0{n:016x}" for n in range(1, 9)] + ["vol-0123"]
    return pl.DataFrame({
        "ResourceId": [ids[i % len(ids)] for i in range(60)],
        "ChargeCategory": ["Usage"] * 60,
        "ChargePeriodStart": [start + timedelta(hours=7 * i) for i in range(60)],
        "AvailabilityZone": ["us-east-1a"] * 60, "RegionId": ["us-east-1"] * 60, "Tags": ["{}"] * 60,
    })


def test_generated_telemetry_is_deterministic_and_its_truth_is_what_node_weights_computes(tmp_path):
    first = generate_kubernetes(_generated_focus(), tmp_path / "a", seed=7, clusters=("prod", "dev"),
                                nodes_per_cluster=2)
    again = generate_kubernetes(_generated_focus(), tmp_path / "b", seed=7, clusters=("prod", "dev"),
                                nodes_per_cluster=2)
    assert first.clusters == {"prod": 2, "dev": 2} and first.days == 30 and not first.tagged
    assert [p.read_bytes() for p in first.files] == [p.read_bytes() for p in again.files]
    truth = pl.read_csv(first.expected_path, infer_schema=False).with_columns(pl.col("weight").cast(pl.Decimal(38, 12)))
    for cluster in ("prod", "dev"):
        folder = first.out_dir / cluster
        telemetry, nodes = read_cluster([(str(p), p.read_bytes()) for p in sorted(folder.glob("*.csv"))], cluster)
        assert nodes["ResourceId"].str.starts_with("i-").all()
        per_node = telemetry.join(nodes.rename({"node": "Node"}), on=["x_Cluster", "Node"]).group_by(
            "Node", "Date").agg(pl.col("CPUCoreRequestAverage").sum() <= pl.col("cpu_cores").first(),
                                pl.col("RAMBytesRequestAverage").sum() <= pl.col("memory_bytes").first())
        assert per_node["CPUCoreRequestAverage"].all() and per_node["RAMBytesRequestAverage"].all()  # requests fit
        report = kubernetes_report(telemetry, nodes, Kubernetes(), PERIOD)
        assert report.missing_days == {cluster: ()} and not report.unknown_nodes
        got = (node_weights(telemetry, nodes, Kubernetes(), PERIOD)
               .group_by("x_Node", date=pl.col("x_WindowStart").dt.strftime("%Y-%m-%d"), namespace="x_Namespace")
               .agg(pl.col("weight").sum()).sort("x_Node", "date", "namespace"))
        expected = truth.filter(pl.col("x_Cluster") == cluster).select("x_Node", "date", "namespace", "weight")
        assert got.equals(expected.sort("x_Node", "date", "namespace"))
    assert (first.out_dir / EXPECTED_FILE).exists()


def test_generator_takes_clusters_from_instance_tags_when_present(tmp_path):
    focus = _generated_focus().with_columns(
        Tags=pl.when(pl.col("ResourceId") <= "i-00000000000000003")
        .then(pl.lit('{"eks:cluster-name": "payments-eks"}')).otherwise(pl.lit("{}")))
    summary = generate_kubernetes(focus, tmp_path, seed=1)
    assert summary.tagged and summary.clusters == {"payments-eks": 3}


def test_generator_refuses_rows_without_instances(tmp_path):
    focus = _generated_focus().with_columns(ResourceId=pl.lit("vol-0123"))
    with pytest.raises(ValueError, match="no compute instance"):
        generate_kubernetes(focus, tmp_path, seed=1)


# --- priced from the bill ----------------------------------------------------------------------------

def _reserved_cluster_focus() -> pl.DataFrame:
    """Two days of hourly node rows: i-01 covered by a reservation (BilledCost 0, amortized EffectiveCost),
    i-02 on Spot; both far below ListCost (on-demand)."""
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    rows = []
    for hour in range(48):
        moment = start + timedelta(hours=hour)
        rows.append((f"r1-{hour}", "i-01", moment, Decimal("0"), Decimal("0.061234567891"), Decimal("0.192")))
        rows.append((f"r2-{hour}", "i-02", moment, Decimal("0.115200000007"), Decimal("0.115200000007"),
                     Decimal("0.384")))
    money = pl.Decimal(38, 12)
    return pl.DataFrame(rows, orient="row", schema={
        "x_RowId": pl.String, "ResourceId": pl.String, "ChargePeriodStart": pl.Datetime("us", "UTC"),
        "BilledCost": money, "EffectiveCost": money, "ListCost": money})


def test_reserved_cluster_namespace_costs_sum_to_effective_and_billed_cost_not_list():
    split_exact = pytest.importorskip("focus_platform.allocation.split").split_exact
    rows = []
    for day in ("2026-11-01", "2026-11-02"):
        rows += [_row(day, "payments", "api", "1.5", 6 * GIB), _row(day, "ml-train", "t", "0.75", 3 * GIB),
                 _row(day, "checkout", "web", "2", 4 * GIB, node="n2"), _row(day, "ml-serve", "m", "3", 12 * GIB,
                                                                             node="n2")]
    weights = _weights(rows)
    focus = _reserved_cluster_focus()
    joined = focus.lazy().join(weights.lazy(), on="ResourceId").filter(
        pl.col("ChargePeriodStart") >= pl.col("x_WindowStart"), pl.col("ChargePeriodStart") < pl.col("x_WindowEnd"))
    split = split_exact(joined, key="x_RowId", weight="weight", amounts=["BilledCost", "EffectiveCost"],
                        order=["x_Namespace", "x_AllocatedResourceId"]).collect()
    assert split["x_RowId"].n_unique() == focus.height  # every node row was covered and split
    per_row = split.group_by("x_RowId").agg(pl.col("BilledCost", "EffectiveCost").sum()).sort("x_RowId")
    assert per_row.equals(focus.select("x_RowId", "BilledCost", "EffectiveCost").sort("x_RowId"))
    by_namespace = split.group_by("x_Namespace").agg(pl.col("BilledCost", "EffectiveCost").sum())
    assert by_namespace["EffectiveCost"].sum() == focus["EffectiveCost"].sum() == Decimal("8.468859259104")
    assert by_namespace["BilledCost"].sum() == focus["BilledCost"].sum() == Decimal("5.529600000336")
    assert focus["ListCost"].sum() == Decimal("27.648")  # what a list-price split would hand out: over 3x the bill
    payments = by_namespace.filter(pl.col("x_Namespace") == "payments").row(0, named=True)
    # payments holds 0.375 of i-01 (1.5/4 cores, 6/16 GiB): its reserved rate, not a list price
    at_reserved_rate = Decimal("0.375") * 48 * Decimal("0.061234567891")  # 1.102222222038 (3.456 at list)
    assert abs(payments["EffectiveCost"] - at_reserved_rate) <= 48 * Decimal("1e-12")  # a unit per row at most
    assert payments["BilledCost"] == 0  # the reservation's fee is billed elsewhere, not on the covered hours

"""The Kubernetes deployment (deploy/), proved offline: no cluster, no Docker engine, no network.

- deploy/dagster-k8s.yaml passes Dagster's own instance schema, and each class it names (K8sRunLauncher,
  QueuedRunCoordinator, PostgreSQL storage) accepts its config block;
- deploy/helm/values.yaml follows the chart's values schema (tests/fixtures/deploy/) and renders the same
  launcher, queue, monitoring and retries as deploy/dagster-k8s.yaml;
- the Kubernetes Job that dagster-k8s's K8sRunLauncher submits for a run of one partition of
  focus_pipeline (its launch_run, with the Kubernetes API replaced by a recorder) validates against the
  Kubernetes 1.30 API schema (kubernetes-validate, strict), on either path;
- a partition's run keeps Dagster's default executor (steps as processes in the run pod) and its run config
  validates against the job's schema;
- Dagster's own queue daemon holds the overall and per-billing-period limits on runs carrying the tags
  Dagster gives a partition of focus_pipeline;
- deploy/Dockerfile serves what the chart starts, and installs the extra that holds the classes above.

What a cluster would add (pulling the image, RBAC, PostgreSQL, S3) is not proved here: deploy/README.md.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import dagster as dg
import jsonschema
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster._cli.api import grpc_command
from dagster._config import process_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.instance.config import dagster_instance_config
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster._serdes.config_class import class_from_code_pointer
from dagster_k8s import K8sRunLauncher
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from focus_platform.definitions import defs
from focus_platform.defs.resources import default_resources
from tests.conftest import FIXTURES

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
INSTANCE_FILE = "dagster-k8s.yaml"
INSTANCE = yaml.safe_load((DEPLOY / INSTANCE_FILE).read_text())
VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
CHART_SCHEMA = json.loads((FIXTURES / "deploy" / "values.schema.subset.json").read_text())
KUBERNETES_VERSION = "1.30"

RELEASE, NAMESPACE = "dagster", "focus-platform"  # deploy/README.md installs release "dagster" in this namespace
USER_DEPLOYMENTS = f"{RELEASE}-dagster-user-deployments"  # the full name of the chart's user-deployments subchart
DEPLOYMENT = VALUES["dagster-user-deployments"]["deployments"][0]
IMAGE = f"{DEPLOYMENT['image']['repository']}:{DEPLOYMENT['image']['tag']}"
JOB, PARTITION = "focus_pipeline", "2018-10|aws-main"
PERIOD_TAG = "dagster/partition/billing_period"


# the code location as the webserver and daemon reach it: the chart's service of the user deployment
LOCATION = RemoteRepositoryOrigin(
    GrpcServerCodeLocationOrigin(host=f"{USER_DEPLOYMENTS}-{DEPLOYMENT['name']}",
                                 port=DEPLOYMENT["port"], location_name=DEPLOYMENT["name"]),
    repository_name="__repository__")


def launcher_config() -> dict:
    return INSTANCE["run_launcher"]["config"]


def coordinator_config() -> dict:
    return INSTANCE["run_coordinator"]["config"]


# ---------------------------------------------------------------------------------------------
# What the chart renders from the values (its templates, mirrored for the keys the values set)
# ---------------------------------------------------------------------------------------------
CHART_LAUNCHER_KEYS = {"jobNamespace": "job_namespace", "loadInclusterConfig": "load_incluster_config",
                       "imagePullPolicy": "image_pull_policy", "resources": "resources", "labels": "labels",
                       "envVars": "env_vars", "volumeMounts": "volume_mounts", "volumes": "volumes"}
CHART_NAMED_LISTS = {"envConfigMaps": "env_config_maps", "envSecrets": "env_secrets"}


def chart_run_launcher_config(values: dict) -> dict:
    """run_launcher.config of the chart's dagster.yaml (templates/helpers/instance/_run-launcher.tpl)."""
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    rendered = {
        "service_account_name": RELEASE,  # the chart's service account (serviceAccount.name, default the release)
        "dagster_home": "/opt/dagster/dagster_home",
        "instance_config_map": f"{RELEASE}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "job_namespace": NAMESPACE,
    }
    rendered |= {snake: k8s[camel] for camel, snake in CHART_LAUNCHER_KEYS.items() if k8s.get(camel)}
    rendered |= {snake: [ref["name"] for ref in k8s[camel]] for camel, snake in CHART_NAMED_LISTS.items()
                 if k8s.get(camel)}
    return rendered


def chart_container_context(deployment: dict) -> dict:
    """The container context the chart hands the code server and with it every run of the location
    (charts/dagster-user-deployments helper k8sContainerContext, includeConfigInLaunchedRuns)."""
    return {"k8s": {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [f"{USER_DEPLOYMENTS}-{deployment['name']}-user-env"],
        "env_secrets": [ref["name"] for ref in deployment.get("envSecrets", [])],
        **({"resources": deployment["resources"]} if deployment.get("resources") else {}),
        "namespace": NAMESPACE,
        "service_account_name": f"{USER_DEPLOYMENTS}-user-deployments",
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }}


def chart_grpc_command(deployment: dict) -> list[str]:
    """The command the chart starts the code server with (args of templates/deployment-user.yaml)."""
    return ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", str(deployment["port"]),
            *deployment["dagsterApiGrpcArgs"]]


# ---------------------------------------------------------------------------------------------
# Dagster's config schemas
# ---------------------------------------------------------------------------------------------
def processed(config_class, config: dict) -> dict:
    result = process_config(config_class.config_type(), config)
    assert result.success, [error.message for error in result.errors]
    return result.value


def test_the_instance_file_passes_dagsters_instance_schema(monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "offline")
    config, custom_class = dagster_instance_config(str(DEPLOY), INSTANCE_FILE)
    assert custom_class is None
    for section in ("run_launcher", "run_coordinator"):
        block = config[section]
        processed(class_from_code_pointer(block["module"], block["class"]), block["config"])
    storage = class_from_code_pointer("dagster_postgres", "DagsterPostgresStorage")
    assert processed(storage, config["storage"]["postgres"])["postgres_db"]["password"] == "offline"


def test_a_misspelt_key_is_refused_by_the_same_validation():
    """The validation above does refuse: a typo in the launcher's config is an error naming the key."""
    result = process_config(K8sRunLauncher.config_type(), {**launcher_config(), "job_namspace": "x"})
    assert not result.success
    assert "job_namspace" in " ".join(error.message for error in result.errors)


def test_the_charts_instance_is_the_instance_file():
    """The launcher the chart renders from the values validates and matches dagster-k8s.yaml's; queue,
    monitoring and retries are the same blocks; the secrets the plain launcher passes to run pods are
    those the chart's code location passes to them."""
    rendered = processed(K8sRunLauncher, chart_run_launcher_config(VALUES))
    plain = processed(K8sRunLauncher, launcher_config())
    shared = ("job_namespace", "load_incluster_config", "image_pull_policy", "resources", "dagster_home",
              "instance_config_map", "postgres_password_secret")
    assert {k: rendered[k] for k in shared} == {k: plain[k] for k in shared}
    assert [ref["name"] for ref in DEPLOYMENT["envSecrets"]] == plain["env_secrets"]

    queue = VALUES["dagsterDaemon"]["runCoordinator"]
    assert queue["type"] == INSTANCE["run_coordinator"]["class"] == "QueuedRunCoordinator"
    chart_queue = queue["config"]["queuedRunCoordinator"]
    assert {"max_concurrent_runs": chart_queue["maxConcurrentRuns"],
            "tag_concurrency_limits": chart_queue["tagConcurrencyLimits"]} == coordinator_config()

    extra = VALUES["additionalInstanceConfig"]
    assert not VALUES["dagsterDaemon"]["runMonitoring"]["enabled"]  # else the chart writes a second block
    assert not VALUES["dagsterDaemon"]["runRetries"]["enabled"]
    assert extra == {key: INSTANCE[key] for key in ("run_monitoring", "run_retries")}
    assert INSTANCE["run_monitoring"]["max_runtime_seconds"] > 0
    assert VALUES["telemetry"] == INSTANCE["telemetry"]


# ---------------------------------------------------------------------------------------------
# the chart's values schema
# ---------------------------------------------------------------------------------------------
def kubernetes_definitions() -> Registry:
    """The chart's schema refers to Kubernetes definitions online; kubernetes-validate bundles them."""
    bundled = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local-strict/_definitions.json", KUBERNETES_VERSION)
    contents = {"definitions": bundled["$defs"], "$defs": bundled["$defs"]}
    resource = Resource.from_contents(contents, default_specification=DRAFT202012)
    return Registry().with_resource("https://kubernetesjsonschema.dev/v1.18.0/_definitions.json", resource)


def chart_schema_errors(values: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(CHART_SCHEMA, registry=kubernetes_definitions())
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(values)]


def test_the_values_follow_the_charts_schema():
    assert set(VALUES) <= set(CHART_SCHEMA["properties"]), set(VALUES) - set(CHART_SCHEMA["properties"])
    assert chart_schema_errors(VALUES) == []
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    assert DEPLOYMENT["includeConfigInLaunchedRuns"]["enabled"]
    assert "resources" not in DEPLOYMENT  # they would override the launcher's per-run resources (values comment)


def test_the_schema_check_refuses_what_the_chart_would():
    bad_launcher = {**VALUES, "runLauncher": {"type": "K8sRunLauncher", "config": {"k8sRunLauncher": {
        **VALUES["runLauncher"]["config"]["k8sRunLauncher"], "jobNamspace": "x"}}}}
    bad_resources = {**VALUES, "runLauncher": {"type": "K8sRunLauncher", "config": {"k8sRunLauncher": {
        "resources": {"limit": {"memory": "6Gi"}}}}}}
    bad_limit = json.loads(json.dumps(VALUES))
    bad_limit["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"][0][
        "value"] = {"applyLimitPerUniqueValues": True}
    for bad in (bad_launcher, bad_resources, bad_limit):
        assert chart_schema_errors(bad)


def test_the_env_sets_the_code_locations_roots(monkeypatch):
    """The env of the code location (and of its run pods) is what its resources read: the S3 roots."""
    for name, value in DEPLOYMENT["env"].items():
        monkeypatch.setenv(name, value)
    resources = default_resources()
    assert resources["landing_zone"].root == DEPLOYMENT["env"]["FOCUS_LANDING_ROOT"]
    assert resources["warehouse"].root == DEPLOYMENT["env"]["FOCUS_WAREHOUSE_ROOT"]


# ---------------------------------------------------------------------------------------------
# the Kubernetes Job of a run
# ---------------------------------------------------------------------------------------------
class JobRecorder:
    """Stands in for the Kubernetes batch API: records the Job the launcher creates."""

    def __init__(self):
        self.created: list[tuple[str, object]] = []

    def create_namespaced_job(self, body, namespace, **_):
        self.created.append((namespace, body))


@pytest.fixture(scope="module")
def offline_kubeconfig(tmp_path_factory):
    """A kubeconfig for the launcher's client setup; nothing connects to it (the batch API is a recorder).
    The kubernetes client's default configuration is restored afterwards."""
    previous = kubernetes.client.Configuration.get_default_copy()
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "offline",
        "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "offline", "user": {"token": "offline"}}],
        "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}]}))
    yield str(path)
    kubernetes.client.Configuration.set_default(previous)


def run_job_manifest(config: dict, container_context: dict | None, kubeconfig: str) -> tuple[str, dict, dict]:
    """The namespace and Job manifest K8sRunLauncher.launch_run submits for one partition of focus_pipeline,
    launched from the code server the image runs (its origin as `dagster api grpc -m ... -a defs` reports it),
    and the run's tags."""
    job = defs.resolve_job_def(JOB)
    tags = job.get_tags_for_partition_key(PARTITION, selected_asset_keys=None)
    recorder = JobRecorder()
    launcher = K8sRunLauncher(**processed(K8sRunLauncher, {**config, "load_incluster_config": False,
                                                           "kubeconfig_file": kubeconfig}),
                              k8s_client_batch_api=recorder, k8s_client_core_api=object())
    origin = JobPythonOrigin(JOB, RepositoryPythonOrigin(
        executable_path="/usr/local/bin/python",
        code_pointer=ModuleCodePointer("focus_platform.definitions", "defs", working_directory="/opt/dagster/app"),
        container_image=IMAGE, entry_point=["dagster"], container_context=container_context))
    with dg.instance_for_test() as instance:
        launcher.register_instance(instance)
        run = create_run_for_test(instance, job_name=JOB, tags=tags, job_code_origin=origin,
                                  remote_job_origin=LOCATION.get_job_origin(JOB))
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    [(namespace, body)] = recorder.created
    return namespace, kubernetes.client.ApiClient().sanitize_for_serialization(body), tags


PATHS = {
    "helm-chart": lambda: (chart_run_launcher_config(VALUES), chart_container_context(DEPLOYMENT),
                           f"{USER_DEPLOYMENTS}-{DEPLOYMENT['name']}-user-env"),
    "instance-file": lambda: (launcher_config(), None, launcher_config()["env_config_maps"][0]),
}


@pytest.fixture(scope="module")
def launched_jobs(offline_kubeconfig) -> dict[str, tuple[str, dict, dict, str]]:
    """Per path: the namespace, the Job, the run's tags and the ConfigMap the run pod's env comes from."""
    launched = {}
    for path, settings in PATHS.items():
        config, container_context, env_config_map = settings()
        launched[path] = (*run_job_manifest(config, container_context, offline_kubeconfig), env_config_map)
    return launched


@pytest.mark.parametrize("path", PATHS)
def test_the_run_pods_job_validates_against_the_kubernetes_api(path, launched_jobs):
    namespace, manifest, tags, env_config_map = launched_jobs[path]

    assert kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION
    assert manifest["kind"] == "Job" and namespace == NAMESPACE
    pod = manifest["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == IMAGE
    assert container["args"][:3] == ["dagster", "api", "execute_run"]
    assert container["resources"] == launcher_config()["resources"]
    sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert {env_config_map, *launcher_config()["env_secrets"]} <= sources
    env = {var["name"]: var for var in container["env"]}
    assert env["DAGSTER_RUN_JOB_NAME"]["value"] == JOB
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == launcher_config()[
        "postgres_password_secret"]
    labels = manifest["metadata"]["labels"]
    assert (labels["dagster/job"], labels["dagster/code-location"]) == (JOB, DEPLOYMENT["name"])
    assert tags[PERIOD_TAG] == "2018-10"


def test_a_partitions_run_config_validates_with_the_in_pod_executor():
    """One run is one pod: focus_pipeline keeps Dagster's default executor, so its steps (raw_exports, then
    focus_costs) run as processes inside the run pod, and the run config a partition's run carries
    validates against the job's schema, executor section included (no step pods, no k8s_job_executor)."""
    job = defs.resolve_job_def(JOB)
    assert job.executor_def.name == "multi_or_in_process_executor"
    execution = dg.validate_run_config(job, job.get_run_config_for_partition_key(PARTITION))["execution"]
    assert set(execution["multi_or_in_process_executor"]) == {"multiprocess"}


def test_the_validation_refuses_a_broken_job(launched_jobs):
    """kubernetes-validate does refuse: a resource quantity that is not one, an unknown container field."""
    _, manifest, _, _ = launched_jobs["instance-file"]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    for broken in ({"resources": {"limits": {"memory": ["6Gi"]}}}, {"imagePullPolicy": 3}, {"cmd": ["x"]}):
        bad = json.loads(json.dumps(manifest))
        bad["spec"]["template"]["spec"]["containers"][0] = {**container, **broken}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


# ---------------------------------------------------------------------------------------------
# the queue limits, held by Dagster's own dequeue
# ---------------------------------------------------------------------------------------------
PERIODS = ("2018-09", "2018-10", "2018-11", "2018-12", "2019-01", "2019-02")
SOURCES = ("aws-main", "azure-ea", "gcp-billing")


def test_the_queue_holds_the_overall_and_per_period_limits():
    """18 queued partitions of focus_pipeline (6 months x 3 sources, tags as Dagster gives them): the queue
    daemon picks 8, at most 2 of a month; with 2018-10|aws-main already running it picks one more of 2018-10."""
    job = defs.resolve_job_def(JOB)
    limit = coordinator_config()["tag_concurrency_limits"][0]
    assert limit["key"] == PERIOD_TAG and limit["value"] == {"applyLimitPerUniqueValue": True}
    overrides = {"run_coordinator": INSTANCE["run_coordinator"], "telemetry": {"enabled": False}}
    with dg.instance_for_test(overrides=overrides) as instance:
        def queue(partition: str, status=DagsterRunStatus.QUEUED):
            create_run_for_test(instance, job_name=JOB, status=status, remote_job_origin=LOCATION.get_job_origin(JOB),
                                tags=job.get_tags_for_partition_key(partition, selected_asset_keys=None))

        def picked() -> list[str]:
            daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
            runs = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
            return [run.tags[PERIOD_TAG] for run in runs]

        for period in PERIODS:
            for source in SOURCES:
                queue(f"{period}|{source}")
        first = picked()
        assert len(first) == coordinator_config()["max_concurrent_runs"] == 8
        assert max(first.count(period) for period in PERIODS) == limit["limit"] == 2

        queue("2018-10|aws-main", status=DagsterRunStatus.STARTED)
        assert picked().count("2018-10") == 1


def test_asset_backfill_runs_carry_the_billing_period_tag():
    graph = defs.resolve_asset_graph()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("export_source", list(SOURCES))
        wanted = [AssetKeyPartitionKey(key, f"2018-10|{source}") for key in graph.get_all_asset_keys()
                  if graph.get(key).partitions_def == defs.resolve_job_def(JOB).partitions_def for source in SOURCES]
        with partition_loading_context(dynamic_partitions_store=instance):
            requests = build_run_requests_with_backfill_policies(wanted, graph, instance)
    assert len(requests) == len(SOURCES)
    assert {request.tags.get(PERIOD_TAG) for request in requests} == {"2018-10"}


# ---------------------------------------------------------------------------------------------
# the Dockerfile
# ---------------------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = (line.strip() for line in text.splitlines())
    return [(word.upper(), rest.strip()) for word, _, rest in
            (line.partition(" ") for line in lines if line and not line.startswith("#"))]


def test_the_dockerfile_serves_what_the_chart_starts():
    instructions = dockerfile_instructions()
    keywords = [word for word, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert "ENTRYPOINT" not in keywords  # the chart passes args: an ENTRYPOINT would be prepended to them
    [cmd] = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    assert cmd == chart_grpc_command(DEPLOYMENT)
    assert ("EXPOSE", str(DEPLOYMENT["port"])) in instructions

    params = grpc_command.make_context("grpc", cmd[3:]).params
    assert (params["module_name"], params["attribute"], params["port"], params["host"]) == (
        "focus_platform.definitions", "defs", DEPLOYMENT["port"], "0.0.0.0")
    assert isinstance(getattr(__import__(params["module_name"], fromlist=["defs"]), params["attribute"]),
                      dg.Definitions)


def test_the_dockerfile_installs_the_extra_holding_the_instance_classes():
    instructions = dockerfile_instructions()
    installs = [shlex.split(rest) for word, rest in instructions if word == "RUN" and "pip install" in rest]
    [extra] = [match.group(1) for words in installs for word in words if (match := re.fullmatch(r"\.\[(\w+)\]", word))]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {re.split(r"[=<>\[ ]", spec)[0] for spec in pyproject["project"]["optional-dependencies"][extra]}
    modules = {INSTANCE["run_launcher"]["module"], "dagster_postgres"}  # storage: postgres is dagster_postgres
    assert {module.replace("_", "-") for module in modules} <= packages
    copied = {source for word, rest in instructions if word == "COPY" for source in rest.split()[:-1]}
    assert copied == {"pyproject.toml", "README.md", "focus_platform"}
    assert all((ROOT / source).exists() for source in copied)

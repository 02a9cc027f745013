"""The Helm chart (deploy/helm/shoprank) rendered by Helm itself, validated, and checked against the code it runs.

No cluster and no ``helm`` binary are needed: ``helm-python-sdk`` binds Helm's own Go SDK (v4) through a bundled
shared library, so templates render with Helm's real engine (sprig functions, ``include``, hooks, ``lint``), not a
look-alike. Every rendered manifest is validated against the Kubernetes OpenAPI schemas (``kubernetes-validate``,
strict: unknown fields fail) for the oldest Kubernetes the chart supports and the newest the package knows; KEDA
and prometheus-operator resources against the schemas kept in deploy/schemas (written from their docs).

The drift checks resolve every command and probe against the real click CLI (as tests/test_deployment.py does for
compose), every SHOPRANK_* variable against ``Settings``, every gunicorn variable against webapp/gunicorn_conf.py,
ports and probe paths against the app's routes and gunicorn's bind, volumes against their mounts and the paths
the code and image use, and the scaler's PromQL against the metric families the code exports.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from flask import Flask

from shoprank.config import Settings
from tests.test_deployment import resolve_cli
from workers.celery_app import QUEUE_CPU, QUEUE_GPU
from workers.ops import queue_depths
from workers.scaling_signal import ALL_QUEUES

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "deploy" / "helm" / "shoprank"
SCHEMAS = REPO / "deploy" / "schemas"
SETTINGS_ENV = {f.metadata["env"] for f in fields(Settings)}
#: Kubernetes versions validated: Chart.yaml's kubeVersion floor and the newest kubernetes-validate ships.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
}

#: Value sets rendered in CI: the defaults (external datastores, KEDA, HPA), a trial with everything in-cluster and
#: every optional part on, and a plain one (no autoscalers, no GPU, per-pod index copies).
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "trial-everything-on": {
        "postgresql": {"enabled": True},
        "redis": {"enabled": True},
        "embedWorker": {"enabled": True, "replicas": 2},
        "monitoring": {"serviceMonitor": {"enabled": True}},
        "web": {"ingress": {"enabled": True, "className": "nginx", "tlsSecretName": "shop-tls"}},
        "workers": {"models": {"existingClaim": "reranker-weights"}},
        "config": {"SHOPRANK_QUEUE_PREFIX": "shop:", "SHOPRANK_TRUSTED_PROXIES": "1"},
        "autoscaling": {
            "prometheus": {"labelMatchers": 'namespace="shop"'},
            "redisLists": {"enabled": True, "address": "shop-shoprank-redis-broker:6379", "passwordSecret": "broker"},
        },
    },
    "plain": {
        "autoscaling": {"keda": {"enabled": False}},
        "web": {"autoscaling": {"enabled": False}, "replicas": 3},
        "workers": {"gpu": {"enabled": False}, "cpu": {"replicas": 4}},
        "index": {"persistence": {"enabled": False}},
        "warmHead": {"enabled": False},
    },
}


def render(values: dict[str, Any], upgrade: bool = False) -> list[dict[str, Any]]:
    """Every manifest the chart renders for ``values`` (Helm's engine; empty documents dropped)."""
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name="shop", namespace="shop", is_install=not upgrade, is_upgrade=upgrade)
    documents = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document.setdefault("metadata", {}).setdefault("annotations", {})
                document["metadata"]["annotations"]["x-template"] = path
                documents.append(document)
    return documents


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(VALUE_SETS[request.param])


@pytest.fixture(scope="module")
def defaults() -> list[dict[str, Any]]:
    return render({})


@pytest.fixture(scope="module")
def trial() -> list[dict[str, Any]]:
    return render(VALUE_SETS["trial-everything-on"])


def one(documents: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    [found] = [d for d in documents if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return found


def pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in documents:
        spec = d.get("spec", {})
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{d['kind']}/{d['metadata']['name']}", spec["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield f"CronJob/{d['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]["spec"]


def containers(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for where, pod in pod_specs(documents):
        for container in pod["containers"]:
            yield f"{where}/{container['name']}", container, pod


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def is_shoprank(container: dict[str, Any]) -> bool:
    return str(container["image"]).startswith("shoprank:")


# -- Helm itself ---------------------------------------------------------------------------------------------------


def test_helm_lint_finds_nothing():
    report = helm.lint(str(CHART), strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_a_broken_template_fails_to_render(tmp_path):
    """The renderer is strict: a bad template is an error here, not a silently empty manifest."""
    broken = tmp_path / "shoprank"
    import shutil

    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("kind: {{ .Values.nope.deeper }}\n")
    with helm.Chart.load(broken) as chart, pytest.raises(helm.HelmError):
        chart.render({}, name="shop", namespace="shop")


# -- schemas -------------------------------------------------------------------------------------------------------


def test_every_manifest_validates_against_the_kubernetes_and_crd_schemas(manifests):
    kinds = set()
    for document in manifests:
        key = (document["apiVersion"], document["kind"])
        kinds.add(key[1])
        clean = json.loads(json.dumps(document))
        clean["metadata"]["annotations"].pop("x-template")
        if not clean["metadata"]["annotations"]:
            del clean["metadata"]["annotations"]
        if key in CUSTOM_SCHEMAS:
            schema = json.loads((SCHEMAS / CUSTOM_SCHEMAS[key]).read_text())
            jsonschema.Draft202012Validator(schema).validate(clean)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(clean, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{key[1]}/{clean['metadata']['name']} invalid for Kubernetes {version}: {exc.message}")
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job"} <= kinds
    assert "Secret" not in kinds  # secrets are the operator's, referenced by name, never rendered from values


def test_the_kubernetes_schemas_are_strict(defaults):
    """A misspelt field in a rendered manifest fails validation (strict schemas: unknown fields are errors)."""
    web = json.loads(json.dumps(one(defaults, "Deployment", "-web")))
    web["metadata"].pop("annotations")
    kubernetes_validate.validate(web, KUBE_VERSIONS[0], strict=True)
    web["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pat"] = "/ready"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, KUBE_VERSIONS[0], strict=True)


def test_the_crd_schemas_reject_what_keda_would_reject(defaults):
    """The vendored schemas are not a rubber stamp: a typo, a number where KEDA wants a string, a missing query."""
    schema = json.loads((SCHEMAS / CUSTOM_SCHEMAS[("keda.sh/v1alpha1", "ScaledObject")]).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    scaled = json.loads(json.dumps(one(defaults, "ScaledObject", "-worker-cpu")))
    scaled["metadata"].pop("annotations")
    validator.validate(scaled)
    broken = [
        ("minReplicas", lambda s: s["spec"].__setitem__("minReplicas", 1)),
        ("number threshold", lambda s: s["spec"]["triggers"][0]["metadata"].__setitem__("threshold", 0.75)),
        ("no query", lambda s: s["spec"]["triggers"][0]["metadata"].pop("query")),
        ("metricType", lambda s: s["spec"]["triggers"][0].__setitem__("metricType", "Average")),
        ("no target", lambda s: s["spec"].pop("scaleTargetRef")),
    ]
    for what, mutate in broken:
        copy = json.loads(json.dumps(scaled))
        mutate(copy)
        assert not validator.is_valid(copy), what


# -- what the chart deploys ------------------------------------------------------------------------------------------


def test_the_web_tier_runs_gunicorn_with_health_probes_metrics_token_and_an_hpa(defaults):
    web = one(defaults, "Deployment", "-web")
    [container] = web["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["gunicorn", "-c", "python:webapp.gunicorn_conf", "webapp:create_app()"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    env = env_of(container)
    assert env["SHOPRANK_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "shoprank",
        "key": "SHOPRANK_METRICS_TOKEN",
    }
    assert "replicas" not in web["spec"]  # the HPA owns the count
    hpa = one(defaults, "HorizontalPodAutoscaler", "-web")
    assert hpa["spec"]["scaleTargetRef"]["name"] == web["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert one(defaults, "PodDisruptionBudget", "-web")["spec"]["minAvailable"] == 1


@pytest.mark.parametrize(
    "values",
    [
        {"config": {"SHOPRANK_SECRET_KEY": "in-a-values-file"}},
        {"config": {"SHOPRANK_DATABASE_URL": "postgresql+psycopg://u:p@db/shop"}},
        {"config": {"SHOPRANK_INDEX_DIR": "/elsewhere"}},  # the chart sets it where it mounts the index
        {"config": {"LOG_LEVEL": "INFO"}},  # not a SHOPRANK_ setting
        {"secrets": {"name": "shoprank", "keys": {"secretKey": "K"}, "value": "hunter2"}},
        {"autoscaling": {"workerCpu": {"workWaitingTargetSeconds": 0}}},
        {"autoscaling": {"redisLists": {"enabled": True, "address": "redis://broker:6379/0"}}},  # host:port only
    ],
    ids=["secret-key", "database-url", "index-dir", "not-a-setting", "secret-value", "zero-target", "redis-url"],
)
def test_the_values_schema_refuses_secrets_and_mistakes_before_anything_renders(values):
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.render(values, name="shop", namespace="shop")


def test_secrets_come_from_existing_secrets_never_from_values(manifests):
    secret_like = ("SHOPRANK_SECRET_KEY", "SHOPRANK_METRICS_TOKEN", "POSTGRES_PASSWORD")
    for where, container, _ in containers(manifests):
        env = env_of(container)
        for name in secret_like:
            if name in env:
                assert "secretKeyRef" in env[name].get("valueFrom", {}), f"{where}: {name} is not from a Secret"
        for name in ("SHOPRANK_DATABASE_URL", "SHOPRANK_REDIS_URL", "SHOPRANK_BROKER_URL"):
            value = env.get(name, {}).get("value", "")
            assert "@" not in value or "$(POSTGRES_PASSWORD)" in value, f"{where}: credentials inline in {name}"


def test_gpu_workers_get_a_gpu_node_and_the_cuda_image_cpu_workers_neither(defaults):
    gpu = one(defaults, "Deployment", "-worker-gpu")["spec"]["template"]["spec"]
    cpu = one(defaults, "Deployment", "-worker-cpu")["spec"]["template"]["spec"]
    [g], [c] = gpu["containers"], cpu["containers"]
    assert g["resources"]["limits"]["nvidia.com/gpu"] == 1 and "nvidia.com/gpu" not in c["resources"].get("limits", {})
    assert gpu["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in gpu["tolerations"])
    assert "nodeSelector" not in cpu
    assert g["image"].endswith("-cuda") and not c["image"].endswith("-cuda")
    for container, device in ((g, "cuda"), (c, "cpu")):
        assert container["command"][:4] == ["shoprank", "worker", "--device", device]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["exec"]["command"] == ["shoprank", "worker-health", "--device", device]
        # requests come from docs/performance.md's measurements: a CPU worker's peak RSS is up to 2.05 GiB on 2 cores
        assert container["resources"]["requests"]["cpu"] == "2"


def test_workers_get_a_grace_period_to_finish_their_jobs(defaults):
    """SIGTERM = Celery warm shutdown; the grace period covers a job's soft limit (30 s) before SIGKILL."""
    settings = Settings()
    for device in ("cpu", "gpu"):
        pod = one(defaults, "Deployment", f"-worker-{device}")["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= settings.rerank_soft_time_limit_seconds
        assert one(defaults, "PodDisruptionBudget", f"-worker-{device}")["spec"]["maxUnavailable"] == 1


def test_migrations_are_a_hook_before_the_release_and_after_install_with_a_trial_database(defaults, trial):
    external = one(defaults, "Job", "-migrate")
    assert external["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert external["spec"]["template"]["spec"]["containers"][0]["command"] == ["shoprank", "db", "upgrade"]
    in_cluster = one(trial, "Job", "-migrate")
    assert in_cluster["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    upgrade = one(render({}, upgrade=True), "Job", "-migrate")
    assert upgrade["metadata"]["annotations"]["helm.sh/hook"] == external["metadata"]["annotations"]["helm.sh/hook"]


def test_the_index_is_built_by_a_job_into_one_shared_rwx_volume(defaults):
    pvc = one(defaults, "PersistentVolumeClaim", "-index")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    job = one(defaults, "Job", "-index-build")
    assert "post-install" in job["metadata"]["annotations"]["helm.sh/hook"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:3] == ["shoprank", "index", "build"]
    assert one(defaults, "CronJob", "-index-build")["spec"]["concurrencyPolicy"] == "Forbid"
    claimants = {
        where.split("/")[1]
        for where, pod in pod_specs(defaults)
        for volume in pod.get("volumes", [])
        if volume.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"]
    }
    assert claimants >= {"shop-shoprank-web", "shop-shoprank-warm-head", "shop-shoprank-index-build"}


def test_the_warm_head_loop_and_trial_datastores(trial):
    warm = one(trial, "Deployment", "-warm-head")
    argv = warm["spec"]["template"]["spec"]["containers"][0]["command"]
    assert resolve_cli(argv[1:]).name == "warm-head" and warm["spec"]["replicas"] == 1
    broker = one(trial, "StatefulSet", "-redis-broker")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert broker[broker.index("--appendonly") + 1] == "yes" and "noeviction" in broker
    cache = one(trial, "Deployment", "-redis-cache")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "allkeys-lru" in cache
    web_env = env_of(one(trial, "Deployment", "-web")["spec"]["template"]["spec"]["containers"][0])
    assert web_env["SHOPRANK_BROKER_URL"]["value"] == "redis://shop-shoprank-redis-broker:6379/0"
    assert "shop-shoprank-postgresql:5432" in web_env["SHOPRANK_DATABASE_URL"]["value"]
    assert one(trial, "Deployment", "-embed-worker")["spec"]["template"]["spec"]["containers"][0]["command"][:2] == [
        "shoprank",
        "embed-worker",
    ]


# -- autoscaling -----------------------------------------------------------------------------------------------------


def test_keda_scales_cpu_workers_on_work_waiting_and_gpu_workers_to_zero(defaults):
    values = yaml.safe_load((CHART / "values.yaml").read_text())["autoscaling"]
    cpu = one(defaults, "ScaledObject", "-worker-cpu")["spec"]
    gpu = one(defaults, "ScaledObject", "-worker-gpu")["spec"]
    assert cpu["minReplicaCount"] >= 1  # the fallback pool never goes away
    assert gpu["minReplicaCount"] == 0
    work = next(t for t in cpu["triggers"] if t["name"] == "work-waiting")
    assert work["metricType"] == "Value"
    assert work["metadata"]["query"] == 'max(shoprank_work_waiting_seconds{queue="rerank.cpu"})'
    assert float(work["metadata"]["threshold"]) == values["workerCpu"]["workWaitingTargetSeconds"]
    # the target sits well below what the depth policy lets the signal reach ((deadline - overhead) x safety):
    # above it the value could never exceed the target by enough to scale up
    settings = Settings()
    ceiling = (settings.rerank_deadline_ms - settings.rerank_overhead_ms) / 1000 * settings.rerank_depth_safety
    assert float(work["metadata"]["threshold"]) <= 0.75 * ceiling
    wake = next(t for t in gpu["triggers"] if t["name"] == "searches")
    assert float(wake["metadata"]["activationThreshold"]) == values["workerGpu"]["activationSearchesPerSecond"]


def test_redis_list_triggers_name_every_list_queue_depths_counts(trial):
    """One KEDA redis trigger per kombu priority list: exactly the lists workers.ops.queue_depths adds up."""
    counted: list[str] = []

    class Pipeline:
        def llen(self, key: str) -> None:
            counted.append(key)

        def execute(self) -> list[int]:
            return [0] * len(counted)

    class Client:
        def pipeline(self, transaction: bool = True) -> Pipeline:
            return Pipeline()

    queue_depths(Settings(broker_url="redis://x:6379/0", queue_prefix="shop:"), client=Client())
    listed = [
        t["metadata"]["listName"]
        for name in ("-worker-cpu", "-worker-gpu")
        for t in one(trial, "ScaledObject", name)["spec"]["triggers"]
        if t["type"] == "redis"
    ]
    assert sorted(listed) == sorted(counted)
    auth = one(trial, "TriggerAuthentication", "-broker")
    assert auth["spec"]["secretTargetRef"][0]["parameter"] == "password"


def test_every_metric_and_label_the_scalers_query_is_exported(manifests):
    """PromQL in the ScaledObjects names metric families and label values the code really exports."""
    sources = "\n".join(
        (REPO / path).read_text()
        for path in ("shoprank/observability/metrics.py", "workers/ops_metrics.py", "search/service.py")
    )
    queues = {QUEUE_CPU, QUEUE_GPU, ALL_QUEUES}
    for document in manifests:
        if document["kind"] != "ScaledObject":
            continue
        for trigger in document["spec"]["triggers"]:
            if trigger["type"] != "prometheus":
                continue
            query = trigger["metadata"]["query"]
            for metric in re.findall(r"\b(shoprank_[a-z_]+)", query):
                assert f'"{metric}"' in sources, f"{query}: {metric} is not exported"
            for queue in re.findall(r'queue="([^"]+)"', query):
                assert queue in queues, query
            for status in re.findall(r'status="([^"]+)"', query):
                assert f'"{status}"' in sources, f"{query}: no search ends with status {status!r}"


# -- drift: the chart uses only what the code has ---------------------------------------------------------------------


def _gunicorn_variables() -> set[str]:
    return set(re.findall(r"\"(GUNICORN_[A-Z_]+)\"", (REPO / "webapp" / "gunicorn_conf.py").read_text()))


def test_every_command_and_probe_resolves_against_the_real_cli(manifests):
    checked = 0
    for where, container, _ in containers(manifests):
        if "command" not in container:  # the image's own entrypoint (postgres)
            assert not is_shoprank(container), f"{where}: a shoprank container must say what it runs"
            continue
        argvs = [("command", container["command"])]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if "exec" in container.get(probe, {}):
                argvs.append((probe, container[probe]["exec"]["command"]))
        for what, argv in argvs:
            program = argv[0]
            if program == "shoprank":
                resolve_cli(argv[1:])
                checked += 1
            elif program == "gunicorn":
                from gunicorn.config import Config

                parsed = Config().parser().parse_args(argv[1:])
                importlib.import_module(parsed.config.removeprefix("python:"))
                module_name, _, factory = parsed.args[0].partition(":")
                assert callable(getattr(importlib.import_module(module_name), factory.removesuffix("()")))
                checked += 1
            else:
                assert not is_shoprank(container), f"{where} {what}: {program!r} is not in the shoprank image"
                assert program in ("redis-server", "redis-cli", "pg_isready"), f"{where} {what}: {program!r}"
    assert checked >= 5


STAND_INS = {
    "SHOPRANK_SECRET_KEY": "k" * 48,
    "SHOPRANK_METRICS_TOKEN": "t" * 32,
    "SHOPRANK_DATABASE_URL": "postgresql+psycopg://shoprank:pw@db:5432/shoprank",
    "SHOPRANK_REDIS_URL": "redis://cache:6379/0",
    "SHOPRANK_BROKER_URL": "redis://broker:6379/0",
}


def test_every_environment_variable_is_a_setting_or_read_by_the_process(manifests):
    allowed_other = {"PROMETHEUS_MULTIPROC_DIR", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_USER", "PGDATA"}
    gunicorn = _gunicorn_variables()
    for where, container, _ in containers(manifests):
        names = [entry["name"] for entry in container.get("env", [])]
        assert len(names) == len(set(names)), f"{where}: a variable set twice (the last one would win silently)"
        for name in env_of(container):
            if name.startswith("SHOPRANK_"):
                assert name in SETTINGS_ENV, f"{where}: {name} is not a shoprank.config.Settings variable"
            elif name.startswith("GUNICORN_"):
                assert name in gunicorn, f"{where}: webapp/gunicorn_conf.py does not read {name}"
            else:
                assert name in allowed_other, f"{where}: unexpected variable {name}"
        if is_shoprank(container):  # what the pod will see, with stand-ins for the Secret's values
            environ = {
                name: entry["value"].replace("$(POSTGRES_PASSWORD)", "pw") if "value" in entry else STAND_INS[name]
                for name, entry in env_of(container).items()
                if name.startswith("SHOPRANK_")
            }
            settings = Settings.from_env(environ)  # production validation included: the chart's config is accepted
            assert settings.env == "production" and settings.database_url and settings.resolved_broker_url


def test_ports_probe_paths_and_volumes_match_the_code(manifests):
    app = Flask("routes")
    from webapp.blueprints import health, metrics

    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    dockerfile = (REPO / "Dockerfile").read_text()
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", dockerfile, re.M).group(1).split()}
    hf_home = re.search(r"HF_HOME=(\S+)", dockerfile).group(1)
    for where, container, pod in containers(manifests):
        env = env_of(container)
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container.get(probe, {}).get("httpGet")
            if get:
                assert get["path"] in routes, f"{where}: {probe} path {get['path']} is not a route"
                assert get["port"] in ports, f"{where}: {probe} port {get['port']!r} is not a container port"
        if "GUNICORN_BIND" in env:
            assert int(env["GUNICORN_BIND"]["value"].rsplit(":", 1)[1]) == ports["http"] and ports["http"] in exposed
        if "SHOPRANK_WORKER_METRICS_PORT" in env:
            assert int(env["SHOPRANK_WORKER_METRICS_PORT"]["value"]) == ports["metrics"] and ports["metrics"] in exposed
        volumes = {v["name"] for v in pod.get("volumes", [])}
        mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
        for name, path in mounts.items():
            # "data": the trial datastores' StatefulSet volumeClaimTemplates
            assert name in volumes or name == "data", f"{where}: mount {name} has no volume"
            if name == "search-index":
                assert env["SHOPRANK_INDEX_DIR"]["value"] == path, f"{where}: index mounted off SHOPRANK_INDEX_DIR"
            if name == "prometheus-multiproc":
                assert env["PROMETHEUS_MULTIPROC_DIR"]["value"] == path
            if name == "hf-cache":
                assert path == hf_home, f"{where}: HF cache not at the image's HF_HOME"
            if name == "models":
                model = env["SHOPRANK_RERANKER_MODEL"]["value"]
                assert model.startswith(path + "/"), f"{where}: the model {model} is not on the models volume"
        unused = volumes - set(mounts)
        assert not unused, f"{where}: volumes never mounted: {unused}"


def test_services_target_ports_their_pods_expose(manifests):
    pods = {
        tuple(sorted(d["spec"]["selector"]["matchLabels"].items())): d["spec"]["template"]["spec"]
        for d in manifests
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    for service in (d for d in manifests if d["kind"] == "Service"):
        pod = pods[tuple(sorted(service["spec"]["selector"].items()))]
        names = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, f"Service/{service['metadata']['name']}: no port {port['targetPort']}"


def test_config_keys_in_values_are_settings():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    unknown = set(values["config"]) - SETTINGS_ENV
    assert not unknown, f"values.yaml config sets variables Settings does not read: {unknown}"
    # parses (bools, ints) as the pods will; with the Secret's stand-ins, production validation passes too
    Settings.from_env(STAND_INS | {k: str(v) for k, v in values["config"].items()})

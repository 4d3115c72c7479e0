"""The Kubernetes manifests (deploy/kubernetes), checked offline, no cluster: every document of
every file against the Kubernetes schemas of pinned versions, strictly (an unknown field is an
error), by the PyPI validator kubernetes-validate; then what no schema says: one worker pod per
node with exactly the jail's privileges, the API apart from it with a readiness probe that
neither the workers nor Redis can fail, a disruption budget for each, and the Redis URL and its
CA from a Secret. The API's probe is asked of the real application."""

from __future__ import annotations

import asyncio
import copy
import os
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from aiohttp.test_utils import TestClient, TestServer

from api.app import make_app
from core import redis_client, settings
from tests.conftest import ROOT, free_port
from tests.container import CAPABILITIES

try:
    import kubernetes_validate
except ImportError as exc:  # fail, never skip: without it nothing here is checked
    raise ImportError("kubernetes-validate is missing: a test dependency in pyproject.toml (`make venv`)") from exc

MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes the manifests are for (appArmorProfile in a securityContext is 1.30's)
# and the newest the validator knows.
VERSIONS = ("1.30.0", "1.37.0")
# Where deploy/Containerfile puts this repository in the image.
IMAGE_ROOT = "/opt/cellblock/"
HOSTNAME = "kubernetes.io/hostname"
API, WORKER, SECRET = "cellblock-api", "cellblock-worker", "cellblock-redis"

Doc = dict[str, Any]


def manifest_files() -> list[Path]:
    """What `kubectl apply -f deploy/kubernetes` takes, and the examples beside it."""
    return sorted([*MANIFESTS.glob("*.yaml"), *MANIFESTS.glob("*.yaml.example")])


def documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


DOCUMENTS = [(path, doc) for path in manifest_files() for doc in documents(path)]
MAIN = documents(MANIFESTS / "cellblock.yaml")
EXAMPLE_SECRET = documents(MANIFESTS / "redis-secret.yaml.example")[0]


def find(kind: str, name: str) -> Doc:
    found = [d for d in MAIN if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"cellblock.yaml: {len(found)} {kind} named {name}"
    return found[0]


def pod_spec(name: str) -> Doc:
    spec: Doc = find("Deployment", name)["spec"]["template"]["spec"]
    return spec


def pod_labels(name: str) -> dict[str, str]:
    labels: dict[str, str] = find("Deployment", name)["spec"]["template"]["metadata"]["labels"]
    return labels


def the_container(name: str) -> Doc:
    (container,) = pod_spec(name)["containers"]
    c: Doc = container
    return c


def settings_of(container: Doc, **extra: str) -> settings.Config:
    """The service's settings as this container gets them (its ConfigMaps and literal values;
    a value from a Secret or the downward API left at its default), parsed by the service."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find("ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    env.update(extra)
    return settings.load(env)


def test_the_manifests_are_found() -> None:
    names = {path.name for path in manifest_files()}
    assert {"cellblock.yaml", "redis-secret.yaml.example"} <= names, names
    assert all(documents(path) for path in manifest_files())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("path", "doc"),
    DOCUMENTS,
    ids=[f"{path.name}:{doc['kind']}/{doc['metadata']['name']}" for path, doc in DOCUMENTS],
)
def test_every_document_is_valid(path: Path, doc: Doc, version: str) -> None:
    try:
        checked = kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']} against Kubernetes {version}: {exc}")
    assert checked == version.rsplit(".", 1)[0]  # that version's schemas, not an older fallback


@pytest.mark.parametrize("version", VERSIONS)
def test_the_validation_is_strict(version: str) -> None:
    """An unknown field, as a typo makes one, is refused: the check above is not a formality."""
    worker = copy.deepcopy(find("Deployment", WORKER))
    worker["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilites"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="capabilites"):
        kubernetes_validate.validate(worker, version, strict=True)


def test_one_worker_pod_per_node() -> None:
    """Two worker pods on a node would each count the jail's slots from 0 and run two sandboxes
    as one host uid (cellblock.yaml says why): a required anti-affinity on the node's name
    against the pod's own labels, and no surge during a rollout."""
    worker = find("Deployment", WORKER)
    labels = pod_labels(WORKER)
    terms = pod_spec(WORKER)["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(
        t["topologyKey"] == HOSTNAME and t["labelSelector"]["matchLabels"].items() <= labels.items() for t in terms
    ), terms
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_the_workers_have_nodes_of_their_own() -> None:
    """Untrusted code runs there: the pods go to labelled nodes and tolerate their taint, which
    keeps every other pod (the API's too) away."""
    spec = pod_spec(WORKER)
    ((key, value),) = spec["nodeSelector"].items()
    assert {"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"} in spec["tolerations"]
    assert key not in str(pod_spec(API))


def test_the_worker_has_exactly_the_privileges_the_jail_needs() -> None:
    """As tests/jail/test_container.py proves them (tests/container.py: CAPABILITIES), and no more."""
    spec = pod_spec(WORKER)
    ctx = the_container(WORKER)["securityContext"]
    assert ctx["runAsUser"] == 0  # the jail maps each slot to a host uid and makes cgroups
    assert ctx["privileged"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert sorted(ctx["capabilities"]["add"]) == sorted(c.upper() for c in CAPABILITIES)
    assert ctx["seccompProfile"] == {"type": "Unconfined"}
    assert ctx["appArmorProfile"] == {"type": "Unconfined"}
    assert "hostPID" not in spec and "hostNetwork" not in spec and "hostUsers" not in spec
    assert spec["automountServiceAccountToken"] is False  # no API token beside untrusted code


def test_the_worker_runs_one_worker_per_cpu_from_the_image() -> None:
    container = the_container(WORKER)
    command = container["command"]
    assert command[0] == IMAGE_ROOT + "deploy/worker-in-container.sh"
    assert command[1:] == ["bash", IMAGE_ROOT + "deploy/kubernetes/workers.sh", "cellblock", "worker"]
    containerfile = (ROOT / "deploy" / "Containerfile").read_text().splitlines()
    assert f"WORKDIR {IMAGE_ROOT.rstrip('/')}" in containerfile and "COPY . ." in containerfile
    entrypoint = ROOT / command[0].removeprefix(IMAGE_ROOT)
    assert os.access(entrypoint, os.X_OK), f"{entrypoint} is the container's command: it must be executable"
    assert (ROOT / command[2].removeprefix(IMAGE_ROOT)).is_file()
    (workers,) = [e for e in container["env"] if e["name"] == "CELLBLOCK_WORKERS"]
    assert workers["valueFrom"] == {"resourceFieldRef": {"containerName": container["name"], "resource": "limits.cpu"}}


def test_a_stopped_worker_has_time_to_finish_its_job() -> None:
    cfg = settings_of(the_container(WORKER))
    assert pod_spec(WORKER)["terminationGracePeriodSeconds"] >= cfg.drain_timeout + 10


def test_the_api_is_scaled_apart_from_the_workers() -> None:
    api = find("Deployment", API)
    assert api["spec"]["replicas"] >= 2
    assert pod_labels(API) != pod_labels(WORKER)
    container = the_container(API)
    assert container["command"] == ["cellblock", "api"]
    assert pod_spec(API)["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert "add" not in container["securityContext"]["capabilities"]


def test_the_api_listens_where_the_probe_and_the_service_look() -> None:
    container = the_container(API)
    cfg = settings_of(container)
    assert cfg.host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[container["readinessProbe"]["httpGet"]["port"]] == cfg.port
    service = find("Service", API)
    assert service["spec"]["selector"].items() <= pod_labels(API).items()
    assert all(ports[p["targetPort"]] == cfg.port for p in service["spec"]["ports"])


def test_a_stopped_api_answers_its_open_requests() -> None:
    """SIGTERM comes after preStop (while the Service stops sending here), then the API has
    CELLBLOCK_DRAIN_TIMEOUT for its open `wait`s and streams."""
    container = the_container(API)
    cfg = settings_of(container)
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert pod_spec(API)["terminationGracePeriodSeconds"] >= float(sleep[1]) + cfg.drain_timeout + 5


async def probe(cfg: settings.Config, paths: list[str]) -> list[int]:
    """The real API, with its lifetimes (Redis clients, languages, callbacks); GET each path as
    the kubelet does, with Host: <pod IP>:<port>."""
    async with TestClient(TestServer(make_app(cfg))) as client:
        return [(await client.get(path, headers={"Host": f"10.1.2.3:{cfg.port}"})).status for path in paths]


@pytest.mark.parametrize("allowed_hosts", ["", "cellblock.example.org"])
def test_the_readiness_probe_does_not_depend_on_redis_or_the_workers(allowed_hosts: str) -> None:
    """No Redis and so no worker (as when Redis fails over, or no worker is up yet): the probe
    must pass, or every API pod leaves the Service at once and clients get no answer at all.
    /v1/health and /v1/ready say 503 then (what monitoring wants; the probe must not)."""
    container = the_container(API)
    path = container["readinessProbe"]["httpGet"]["path"]
    away = f"redis://127.0.0.1:{free_port()}/0"
    cfg = settings_of(container, CELLBLOCK_REDIS_URL=away, CELLBLOCK_ALLOWED_HOSTS=allowed_hosts)
    assert cfg.auth_required
    statuses = asyncio.run(probe(cfg, [path, "/v1/health", "/v1/ready"]))
    assert statuses[0] == 200, f"readiness probe GET {path}: {statuses[0]}"
    # and with CELLBLOCK_ALLOWED_HOSTS set, /v1/ refuses the kubelet's Host: <pod IP> besides
    assert statuses[1:] == ([421, 421] if allowed_hosts else [503, 503])


def test_every_workload_has_a_disruption_budget() -> None:
    deployments = [d for d in MAIN if d["kind"] == "Deployment"]
    budgets = [d for d in MAIN if d["kind"] == "PodDisruptionBudget"]
    assert {d["metadata"]["name"] for d in deployments} == {API, WORKER}
    for deployment in deployments:
        labels = pod_labels(deployment["metadata"]["name"])
        mine = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(mine) == 1, f"{deployment['metadata']['name']}: {len(mine)} PodDisruptionBudgets"
        assert mine[0]["spec"]["maxUnavailable"] == 1, mine[0]
        assert mine[0]["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]


def test_the_redis_url_and_its_ca_come_from_a_secret() -> None:
    """A password is never in a ConfigMap; every process of the service gets the same URL, and
    the CA file it names is where the pod mounts the Secret's ca.crt."""
    for config_map in (d for d in MAIN if d["kind"] == "ConfigMap"):
        for key, value in config_map["data"].items():
            assert "REDIS_URL" not in key and "PASSWORD" not in key.upper(), key
            assert "@" not in urllib.parse.urlsplit(str(value)).netloc, (key, value)
    secret = EXAMPLE_SECRET["stringData"]
    ca_path = urllib.parse.parse_qs(urllib.parse.urlsplit(secret["url"]).query)["ssl_ca_certs"][0]
    for name in (API, WORKER):
        container = the_container(name)
        (url,) = [e for e in container["env"] if e["name"] == "CELLBLOCK_REDIS_URL"]
        ref = url["valueFrom"]["secretKeyRef"]
        assert ref["name"] == EXAMPLE_SECRET["metadata"]["name"] == SECRET and ref["key"] in secret
        volumes = {v["name"]: v for v in pod_spec(name)["volumes"]}
        mounted = []
        for mount in container["volumeMounts"]:
            source = volumes[mount["name"]].get("secret")
            if source and source["secretName"] == SECRET:
                mounted += [f"{mount['mountPath']}/{item['path']}" for item in source["items"] if item["key"] in secret]
        assert ca_path in mounted, (name, ca_path, mounted)


def test_the_example_redis_urls_are_urls_the_service_takes() -> None:
    """The Secret's URL (a managed Redis: TLS, an ACL user) and the Sentinel form shown beside it."""
    url = EXAMPLE_SECRET["stringData"]["url"]
    parsed = redis.connection.parse_url(url)
    assert parsed["connection_class"] is redis.SSLConnection and parsed["username"] and parsed["password"]
    assert settings.load({"CELLBLOCK_REDIS_URL": url}).shown_redis_url().count("***") == 1
    text = (MANIFESTS / "redis-secret.yaml.example").read_text()
    sentinel_urls = [w for w in text.split() if w.startswith(redis_client.SENTINEL_SCHEMES)]
    assert sentinel_urls
    for sentinel_url in sentinel_urls:
        service = redis_client.sentinel_service(sentinel_url)
        assert service is not None and len(service.sentinels) == 3 and service.sentinel["password"]

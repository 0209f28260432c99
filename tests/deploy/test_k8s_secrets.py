"""deploy/checks.py k8s: Secret references per container, and the kustomization."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_PATH = _ROOT / "deploy" / "checks.py"
_spec = importlib.util.spec_from_file_location("deploy_checks", _PATH)
assert _spec and _spec.loader
checks = importlib.util.module_from_spec(_spec)
sys.modules["deploy_checks"] = checks  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(checks)

DB = "LOGISTICS_INVENTORY_DATABASE_URL"
SHIP_DB = "LOGISTICS_SHIPPING_DATABASE_URL"


def secret(name: str, *keys: str) -> tuple[str, dict[str, Any]]:
    return "secret.example.yaml", {
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "logistics"},
        "stringData": dict.fromkeys(keys, "x"),
    }


CLUSTER = checks.Cluster(
    [
        secret("inventory-database", DB),
        secret("shipping-database", SHIP_DB),
        secret("logistics-broker", "LOGISTICS_BROKER_URL"),
        secret("logistics-jwt", "LOGISTICS_JWT_SECRET"),
    ]
)


def ref(var: str, name: str, key: str | None = None) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key or var}}}


def container(
    env: list[dict[str, Any]], component: str = "web", init: bool = False, env_from: list[Any] | None = None
) -> object:
    return checks.Container(
        name="c",
        svc="inventory",
        component=component,
        spec={"env": env, "envFrom": env_from or []},
        pod={},
        annotations={},
        init=init,
    )


OWN = ref(DB, "inventory-database")
JWT = ref("LOGISTICS_JWT_SECRET", "logistics-jwt")
BROKER = ref("LOGISTICS_BROKER_URL", "logistics-broker")


@pytest.mark.parametrize(
    ("ctr", "expected"),
    [
        pytest.param(container([OWN, JWT]), [], id="defined"),
        pytest.param(
            container([OWN, ref("LOGISTICS_REDIS_URL", "logistics-redis")]),
            ["Secret logistics-redis is not defined"],
            id="unknown-secret",
        ),
        pytest.param(
            container([OWN, ref("LOGISTICS_JWT_SECRET", "logistics-jwt", "JWT")]),
            ["has no key JWT"],
            id="unknown-key",
        ),
        pytest.param(
            container([OWN, ref("X", "logistics-broker", "LOGISTICS_JWT_SECRET")]),
            ["has no key LOGISTICS_JWT_SECRET"],
            id="key-of-another-secret",
        ),
        pytest.param(
            container([OWN], env_from=[{"secretRef": {"name": "logistics-jwt"}}]), [], id="envfrom-defined"
        ),
        pytest.param(
            container([OWN], env_from=[{"secretRef": {"name": "nope"}}]),
            ["Secret nope is not defined"],
            id="envfrom-unknown",
        ),
    ],
)
def test_secret_refs(ctr: object, expected: list[str]) -> None:
    problems = checks.Problems()
    checks.check_secret_refs(problems, ctr, CLUSTER)
    assert len(problems) == len(expected)
    for p, e in zip(problems, expected, strict=True):
        assert e in p


@pytest.mark.parametrize(
    ("ctr", "expected"),
    [
        pytest.param(container([OWN, JWT]), [], id="own-database"),
        pytest.param(
            container([OWN, ref(SHIP_DB, "shipping-database")]),
            ["shipping's database Secret"],
            id="web-other-database",
        ),
        pytest.param(
            container(
                [OWN, BROKER], component="worker", env_from=[{"secretRef": {"name": "shipping-database"}}]
            ),
            ["shipping's database Secret"],
            id="worker-envfrom-other-database",
        ),
        pytest.param(
            container([ref(DB, "shipping-database", SHIP_DB)], component="migrate"),
            ["shipping's database Secret", "does not come from Secret inventory-database"],
            id="job-reads-other-database",
        ),
        pytest.param(
            container([ref(DB, "logistics-jwt")]),
            ["does not come from Secret inventory-database"],
            id="own-url-from-wrong-secret",
        ),
    ],
)
def test_database_secrets(ctr: object, expected: list[str]) -> None:
    problems = checks.Problems()
    checks.check_database_secrets(problems, ctr, CLUSTER)
    assert len(problems) == len(expected)
    for p, e in zip(problems, expected, strict=True):
        assert e in p


@pytest.mark.parametrize(
    ("ctr", "ok"),
    [
        pytest.param(container([OWN], component="migrate"), True, id="job-database-only"),
        pytest.param(container([OWN, JWT], component="migrate"), False, id="job-with-jwt"),
        pytest.param(container([OWN], init=True), True, id="init-database-only"),
        pytest.param(container([OWN, BROKER], component="worker", init=True), False, id="init-with-broker"),
        pytest.param(container([OWN, BROKER, JWT], component="worker"), True, id="worker-may-have-more"),
    ],
)
def test_database_only(ctr: object, ok: bool) -> None:
    problems = checks.Problems()
    checks.check_database_only(problems, ctr, CLUSTER)
    assert (not problems) is ok


# --- the secrets key (LOGISTICS_SECRETS_KEY) and the webhook dispatcher -----------------------
KEY = "LOGISTICS_SECRETS_KEY"
SHIP_OWN = ref(SHIP_DB, "shipping-database")
SHIP_KEY = ref(KEY, "shipping-secrets-key")
SUPPORT_KEY = ref(KEY, "support-secrets-key")
REDIS = ref("LOGISTICS_REDIS_URL", "logistics-redis")
KEY_CLUSTER = checks.Cluster(
    [
        *CLUSTER.docs,
        secret("shipping-secrets-key", KEY),
        secret("support-secrets-key", KEY),
        secret("logistics-redis", "LOGISTICS_REDIS_URL"),
    ]
)


def shipping(
    env: list[dict[str, Any]], component: str, init: bool = False, env_from: list[Any] | None = None
) -> object:
    return checks.Container(
        name="c",
        svc="shipping",
        component=component,
        spec={"env": env, "envFrom": env_from or []},
        pod={},
        annotations={},
        init=init,
    )


def secrets_key_problems(ctr: object) -> list[str]:
    problems = checks.Problems()
    for check in (checks.check_secrets_key, checks.check_database_only, checks.check_database_secrets):
        check(problems, ctr, KEY_CLUSTER)
    return list(problems)


def test_the_webhook_services_are_shipping_and_support() -> None:
    assert checks.webhook_services() == {"shipping", "support"}
    assert checks.roles("inventory") == ("migrate", "web", "worker")
    assert checks.roles("shipping") == ("migrate", "web", "worker", "dispatcher")


@pytest.mark.parametrize(
    ("ctr", "expected"),
    [
        pytest.param(shipping([SHIP_OWN, SHIP_KEY], "dispatcher"), [], id="dispatcher-database-and-key"),
        pytest.param(
            shipping([SHIP_OWN], "dispatcher"),
            ["LOGISTICS_SECRETS_KEY does not come from Secret shipping-secrets-key"],
            id="dispatcher-without-key",
        ),
        pytest.param(
            shipping([SHIP_OWN, SHIP_KEY, BROKER], "dispatcher"),
            ["also gets ['logistics-broker']"],
            id="dispatcher-with-broker",
        ),
        pytest.param(
            shipping([SHIP_OWN, SHIP_KEY, REDIS], "dispatcher"),
            ["also gets ['logistics-redis']"],
            id="dispatcher-with-redis",
        ),
        pytest.param(
            shipping([SHIP_OWN, SUPPORT_KEY], "dispatcher"),
            [
                "does not come from Secret shipping-secrets-key",
                "also gets ['support-secrets-key']",
                "support's secrets key Secret",
            ],
            id="dispatcher-with-another-services-key",
        ),
        pytest.param(shipping([SHIP_OWN, SHIP_KEY, REDIS], "web"), [], id="web-with-key"),
        pytest.param(
            shipping([SHIP_OWN, REDIS], "web"),
            ["LOGISTICS_SECRETS_KEY does not come from Secret shipping-secrets-key"],
            id="web-without-key",
        ),
        pytest.param(shipping([SHIP_OWN, BROKER, REDIS], "worker"), [], id="worker-without-key"),
        pytest.param(
            shipping([SHIP_OWN, BROKER, SHIP_KEY], "worker"),
            ["gets LOGISTICS_SECRETS_KEY, which a worker container never reads"],
            id="worker-with-key",
        ),
        pytest.param(
            shipping([SHIP_OWN], "worker", env_from=[{"secretRef": {"name": "shipping-secrets-key"}}]),
            ["gets LOGISTICS_SECRETS_KEY, which a worker container never reads"],
            id="worker-with-key-through-envfrom",
        ),
        pytest.param(shipping([SHIP_OWN, SHIP_KEY], "migrate"), [], id="migrate-may-get-key"),
        pytest.param(
            shipping([SHIP_OWN, SHIP_KEY], "worker", init=True),
            ["gets LOGISTICS_SECRETS_KEY, which a init container never reads", "also gets"],
            id="init-with-key",
        ),
        pytest.param(
            container([OWN, ref(KEY, "inventory-secrets-key")]),
            ["gets LOGISTICS_SECRETS_KEY, which a web container never reads"],
            id="inventory-has-no-webhooks",
        ),
    ],
)
def test_secrets_key_and_dispatcher_secrets(ctr: object, expected: list[str]) -> None:
    problems = secrets_key_problems(ctr)
    assert len(problems) == len(expected), problems
    for e in expected:
        assert any(e in p for p in problems), (e, problems)


def test_shipped_secrets_key_placement() -> None:
    """Who gets LOGISTICS_SECRETS_KEY in deploy/k8s: shipping's and support's web and dispatcher
    (and shipping's migrate Job, for migration 0009), each from its own Secret; nobody else."""
    cluster = checks.Cluster(list(checks.k8s_documents()))
    holders = set()
    for _, doc in cluster.of_kind("Deployment") + cluster.of_kind("Job"):
        pod = doc["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            for e in c.get("env", []):
                if e["name"] == KEY:
                    svc = doc["metadata"]["labels"]["app.kubernetes.io/name"]
                    assert e["valueFrom"]["secretKeyRef"] == {"name": f"{svc}-secrets-key", "key": KEY}
                    holders.add(f"{doc['metadata']['name']}/{c['name']}")
    assert holders == {
        "shipping-web/web",
        "shipping-dispatcher/dispatcher",
        "shipping-migrate/migrate",
        "support-web/web",
        "support-dispatcher/dispatcher",
    }
    dispatchers = [d for d in cluster.deployments.values() if d["metadata"]["name"].endswith("-dispatcher")]
    assert len(dispatchers) == 2
    for d in dispatchers:
        c = d["spec"]["template"]["spec"]["containers"][0]
        secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
        svc = d["metadata"]["labels"]["app.kubernetes.io/name"]
        assert secrets == {f"{svc}-database", f"{svc}-secrets-key"}
        assert not c.get("envFrom", []) or all("secretRef" not in ef for ef in c["envFrom"])
        assert not {e["name"] for e in c["env"]} & {"LOGISTICS_BROKER_URL", "LOGISTICS_REDIS_URL"}
        assert not [e["name"] for e in c["env"] if e["name"].startswith("LOGISTICS_JWT_")]


PUBLIC_PEM = "/etc/logistics/jwt/public.pem"
JWT_CLUSTER = checks.Cluster(
    [
        *CLUSTER.docs,
        (
            "secret.example.yaml",
            {
                "kind": "ConfigMap",
                "metadata": {"name": "logistics-jwt-public", "namespace": "logistics"},
                "data": {"public.pem": "-----BEGIN PUBLIC KEY-----"},
            },
        ),
        (
            "configmap.yaml",
            {
                "kind": "ConfigMap",
                "metadata": {"name": "with-secret", "namespace": "logistics"},
                "data": {"LOGISTICS_JWT_SECRET": "x" * 40},
            },
        ),
        secret("logistics-jwt-private", "LOGISTICS_JWT_PRIVATE_KEY_FILE"),
    ]
)


def value(var: str, val: str) -> dict[str, Any]:
    return {"name": var, "value": val}


EDDSA = value("LOGISTICS_JWT_ALGORITHM", "EdDSA")
PUBLIC = value("LOGISTICS_JWT_PUBLIC_KEY_FILE", PUBLIC_PEM)
PRIVATE = value("LOGISTICS_JWT_PRIVATE_KEY_FILE", "/etc/logistics/jwt/private.pem")


def jwt_container(
    env: list[dict[str, Any]],
    component: str = "web",
    init: bool = False,
    source: str = "logistics-jwt-public",
    items: list[dict[str, str]] | None = None,
    mounted: bool = True,
    env_from: list[Any] | None = None,
) -> object:
    volume: dict[str, Any] = {"name": source}
    if items is not None:
        volume["items"] = items
    return checks.Container(
        name="c",
        svc="inventory",
        component=component,
        spec={
            "env": [OWN, *env],
            "envFrom": env_from or [],
            "volumeMounts": [{"name": "jwt-public", "mountPath": "/etc/logistics/jwt", "readOnly": True}]
            if mounted
            else [],
        },
        pod={"volumes": [{"name": "jwt-public", "configMap": volume}]},
        annotations={},
        init=init,
    )


@pytest.mark.parametrize(
    ("ctr", "expected"),
    [
        pytest.param(jwt_container([EDDSA, PUBLIC]), [], id="web-public-key-only"),
        pytest.param(
            jwt_container([value("LOGISTICS_JWT_ALGORITHM", "RS256"), PUBLIC]), [], id="web-rs256-public-key"
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC], items=[{"key": "public.pem", "path": "public.pem"}]),
            [],
            id="web-public-key-by-item",
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC, PRIVATE]),
            ["gets LOGISTICS_JWT_PRIVATE_KEY_FILE; a web container may get"],
            id="web-with-private-key",
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC, JWT]),
            ["gets LOGISTICS_JWT_SECRET; a web container may get"],
            id="web-with-hs256-secret",
        ),
        pytest.param(
            jwt_container([JWT]),
            [
                "gets LOGISTICS_JWT_SECRET",
                "LOGISTICS_JWT_ALGORITHM is None: web must verify with a public key",
                "no LOGISTICS_JWT_PUBLIC_KEY_FILE",
            ],
            id="web-hs256-only",
        ),
        pytest.param(
            jwt_container([value("LOGISTICS_JWT_ALGORITHM", "HS256"), PUBLIC]),
            ["LOGISTICS_JWT_ALGORITHM is 'HS256'"],
            id="web-symmetric-algorithm",
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC], env_from=[{"configMapRef": {"name": "with-secret"}}]),
            ["gets LOGISTICS_JWT_SECRET"],
            id="web-secret-through-configmap",
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC], env_from=[{"secretRef": {"name": "logistics-jwt-private"}}]),
            ["gets LOGISTICS_JWT_PRIVATE_KEY_FILE"],
            id="web-private-key-through-envfrom",
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC], mounted=False),
            ["not a key of ConfigMap/Secret logistics-jwt-public mounted in the container (found None/None)"],
            id="web-public-key-not-mounted",
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC], source="other"),
            ["(found other/public.pem)"],
            id="web-public-key-from-another-configmap",
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC], items=[{"key": "public.pem", "path": "key.pem"}]),
            ["(found logistics-jwt-public/None)"],
            id="web-public-key-file-not-projected",
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC], component="worker"),
            ["LOGISTICS_JWT_ALGORITHM, LOGISTICS_JWT_PUBLIC_KEY_FILE; a worker container may get no JWT"],
            id="worker-with-public-key",
        ),
        pytest.param(jwt_container([], component="worker"), [], id="worker-no-jwt"),
        pytest.param(
            jwt_container([JWT], component="worker"),
            ["gets LOGISTICS_JWT_SECRET; a worker container may get no JWT"],
            id="worker-with-hs256-secret",
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC, PRIVATE], component="worker"),
            ["LOGISTICS_JWT_PRIVATE_KEY_FILE, LOGISTICS_JWT_PUBLIC_KEY_FILE; a worker container may get no"],
            id="worker-with-private-key",
        ),
        pytest.param(
            jwt_container([EDDSA, PUBLIC], component="migrate"),
            ["LOGISTICS_JWT_ALGORITHM, LOGISTICS_JWT_PUBLIC_KEY_FILE; a migrate container may get no JWT"],
            id="migrate-with-public-key",
        ),
        pytest.param(
            jwt_container([PUBLIC], init=True),
            ["gets LOGISTICS_JWT_PUBLIC_KEY_FILE; a init container may get no JWT key setting"],
            id="init-with-public-key",
        ),
    ],
)
def test_jwt_keys(ctr: object, expected: list[str]) -> None:
    problems = checks.Problems()
    checks.check_jwt_keys(problems, ctr, JWT_CLUSTER)
    assert len(problems) == len(expected), problems
    for p, e in zip(problems, expected, strict=True):
        assert e in p


def test_no_shipped_pod_holds_a_signing_key() -> None:
    """Across deploy/k8s: no container gets the HS256 secret or a private key; web verifies
    with the mounted public key; no Secret or ConfigMap carries the HS256 secret or a private key."""
    cluster = checks.Cluster(list(checks.k8s_documents()))
    signing = {"LOGISTICS_JWT_SECRET", "LOGISTICS_JWT_PRIVATE_KEY_FILE"}
    assert not signing & cluster.secret_keys
    assert not signing & set().union(*cluster.configmap_keys.values())
    assert "logistics-jwt" not in cluster.secrets
    webs = 0
    for _, doc in cluster.of_kind("Deployment") + cluster.of_kind("Job"):
        pod = doc["spec"]["template"]["spec"]
        component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            names = {e["name"] for e in c.get("env", [])}
            assert not signing & names, (doc["metadata"]["name"], c["name"])
            if component == "web" and c in pod["containers"]:
                webs += 1
                env = {e["name"]: e.get("value") for e in c["env"]}
                assert env["LOGISTICS_JWT_ALGORITHM"] == "EdDSA"
                assert env["LOGISTICS_JWT_PUBLIC_KEY_FILE"] == PUBLIC_PEM
            if component == "migrate" or c in pod.get("initContainers", []):
                assert not {n for n in names if n.startswith("LOGISTICS_JWT_")}, (
                    doc["metadata"]["name"],
                    c["name"],
                )
    assert webs == 3


def kustomization(resources: list[str], images: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
        "images": images or [],
    }


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        pytest.param(["a.yaml", "b/c.yaml"], [], id="all-listed"),
        pytest.param(["a.yaml"], ["manifest b/c.yaml is not listed"], id="manifest-unlisted"),
        pytest.param(["a.yaml", "b/c.yaml", "gone.yaml"], ["gone.yaml does not exist"], id="listed-missing"),
        pytest.param(["a.yaml", "b/c.yaml", "a.yaml"], ["a.yaml listed twice"] * 2, id="listed-twice"),
        pytest.param(
            ["a.yaml", "b/c.yaml", "secret.example.yaml"], ["must not be applied"], id="example-secret-listed"
        ),
    ],
)
def test_kustomization_resources(tmp_path: pathlib.Path, resources: list[str], expected: list[str]) -> None:
    for name in ("a.yaml", "b/c.yaml", "secret.example.yaml"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    problems = checks.Problems()
    manifests = ["a.yaml", "b/c.yaml", "secret.example.yaml"]
    checks.check_kustomization_resources(problems, kustomization(resources), tmp_path, manifests)
    assert len(problems) == len(expected), problems
    for p, e in zip(problems, expected, strict=True):
        assert e in p


NAME = "registry.example.com/logistics/inventory"
GOOD_DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param([{"name": NAME, "newName": NAME, "newTag": "v1"}], [], id="tag"),
        pytest.param([{"name": NAME, "newName": NAME, "digest": GOOD_DIGEST}], [], id="digest"),
        pytest.param([], ["no images: entry"], id="missing-entry"),
        pytest.param([{"name": NAME, "newTag": "v1"}], ["needs newName"], id="no-new-name"),
        pytest.param(
            [{"name": NAME, "newName": NAME, "newTag": "v1", "digest": "sha256:abc"}],
            ["is not sha256"],
            id="short-digest",
        ),
    ],
)
def test_kustomization_pins(entries: list[dict[str, str]], expected: list[str]) -> None:
    cluster = checks.Cluster([])
    cluster.images["inventory"] = {f"{NAME}:REPLACE_ME_TAG"}
    problems = checks.Problems()
    checks.check_kustomization_images(problems, kustomization([], entries), cluster)
    assert len(problems) == len(expected), problems
    for p, e in zip(problems, expected, strict=True):
        assert e in p


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("registry.example.com/logistics/inventory:REPLACE_ME_TAG", NAME),
        (f"{NAME}@{GOOD_DIGEST}", NAME),
        (f"{NAME}:v1@{GOOD_DIGEST}", NAME),
        ("localhost:5000/logistics/inventory", "localhost:5000/logistics/inventory"),
        ("localhost:5000/inventory:v2", "localhost:5000/inventory"),
    ],
)
def test_image_name(image: str, name: str) -> None:
    assert checks.image_name(image) == name


def test_shipped_manifests_pass() -> None:
    cluster = checks.Cluster(list(checks.k8s_documents()))
    problems = checks.Problems()
    for path, doc in cluster.of_kind("Deployment") + cluster.of_kind("Job"):
        checks.check_workload(problems, cluster, path, doc)
    checks.check_trigger_auth_secrets(problems, cluster)
    checks.check_kustomization(problems, cluster)
    assert problems == []


def test_pin_script_writes_digests(tmp_path: pathlib.Path) -> None:
    """deploy/pin-images.sh with a stand-in engine: one digest per entry, idempotent."""
    engine = tmp_path / "engine"
    engine.write_text("#!/bin/sh\nprintf 'sha256:%064d\\n' 7\n")
    engine.chmod(0o755)
    target = tmp_path / "kustomization.yaml"
    shutil.copy(checks.KUSTOMIZATION, target)
    env = os.environ | {"KUSTOMIZATION": str(target), "IMAGE_ENGINE": str(engine), "PYTHON": sys.executable}
    for _ in range(2):
        subprocess.run(
            ["bash", str(_ROOT / "deploy" / "pin-images.sh")], env=env, check=True, capture_output=True
        )
    pinned = checks.load(target)
    assert [i["digest"] for i in pinned["images"]] == ["sha256:" + "0" * 63 + "7"] * 3
    cluster = checks.Cluster(list(checks.k8s_documents()))
    for path, doc in cluster.of_kind("Deployment") + cluster.of_kind("Job"):
        checks.check_workload(checks.Problems(), cluster, path, doc)
    problems = checks.Problems()
    checks.check_kustomization_images(problems, pinned, cluster)
    assert problems == []


def test_pin_script_refuses_missing_image(tmp_path: pathlib.Path) -> None:
    engine = tmp_path / "engine"
    engine.write_text("#!/bin/sh\nexit 125\n")
    engine.chmod(0o755)
    target = tmp_path / "kustomization.yaml"
    shutil.copy(checks.KUSTOMIZATION, target)
    env = os.environ | {"KUSTOMIZATION": str(target), "IMAGE_ENGINE": str(engine), "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(_ROOT / "deploy" / "pin-images.sh")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "no such image" in result.stderr
    assert target.read_text() == checks.KUSTOMIZATION.read_text()

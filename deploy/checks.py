"""Static consistency checks for deploy/ and the service Dockerfiles.

Used by deploy/validate.sh. ``yaml`` needs only the standard library and PyYAML; the
other sub-commands read the services and their ports from the service registry
(``logistics_shared.service.discover()``), so they run in the project's virtualenv.
Each sub-command prints a one-line summary and exits 0, or prints every
problem it found and exits 1:

    python deploy/checks.py yaml          every YAML file under deploy/ parses
    python deploy/checks.py dockerfiles   services/*/Dockerfile against the conventions
    python deploy/checks.py compose       docker-compose.yml, nginx, haproxy, prometheus agree
    python deploy/checks.py k8s           the Kubernetes manifests agree with each other,
                                          and deploy/k8s/kustomization.yaml lists them all
    python deploy/checks.py crds          the KEDA and Prometheus Operator objects of deploy/k8s
                                          against the CRD schemas vendored in deploy/k8s/crd-schemas
                                          (needs jsonschema)
    python deploy/checks.py lb-env SHAPE BALANCER
                                          the LOGISTICS_LB_* variables deploy/render.sh gets
                                          for one deployment shape (host, compose, k8s) and
                                          balancer (nginx, haproxy), one NAME=value a line

These catch what the linters cannot: a COPY of a path .dockerignore drops,
an nginx upstream naming a compose service that does not exist, a probe on
the wrong port, an Ingress route missing from nginx, a Secret key that the
example Secret does not define.

The balancers' configurations are templates (deploy/nginx/nginx.conf.template,
deploy/haproxy/haproxy.cfg.template) rendered by deploy/render.sh from LOGISTICS_LB_*
variables; ``compose`` renders both with the variables compose gives them and checks the
rendered text. ``lb-env`` takes each shape's variables from where that shape keeps them:
``host`` from deploy/local/cluster.py (`make cluster`, its default layout), ``compose`` from
the nginx/haproxy services of docker-compose.yml, ``k8s`` from the Services in deploy/k8s.

Every check is a small function ``check_*(problems, ...)`` that appends what is wrong;
each ``cmd_*`` loads the files once and runs its checks in order.
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
ROOT = DEPLOY.parent
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what containers must listen on
#: A worker's health server listens on the web port + 100 (``logistics worker``'s default).
WORKER_PORT_OFFSET = 100
#: A webhook dispatcher's health server: the web port + 200 (``logistics dispatcher``'s default).
DISPATCHER_PORT_OFFSET = 200
UID = 10001  # the image's "logistics" user; k8s runAsUser must match
NAMESPACE = "logistics"
#: Process kinds; "dispatcher" only in the services with webhooks (webhook_services()).
ROLES = ("migrate", "web", "worker", "dispatcher")
#: The table a service with webhook subscriptions has in its metadata.
WEBHOOK_TABLE = "webhook_endpoints"
#: The Fernet key(s) that open stored secrets (webhook signing and carrier secrets).
SECRETS_KEY_VAR = "LOGISTICS_SECRETS_KEY"
RENDER = DEPLOY / "render.sh"
#: Each balancer's template, and the one deploy/render.sh turns into its configuration.
TEMPLATES = {
    "nginx": DEPLOY / "nginx" / "nginx.conf.template",
    "haproxy": DEPLOY / "haproxy" / "haproxy.cfg.template",
}
#: Where the balancers run: a plain host (`make cluster`), docker compose, Kubernetes.
SHAPES = ("host", "compose", "k8s")
LB_PREFIX = "LOGISTICS_LB_"


@functools.cache
def services() -> dict[str, int]:
    """Each installed service's web port, by name, from the service registry."""
    try:
        from logistics_shared.service import discover
    except ImportError as exc:
        raise SystemExit(
            f"{exc}: run checks.py with the project's virtualenv (the services and their ports "
            "come from the service registry)"
        ) from None
    found = {name: spec.port for name, spec in discover().items()}
    if not found:
        raise SystemExit("the service registry is empty: no service is installed in this interpreter")
    return found


@functools.cache
def webhook_services() -> frozenset[str]:
    """The services that offer webhook subscriptions (their metadata has the webhook tables),
    and so run a dispatcher and hold a secrets key."""
    from logistics_shared.service import discover

    return frozenset(name for name, spec in discover().items() if WEBHOOK_TABLE in spec.metadata().tables)


def roles(svc: str) -> tuple[str, ...]:
    """The process kinds ``svc`` runs: a dispatcher only where it has webhooks."""
    return tuple(r for r in ROLES if r != "dispatcher" or svc in webhook_services())


def worker_port(svc: str) -> int:
    return services()[svc] + WORKER_PORT_OFFSET


def dispatcher_port(svc: str) -> int:
    return services()[svc] + DISPATCHER_PORT_OFFSET


def command(role: str, svc: str) -> list[str]:
    """The process a container of ``svc`` runs in ``role`` (image CMD, compose, Kubernetes)."""
    if role == "web":
        return ["logistics", "serve", svc, "--host", ALL_INTERFACES, "--port", str(services()[svc])]
    if role == "worker":
        return ["logistics", "worker", svc, "--health-host", ALL_INTERFACES]
    if role == "dispatcher":
        return ["logistics", "dispatcher", svc, "--health-host", ALL_INTERFACES]
    return ["logistics", "migrate", svc]


def database_var(svc: str) -> str:
    return f"LOGISTICS_{svc.upper()}_DATABASE_URL"


class Problems(list[str]):
    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.append(message)
        return ok


def finish(problems: Problems, summary: str) -> int:
    if problems:
        for p in problems:
            print(f"- {p}")
        return 1
    print(summary)
    return 0


def rel(path: pathlib.Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def load(path: pathlib.Path) -> Any:
    with path.open() as fh:
        return yaml.safe_load(fh)


# --------------------------------------------------------------------------- yaml


def yaml_files() -> list[pathlib.Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml"} and p.is_file())


def cmd_yaml() -> int:
    problems = Problems()
    docs = 0
    files = yaml_files()
    for path in files:
        try:
            with path.open() as fh:
                docs += sum(1 for d in yaml.safe_load_all(fh) if d is not None)
        except yaml.YAMLError as exc:
            problems.append(f"{rel(path)}: {exc}")
    return finish(problems, f"{len(files)} YAML files, {docs} documents parse")


# --------------------------------------------------------------------- dockerfiles

#: What one glob token of a .dockerignore pattern becomes in a regular expression.
_GLOB = (("**/", "(?:.*/)?"), ("**", ".*"), ("*", "[^/]*"), ("?", "[^/]"))


def glob_regex(pat: str) -> str:
    """A .dockerignore pattern (``**``, ``*``, ``?``, ``[...]``) as a regular expression."""
    regex, i = "", 0
    while i < len(pat):
        token = next(((glob, rx) for glob, rx in _GLOB if pat.startswith(glob, i)), None)
        if token is not None:
            regex += token[1]
            i += len(token[0])
        elif pat[i] == "[":
            j = pat.index("]", i)
            regex += pat[i : j + 1]
            i = j + 1
        else:
            regex += re.escape(pat[i])
            i += 1
    return regex


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    path = ROOT / ".dockerignore"
    patterns: list[tuple[bool, re.Pattern[str]]] = []
    if not path.exists():
        return patterns
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = (line[1:] if negate else line).strip("/")
        patterns.append((negate, re.compile(glob_regex(pat) + "$")))
    return patterns


def dockerignored(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """True if `path` (relative to the context) or one of its parents is excluded."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts) + 1):
        candidate = "/".join(parts[:depth])
        excluded = False
        for negate, regex in patterns:
            if regex.match(candidate):
                excluded = not negate
        if excluded:
            return True
    return False


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined, comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


@dataclass(frozen=True)
class Dockerfile:
    svc: str
    port: int
    name: str
    instructions: list[tuple[str, str]]
    ignore: list[tuple[bool, re.Pattern[str]]]

    def args(self, *kinds: str) -> list[str]:
        """The arguments of every instruction of these kinds, in order."""
        return [a for i, a in self.instructions if i in kinds]


def check_dockerignore(problems: Problems, ignore: list[tuple[bool, re.Pattern[str]]]) -> None:
    problems.check(bool(ignore), ".dockerignore is missing or empty at the repository root")
    for needed in (".git", ".venv", "var", "tests", "bench"):
        problems.check(dockerignored(needed, ignore), f".dockerignore does not exclude {needed}")


def check_registry_has_dockerfiles(problems: Problems) -> None:
    for path in sorted(ROOT.glob("services/*/Dockerfile")):
        problems.check(
            path.parent.name in services(), f"{rel(path)}: no such service in the service registry"
        )


def check_multi_stage(problems: Problems, df: Dockerfile) -> None:
    problems.check(len(df.args("FROM")) >= 2, f"{df.name}: not a multi-stage build")


def check_base_image(problems: Problems, df: Dockerfile) -> None:
    base_text = " ".join(df.args("FROM", "ARG"))
    problems.check("python:3.11-slim" in base_text, f"{df.name}: base image is not python:3.11-slim")


def copy_sources(df: Dockerfile) -> Iterator[str]:
    """The sources of every COPY/ADD from the build context (not ``--from`` a stage)."""
    for args in df.args("COPY", "ADD"):
        words = exec_form(args) or shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        yield from [w for w in words if not w.startswith("--")][:-1]


def check_copy_sources(problems: Problems, df: Dockerfile) -> None:
    allowed = {"shared", f"services/{df.svc}"}
    for src in copy_sources(df):
        clean = src.strip("/").removeprefix("./")
        problems.check((ROOT / clean).exists(), f"{df.name}: COPY source {src} does not exist")
        problems.check(
            not dockerignored(clean, df.ignore), f"{df.name}: COPY source {src} is excluded by .dockerignore"
        )
        problems.check(
            clean in allowed,
            f"{df.name}: COPY {src}: the image must only contain shared/ and services/{df.svc}/",
        )


def check_pip_install(problems: Problems, df: Dockerfile) -> None:
    pip = re.search(r"pip install ([^&;|]*)", " ".join(df.args("RUN")))
    if not problems.check(pip is not None, f"{df.name}: no pip install"):
        return
    assert pip is not None
    pip_args = pip.group(1).split()
    problems.check("-e" not in pip_args and "--editable" not in pip_args, f"{df.name}: editable install")
    problems.check("./shared" in pip_args, f"{df.name}: pip install does not install ./shared")
    problems.check(
        f"./services/{df.svc}" in pip_args, f"{df.name}: pip install does not install ./services/{df.svc}"
    )
    problems.check(
        not any("[" in a for a in pip_args), f"{df.name}: pip install with extras (dev tools?) {pip_args}"
    )


def check_user(problems: Problems, df: Dockerfile) -> None:
    problems.check(
        f"--uid {UID}" in " ".join(df.args("RUN")), f"{df.name}: the user is not created with uid {UID}"
    )
    users = df.args("USER")
    problems.check(
        bool(users) and users[-1].split(":")[0] not in {"root", "0"},
        f"{df.name}: final USER is missing or root",
    )


def check_expose(problems: Problems, df: Dockerfile) -> None:
    exposes = df.args("EXPOSE")
    problems.check(exposes == [str(df.port)], f"{df.name}: EXPOSE {exposes} is not [{df.port}]")


def check_healthcheck(problems: Problems, df: Dockerfile) -> None:
    checks = df.args("HEALTHCHECK")
    problems.check(
        bool(checks) and "urllib" in checks[-1] and f":{df.port}/healthz" in checks[-1],
        f"{df.name}: HEALTHCHECK does not fetch :{df.port}/healthz with urllib",
    )


def check_cmd(problems: Problems, df: Dockerfile) -> None:
    cmds = df.args("CMD")
    expected = command("web", df.svc)
    problems.check(
        bool(cmds) and exec_form(cmds[-1]) == expected,
        f"{df.name}: CMD is not {' '.join(expected)} (exec form)",
    )


DOCKERFILE_CHECKS: tuple[Callable[[Problems, Dockerfile], None], ...] = (
    check_multi_stage,
    check_base_image,
    check_copy_sources,
    check_pip_install,
    check_user,
    check_expose,
    check_healthcheck,
    check_cmd,
)


def cmd_dockerfiles() -> int:
    problems = Problems()
    ignore = dockerignore_patterns()
    check_dockerignore(problems, ignore)
    check_registry_has_dockerfiles(problems)
    for svc, port in services().items():
        path = ROOT / "services" / svc / "Dockerfile"
        if not problems.check(path.exists(), f"{rel(path)} does not exist"):
            continue
        df = Dockerfile(svc, port, rel(path), dockerfile_instructions(path.read_text()), ignore)
        for check in DOCKERFILE_CHECKS:
            check(problems, df)
    summary = "Dockerfiles: COPY sources exist and are not dockerignored; ports, user, CMD agree"
    return finish(problems, f"{len(services())} {summary}")


# ----------------------------------------------------------------------- balancers


def servers_var(svc: str) -> str:
    """The variable that lists ``svc``'s web replicas for the balancers' templates."""
    return f"{LB_PREFIX}{svc.upper()}_SERVERS"


def environment_dict(env: Any) -> dict[str, str]:
    """A compose ``environment:`` (mapping, or list of NAME=value) as a mapping of strings."""
    if isinstance(env, list):
        return dict(str(item).partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in (env or {}).items()}


def host_balancer_env() -> dict[str, str]:
    """What `make cluster` gives both balancers: deploy/local/cluster.py's default layout
    (127.0.0.1, two web replicas per service)."""
    spec = importlib.util.spec_from_file_location("logistics_local_cluster", DEPLOY / "local" / "cluster.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    layout = module.Layout({})
    # environment() may write a JWT secret into the cluster directory: give it a scratch one.
    with tempfile.TemporaryDirectory() as scratch:
        env: dict[str, str] = module.environment(layout, pathlib.Path(scratch))
    return {k: v for k, v in env.items() if k.startswith(LB_PREFIX) and k != f"{LB_PREFIX}RUN_DIR"}


def lb_variables(svc: dict[str, Any]) -> dict[str, str]:
    """The LOGISTICS_LB_* variables of one compose service."""
    env = environment_dict(svc.get("environment"))
    return {k: v for k, v in env.items() if k.startswith(LB_PREFIX)}


def compose_balancer_env(balancer: str) -> dict[str, str]:
    """The LOGISTICS_LB_* variables of the compose service ``balancer``."""
    return lb_variables(load(DEPLOY / "docker-compose.yml").get("services", {}).get(balancer, {}))


def k8s_balancer_env() -> dict[str, str]:
    """A balancer in the cluster: each service's ClusterIP Service by its DNS name and port
    ``http``. A ClusterIP name resolves to one virtual address (kube-proxy spreads the
    connections over the pods), so HAProxy needs one slot per name."""
    env = {f"{LB_PREFIX}HAPROXY_SLOTS": "1"}
    for _, doc in k8s_documents():
        name = doc["metadata"]["name"]
        if doc["kind"] != "Service" or name not in services():
            continue
        port = next(p["port"] for p in doc["spec"]["ports"] if p.get("name") == "http")
        env[servers_var(name)] = f"{name}.{doc['metadata']['namespace']}.svc.cluster.local:{port}"
    return env


def balancer_env(shape: str, balancer: str) -> dict[str, str]:
    """The LOGISTICS_LB_* variables ``balancer`` renders its template with in ``shape``
    (LOGISTICS_LB_RUN_DIR left to the caller, or its default)."""
    if balancer not in TEMPLATES:
        raise ValueError(f"unknown balancer {balancer!r}: one of {', '.join(TEMPLATES)}")
    if shape == "host":
        return host_balancer_env()
    if shape == "compose":
        return compose_balancer_env(balancer)
    if shape == "k8s":
        return k8s_balancer_env()
    raise ValueError(f"unknown deployment shape {shape!r}: one of {', '.join(SHAPES)}")


def render(
    template: pathlib.Path, output: pathlib.Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """deploy/render.sh TEMPLATE OUTPUT with only ``env`` (and PATH) in its environment."""
    # The repository's own script, run by the sh on PATH as the containers do.
    return subprocess.run(  # noqa: S603
        ["sh", str(RENDER), str(template), str(output)],  # noqa: S607
        env={"PATH": os.environ.get("PATH", os.defpath), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def rendered(balancer: str, env: dict[str, str]) -> tuple[str, str | None]:
    """(configuration, None) of ``balancer``'s template rendered with ``env``, or ("", error)."""
    with tempfile.TemporaryDirectory() as scratch:
        output = pathlib.Path(scratch) / TEMPLATES[balancer].stem
        done = render(TEMPLATES[balancer], output, env)
        if done.returncode != 0:
            error = done.stderr.strip() or f"exit status {done.returncode}"
            return "", f"render.sh {rel(TEMPLATES[balancer])} failed: {error}"
        return output.read_text(), None


def cmd_lb_env(shape: str, balancer: str) -> int:
    try:
        env = balancer_env(shape, balancer)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    for name, value in sorted(env.items()):
        print(f"{name}={value}")
    return 0


# ------------------------------------------------------------------------ compose


#: (service, /v1 resource) served by a service but routed to another one at the front
#: door: support's read model of shipments is /support/v1/shipments (shipping owns /v1/shipments).
PREFIX_ONLY = {("support", "shipments")}


class _RouteRecorder:
    """Stands in for a Configurator: records the paths of add_route(), ignores views."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def add_route(self, _name: str, pattern: str, **_kwargs: Any) -> None:
        self.paths.append(pattern)

    def add_view(self, *_args: Any, **_kwargs: Any) -> None:
        pass


def webhook_paths(service: str) -> list[str]:
    """The routes ``add_webhook_routes(config, service)`` (logistics_shared.webhooks.routes)
    declares: the webhook subscriptions API, under /v1/<service>/..."""
    from logistics_shared.webhooks.routes import add_webhook_routes

    recorder = _RouteRecorder()
    add_webhook_routes(recorder, service)
    return recorder.paths


def served_prefixes() -> dict[str, set[str]]:
    """The first path segment of every /v1 route each service declares (routes*.py): its own
    add_route() calls, and the webhook API an ``add_webhook_routes(config, "<name>")`` adds."""
    found: dict[str, set[str]] = {}
    for path in sorted(ROOT.glob("services/*/*/routes*.py")):
        svc = path.parent.parent.name
        text = path.read_text()
        prefixes = set(re.findall(r'add_route\(\s*"\w+",\s*"/v1/([a-z-]+)', text))
        for name in re.findall(r'add_webhook_routes\(\s*\w+,\s*"([a-z-]+)"', text):
            for route in webhook_paths(name):
                if m := re.match(r"/v1/([a-z-]+)", route):
                    prefixes.add(m.group(1))
        found.setdefault(svc, set()).update(prefixes)
    return found


def nginx_routes(text: str) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for m in re.finditer(r"location ~ \^/v1/\(?([a-z|-]+)\)?\(/\|\$\) \{\s*proxy_pass http://(\w+);", text):
        routes.setdefault(m.group(2), set()).update(m.group(1).split("|"))
    return routes


def haproxy_routes(text: str) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for m in re.finditer(r"acl is_(\w+)\s+path_reg \^/v1/\(?([a-z|-]+)\)?\(/\|\$\)", text):
        routes.setdefault(m.group(1), set()).update(m.group(2).split("|"))
    return routes


def ingress_routes(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for doc in docs:
        if doc.get("kind") != "Ingress":
            continue
        for rule in doc["spec"].get("rules", []):
            for p in rule.get("http", {}).get("paths", []):
                svc = p["backend"]["service"]["name"]
                m = re.fullmatch(r"/v1/([a-z-]+)", p["path"])
                if m:
                    routes.setdefault(svc, set()).add(m.group(1))
    return routes


K8S = DEPLOY / "k8s"
#: `kubectl apply -k deploy/k8s`: lists every manifest and pins the images.
KUSTOMIZATION = K8S / "kustomization.yaml"
#: Manifests the kustomization must not list: placeholders that would overwrite real values.
NOT_APPLIED = frozenset({"secret.example.yaml"})
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def k8s_manifests() -> list[pathlib.Path]:
    """Every YAML file of Kubernetes objects under deploy/k8s (not the kustomization)."""
    return sorted(p for p in K8S.rglob("*.yaml") if p != KUSTOMIZATION)


def k8s_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, object) of every non-empty document under deploy/k8s, in path order."""
    for path in k8s_manifests():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield rel(path), doc


@dataclass(frozen=True)
class Compose:
    services: dict[str, dict[str, Any]]
    #: The balancers' templates rendered with the environment compose gives them (the raw
    #: template where that failed: its routing and settings can still be checked).
    nginx: str
    haproxy: str
    prometheus: dict[str, Any]
    #: Why a template did not render, by balancer.
    render_errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls) -> Compose:
        compose = load(DEPLOY / "docker-compose.yml")
        services = compose.get("services", {})
        texts, errors = {}, {}
        for balancer, template in TEMPLATES.items():
            texts[balancer], error = rendered(balancer, lb_variables(services.get(balancer, {})))
            if error:
                errors[balancer] = f"compose {balancer}: {error}"
                texts[balancer] = template.read_text()
        return cls(
            services=services,
            nginx=texts["nginx"],
            haproxy=texts["haproxy"],
            prometheus=load(DEPLOY / "prometheus" / "prometheus.yml"),
            render_errors=errors,
        )

    def exposed(self, name: str) -> set[int]:
        svc = self.services.get(name, {})
        ports = {int(str(p).split("/")[0]) for p in svc.get("expose", [])}
        for p in svc.get("ports", []):
            ports.add(int(str(p).split(":")[-1].split("/")[0]))
        return ports


def check_compose_image(problems: Problems, name: str, svc: dict[str, Any]) -> None:
    problems.check("image" in svc, f"compose {name}: no image")


def check_compose_build(problems: Problems, name: str, svc: dict[str, Any]) -> None:
    build = svc.get("build")
    if not build:
        return
    context = (DEPLOY / build["context"]).resolve()
    problems.check(context == ROOT, f"compose {name}: build context is not the repository root")
    problems.check(
        (context / build["dockerfile"]).exists(), f"compose {name}: {build['dockerfile']} does not exist"
    )


def check_compose_volumes(problems: Problems, name: str, svc: dict[str, Any]) -> None:
    for vol in svc.get("volumes", []):
        src = str(vol).split(":")[0]
        if src.startswith("."):
            problems.check((DEPLOY / src).exists(), f"compose {name}: volume source {src} does not exist")


def check_compose_depends_on(
    problems: Problems, name: str, svc: dict[str, Any], known: dict[str, Any]
) -> None:
    for dep in svc.get("depends_on", {}) or {}:
        problems.check(dep in known, f"compose {name}: depends_on unknown service {dep}")


def check_compose_databases(problems: Problems, compose: Compose, svc: str) -> None:
    """Each process of a service is in compose and gets its own database URL, no other."""
    for role in roles(svc):
        name = f"{svc}-{role}"
        if not problems.check(name in compose.services, f"compose: service {name} is missing"):
            continue
        env = compose.services[name].get("environment", {})
        problems.check(database_var(svc) in env, f"compose {name}: {database_var(svc)} not set")
        for other in services():
            if other != svc:
                problems.check(
                    database_var(other) not in env, f"compose {name}: gets the database URL of {other}"
                )


def check_compose_commands(problems: Problems, compose: Compose, svc: str) -> None:
    migrate_cmd = compose.services.get(f"{svc}-migrate", {}).get("command")
    problems.check(migrate_cmd == command("migrate", svc), f"compose {svc}-migrate: command {migrate_cmd}")
    worker = compose.services.get(f"{svc}-worker", {})
    problems.check(
        worker.get("command") == command("worker", svc),
        f"compose {svc}-worker: command {worker.get('command')}",
    )
    if svc in webhook_services():
        dispatcher = compose.services.get(f"{svc}-dispatcher", {})
        problems.check(
            dispatcher.get("command") == command("dispatcher", svc),
            f"compose {svc}-dispatcher: command {dispatcher.get('command')}",
        )
    else:
        problems.check(
            f"{svc}-dispatcher" not in compose.services, f"compose: {svc} has no webhooks but a dispatcher"
        )


def check_compose_ports(problems: Problems, compose: Compose, svc: str) -> None:
    port = worker_port(svc)
    hc = " ".join(compose.services.get(f"{svc}-worker", {}).get("healthcheck", {}).get("test", []))
    problems.check(f":{port}/" in hc, f"compose {svc}-worker: healthcheck not on :{port}")
    web_port = services()[svc]
    problems.check(
        web_port in compose.exposed(f"{svc}-web"), f"compose {svc}-web: does not expose {web_port}"
    )
    problems.check(port in compose.exposed(f"{svc}-worker"), f"compose {svc}-worker: does not expose {port}")
    if svc in webhook_services():
        port = dispatcher_port(svc)
        hc = " ".join(compose.services.get(f"{svc}-dispatcher", {}).get("healthcheck", {}).get("test", []))
        problems.check(f":{port}/" in hc, f"compose {svc}-dispatcher: healthcheck not on :{port}")
        problems.check(
            port in compose.exposed(f"{svc}-dispatcher"), f"compose {svc}-dispatcher: does not expose {port}"
        )


#: What a compose dispatcher may get beyond its database URL and secrets key: logging, its pool.
DISPATCHER_COMPOSE_EXTRA = frozenset(
    {"LOGISTICS_LOG_FORMAT", "LOGISTICS_LOG_LEVEL", "LOGISTICS_DB_POOL_SIZE", "LOGISTICS_DB_MAX_OVERFLOW"}
)


def check_compose_secrets_key(problems: Problems, compose: Compose, svc: str) -> None:
    """A webhook service's web and dispatcher get the secrets key, its worker does not; the
    dispatcher gets its database URL, the key, logging and pool settings, nothing else (no
    broker, Redis or JWT secret); a service without webhooks has no key at all."""
    for role in roles(svc):
        env = environment_dict(compose.services.get(f"{svc}-{role}", {}).get("environment"))
        has = SECRETS_KEY_VAR in env
        if svc in webhook_services() and role in {"web", "dispatcher"}:
            problems.check(has, f"compose {svc}-{role}: {SECRETS_KEY_VAR} not set")
        elif role in {"worker"} or svc not in webhook_services():
            problems.check(not has, f"compose {svc}-{role}: gets {SECRETS_KEY_VAR}, which it never reads")
        if role == "dispatcher":
            extra = sorted(set(env) - {database_var(svc), SECRETS_KEY_VAR} - DISPATCHER_COMPOSE_EXTRA)
            problems.check(
                not extra,
                f"compose {svc}-dispatcher: needs its database URL and secrets key only, also gets {extra}",
            )


def check_compose_replicas(problems: Problems, compose: Compose) -> None:
    replicas = compose.services.get("inventory-web", {}).get("deploy", {}).get("replicas", 1)
    problems.check(replicas >= 2, "compose inventory-web: fewer than 2 replicas")


def upstream_targets(compose: Compose) -> list[tuple[str, str, int]]:
    """(who, host, port) of every nginx/HAProxy upstream and Prometheus scrape target."""
    targets = [
        ("nginx", h, int(p)) for h, p in re.findall(r"^\s*server ([\w.-]+):(\d+)", compose.nginx, re.M)
    ]
    targets += [
        ("haproxy", h, int(p))
        for h, p in re.findall(r"^\s*server-template \S+ \d+ ([\w.-]+):(\d+)", compose.haproxy, re.M)
    ]
    for job in compose.prometheus.get("scrape_configs", []):
        who = f"prometheus {job['job_name']}"
        for sd in job.get("dns_sd_configs", []):
            targets += [(who, n, sd["port"]) for n in sd["names"]]
        for sc in job.get("static_configs", []):
            for t in sc["targets"]:
                host, _, p = t.partition(":")
                if host != "localhost":
                    targets.append((who, host, int(p)))
    return targets


def check_targets(problems: Problems, compose: Compose, targets: list[tuple[str, str, int]]) -> None:
    """The balancers and Prometheus must name services and ports that compose has."""
    problems.check(
        len(targets) >= 9 or bool(compose.render_errors), f"only {len(targets)} upstream/scrape targets found"
    )
    for who, host, p in targets:
        if not problems.check(host in compose.services, f"{who}: {host} is not a compose service"):
            continue
        if host in {"rabbitmq", "haproxy"}:
            continue  # ports of the stock images, not declared in compose
        problems.check(p in compose.exposed(host), f"{who}: {host} does not expose port {p}")


def check_balancer_settings(problems: Problems, compose: Compose) -> None:
    nginx, haproxy = compose.nginx, compose.haproxy
    problems.check("client_max_body_size 1m;" in nginx, "nginx: client_max_body_size is not 1m")
    problems.check("$request_id" in nginx and "X-Request-ID" in nginx, "nginx: no X-Request-ID handling")
    problems.check(
        "proxy_hide_header X-Request-ID;" in nginx,
        "nginx: the upstream's X-Request-ID is not hidden (a response would carry two)",
    )
    problems.check("X-Forwarded-For" in nginx, "nginx: no X-Forwarded-For")
    next_upstream = re.findall(r"^\s*proxy_next_upstream (.*);", nginx, re.M)
    problems.check(
        bool(next_upstream) and not any("non_idempotent" in n for n in next_upstream),
        "nginx: proxy_next_upstream is missing or retries non-idempotent requests",
    )
    problems.check("gt 1048576" in haproxy, "haproxy: no 1 MiB body limit")
    # Inventory's CSV upload has its own limit, LOGISTICS_IMPORT_MAX_BYTES (50 MiB), on every door.
    imports = re.search(r"location ~ \^/v1/imports\(/\|\$\) \{(.*?)\}", nginx, re.S)
    problems.check(
        imports is not None and "client_max_body_size 50m;" in imports.group(1),
        "nginx: /v1/imports has no client_max_body_size 50m",
    )
    problems.check(
        "if import_upload { req.hdr_val(content-length) gt 52428800 }" in haproxy,
        "haproxy: /v1/imports has no 50 MiB body limit",
    )
    problems.check("uri /readyz" in haproxy, "haproxy: health checks are not on /readyz")
    problems.check("option forwardfor" in haproxy, "haproxy: no X-Forwarded-For")
    problems.check(
        re.search(r"^\s*http-request disable-l7-retry unless ", haproxy, re.M) is not None,
        "haproxy: L7 retries are not disabled for unsafe requests (disable-l7-retry)",
    )


def volume_target(svc: dict[str, Any], source: str) -> str | None:
    """Where compose mounts the file ``source`` (relative to deploy/) read-only, if it does."""
    for vol in svc.get("volumes", []):
        parts = str(vol).split(":")
        if len(parts) == 3 and parts[2] == "ro" and parts[0].removeprefix("./") == source:
            return parts[1]
    return None


#: The file each balancer reads without -c (nginx) or -f (HAProxy has no default).
DEFAULT_CONFIGURATION = {"nginx": "/etc/nginx/nginx.conf", "haproxy": None}


def configuration_read(balancer: str, argv: list[str]) -> str | None:
    """The configuration file the command line ``argv`` of ``balancer`` reads."""
    option = "-c" if balancer == "nginx" else "-f"
    if option in argv[:-1]:
        return argv[argv.index(option) + 1]
    return DEFAULT_CONFIGURATION[balancer]


def check_balancer_container(problems: Problems, compose: Compose, balancer: str) -> None:
    """The balancer's container mounts its template and render.sh, renders the one into the
    configuration file its command reads, and gets every service's upstream list."""
    name = f"compose {balancer}"
    svc = compose.services.get(balancer)
    if not problems.check(svc is not None, f"compose: service {balancer} is missing"):
        return
    assert svc is not None
    template = volume_target(svc, str(TEMPLATES[balancer].relative_to(DEPLOY)))
    script = volume_target(svc, RENDER.name)
    problems.check(template is not None, f"{name}: {rel(TEMPLATES[balancer])} is not mounted read-only")
    problems.check(script is not None, f"{name}: {rel(RENDER)} is not mounted read-only")
    entrypoint = svc.get("entrypoint") or []
    if not problems.check(
        len(entrypoint) == 5 and entrypoint[:3] == ["sh", script, template] and entrypoint[4] == "--",
        f"{name}: entrypoint {entrypoint} is not [sh, {script}, {template}, OUTPUT, --]",
    ):
        return
    output, argv = entrypoint[3], svc.get("command") or []
    problems.check(
        bool(argv) and argv[0] == balancer and configuration_read(balancer, argv) == output,
        f"{name}: command {argv} does not run {balancer} on the rendered {output}",
    )
    env = environment_dict(svc.get("environment"))
    for web in services():
        problems.check(servers_var(web) in env, f"{name}: {servers_var(web)} is not set")


def upstream_blocks(text: str, keyword: str) -> dict[str, str]:
    """Each nginx ``upstream NAME { ... }`` (keyword "upstream") or HAProxy ``backend NAME``
    section (keyword "backend"), by name."""
    if keyword == "upstream":
        return {
            m.group(1): m.group(2) for m in re.finditer(r"^\s*upstream (\w+) \{(.*?)\}", text, re.M | re.S)
        }
    sections = re.split(r"^(?=\S)", text, flags=re.M)
    return {m.group(1): sec for sec in sections if (m := re.match(r"backend (\w+)", sec))}


def check_upstreams_per_service(problems: Problems, compose: Compose) -> None:
    """nginx's upstream and HAProxy's backend of a service balance over that service's web
    replicas only (a swapped or mistyped LOGISTICS_LB_*_SERVERS would send traffic elsewhere)."""
    for balancer, text, keyword, server in (
        ("nginx", compose.nginx, "upstream", r"^\s*server ([\w.-]+):(\d+)"),
        ("haproxy", compose.haproxy, "backend", r"^\s*server-template \S+ \d+ ([\w.-]+):(\d+)"),
    ):
        if balancer in compose.render_errors:
            continue
        blocks = upstream_blocks(text, keyword)
        for svc, port in services().items():
            found = {(h, int(p)) for h, p in re.findall(server, blocks.get(svc, ""), re.M)}
            problems.check(
                found == {(f"{svc}-web", port)},
                f"{balancer}: {keyword} {svc} balances over {sorted(found)}, not {svc}-web:{port}",
            )


def check_routes_agree(problems: Problems, routes: dict[str, dict[str, set[str]]]) -> None:
    """The three public entry points route the same resources to the same services."""
    nginx = routes["nginx"]
    problems.check(set(nginx) == set(services()), f"nginx routes only {sorted(nginx)}")
    for who, table in routes.items():
        for svc in sorted(set(table) | set(nginx)):
            mine, ref = table.get(svc, set()), nginx.get(svc, set())
            problems.check(
                mine == ref,
                f"{who} routes to {svc}: missing {sorted(ref - mine)}, extra {sorted(mine - ref)}"
                " (compared with nginx)",
            )


def check_served_prefixes_routed(problems: Problems, nginx: dict[str, set[str]]) -> None:
    """Every /v1/<resource> a service serves reaches it through the front door, unless
    another service owns that prefix (then it is only under /<svc>/, listed in PREFIX_ONLY)."""
    routed = {prefix: svc for svc, prefixes in nginx.items() for prefix in prefixes}
    for svc, prefixes in sorted(served_prefixes().items()):
        for prefix in sorted(prefixes - nginx.get(svc, set())):
            problems.check(
                (svc, prefix) in PREFIX_ONLY and routed.get(prefix) not in (None, svc),
                f"{svc} serves /v1/{prefix} but nginx does not route it there",
            )


#: The proxies whose X-Forwarded-For the web believes (the rate limiter counts a request
#: without a token by the client address the balancer appends: README "Rate limits").
FORWARDED_VAR = "LOGISTICS_WEB_FORWARDED_ALLOW_IPS"
#: Where the web's rate limiter counts (shared by the replicas) when it is set.
REDIS_VAR = "LOGISTICS_REDIS_URL"
RATE_LIMIT_STORAGE_VAR = "LOGISTICS_RATE_LIMIT_STORAGE_URL"


def trusted_networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """A LOGISTICS_WEB_FORWARDED_ALLOW_IPS value as networks; None when it is empty, ``*``
    (everyone may claim any address) or not a list of addresses and networks."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items or "*" in items:
        return None
    try:
        return [ipaddress.ip_network(item, strict=False) for item in items]
    except ValueError:
        return None


def balancer_address(svc: dict[str, Any]) -> str | None:
    """The fixed address of a compose service on the default network, if it has one."""
    networks = svc.get("networks")
    if not isinstance(networks, dict):
        return None
    address = (networks.get("default") or {}).get("ipv4_address")
    return str(address) if address else None


def check_compose_forwarded(problems: Problems, compose: Compose) -> None:
    """Every web replica counts requests in Redis and believes X-Forwarded-For from both
    balancers' fixed addresses, and from no network that holds anything else's."""
    addresses = {}
    for balancer in TEMPLATES:
        address = balancer_address(compose.services.get(balancer, {}))
        if problems.check(
            address is not None, f"compose {balancer}: no fixed ipv4_address on the default network"
        ):
            addresses[balancer] = ipaddress.ip_address(address)
    for svc in services():
        name = f"{svc}-web"
        env = environment_dict(compose.services.get(name, {}).get("environment"))
        problems.check(
            bool(env.get(REDIS_VAR) or env.get(RATE_LIMIT_STORAGE_VAR)),
            f"compose {name}: no {REDIS_VAR}: each replica would count its own rate-limit budget",
        )
        networks = trusted_networks(env.get(FORWARDED_VAR, ""))
        if not problems.check(
            networks is not None,
            f"compose {name}: {FORWARDED_VAR} is {env.get(FORWARDED_VAR)!r}, not the balancers' addresses",
        ):
            continue
        assert networks is not None
        for balancer, address in addresses.items():
            problems.check(
                any(address in n for n in networks),
                f"compose {name}: {FORWARDED_VAR} does not trust {balancer} ({address})",
            )
        problems.check(
            all(n.num_addresses == 1 for n in networks),
            f"compose {name}: {FORWARDED_VAR} trusts whole networks ({env[FORWARDED_VAR]}): the"
            " compose network's gateway is every published port's client",
        )


def cmd_compose() -> int:
    compose = Compose.read()
    problems = Problems(compose.render_errors.values())
    for name, spec in compose.services.items():
        check_compose_image(problems, name, spec)
        check_compose_build(problems, name, spec)
        check_compose_volumes(problems, name, spec)
        check_compose_depends_on(problems, name, spec, compose.services)
    for svc in services():
        check_compose_databases(problems, compose, svc)
        check_compose_commands(problems, compose, svc)
        check_compose_ports(problems, compose, svc)
        check_compose_secrets_key(problems, compose, svc)
    check_compose_replicas(problems, compose)
    targets = upstream_targets(compose)
    check_targets(problems, compose, targets)
    check_balancer_settings(problems, compose)
    check_compose_forwarded(problems, compose)
    for balancer in TEMPLATES:
        check_balancer_container(problems, compose, balancer)
    check_upstreams_per_service(problems, compose)
    routes = {
        "nginx": nginx_routes(compose.nginx),
        "haproxy": haproxy_routes(compose.haproxy),
        "ingress": ingress_routes([doc for _, doc in k8s_documents()]),
    }
    check_routes_agree(problems, routes)
    check_served_prefixes_routed(problems, routes["nginx"])
    n_routes = sum(len(v) for v in routes["nginx"].values())
    return finish(
        problems,
        f"{len(compose.services)} compose services; nginx and haproxy render from their templates; "
        f"{len(targets)} nginx/haproxy/prometheus targets resolve to them; nginx, haproxy and ingress "
        f"route the same {n_routes} prefixes",
    )


# ---------------------------------------------------------------------------- k8s


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


@dataclass
class Cluster:
    """The Kubernetes objects of deploy/k8s, by kind, and what the workloads' containers use."""

    docs: list[tuple[str, dict[str, Any]]]
    by_kind: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    #: Every image a service's containers run, filled in while its workloads are checked.
    images: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path, doc in self.docs:
            self.by_kind.setdefault(doc["kind"], []).append((path, doc))

    def of_kind(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return self.by_kind.get(kind, [])

    @functools.cached_property
    def secrets(self) -> dict[str, set[str]]:
        """The keys of each Secret (secret.example.yaml), by Secret name."""
        return {
            s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {}))
            for _, s in self.of_kind("Secret")
        }

    @functools.cached_property
    def secret_keys(self) -> set[str]:
        return set().union(*self.secrets.values())

    @functools.cached_property
    def configmaps(self) -> set[str]:
        return {c["metadata"]["name"] for _, c in self.of_kind("ConfigMap")}

    @functools.cached_property
    def configmap_keys(self) -> dict[str, set[str]]:
        """The keys of each ConfigMap, by name."""
        return {
            c["metadata"]["name"]: set(c.get("data") or {}) | set(c.get("binaryData") or {})
            for _, c in self.of_kind("ConfigMap")
        }

    @functools.cached_property
    def deployments(self) -> dict[str, dict[str, Any]]:
        return {d["metadata"]["name"]: d for _, d in self.of_kind("Deployment")}

    @functools.cached_property
    def services(self) -> dict[str, dict[str, Any]]:
        return {s["metadata"]["name"]: s for _, s in self.of_kind("Service")}


@dataclass(frozen=True)
class Container:
    """One container of a Deployment or Job, with what its checks need of the pod around it."""

    name: str  # "<path>: <Kind>/<name> container <container>", for messages
    svc: str
    component: str | None
    spec: dict[str, Any]
    pod: dict[str, Any]
    annotations: dict[str, str]
    #: An initContainer (wait-for-schema): it runs no component, and needs only its database.
    init: bool = False

    @property
    def env(self) -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in self.spec.get("env", [])}

    @property
    def secret_refs(self) -> list[tuple[str, str | None]]:
        """(Secret, key) of every env secretKeyRef, and (Secret, None) of every envFrom secretRef."""
        refs: list[tuple[str, str | None]] = []
        for e in self.spec.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.append((ref.get("name", ""), ref.get("key", "")))
        for ef in self.spec.get("envFrom", []):
            ref = ef.get("secretRef")
            if ref:
                refs.append((ref.get("name", ""), None))
        return refs

    @property
    def args(self) -> list[str] | None:
        args: list[str] | None = self.spec.get("args") or self.spec.get("command")
        return args

    @property
    def ports(self) -> dict[str | None, int]:
        return {p.get("name"): p["containerPort"] for p in self.spec.get("ports", [])}


def check_namespaces(problems: Problems, cluster: Cluster) -> None:
    for path, doc in cluster.docs:
        if doc["kind"] != "Namespace":
            problems.check(
                doc["metadata"].get("namespace") == NAMESPACE,
                f"{path}: {doc['kind']}/{doc['metadata']['name']} is not in namespace {NAMESPACE}",
            )


def check_selector(problems: Problems, name: str, doc: dict[str, Any]) -> None:
    if doc["kind"] == "Deployment":
        problems.check(
            labels_match(
                doc["spec"]["selector"]["matchLabels"], doc["spec"]["template"]["metadata"]["labels"]
            ),
            f"{name}: selector does not match the pod labels",
        )


def check_pod_security(problems: Problems, name: str, pod: dict[str, Any]) -> None:
    psc = pod.get("securityContext", {})
    problems.check(psc.get("runAsNonRoot") is True, f"{name}: runAsNonRoot is not true")
    problems.check(psc.get("runAsUser") == UID, f"{name}: runAsUser is not {UID}")
    problems.check(
        pod.get("automountServiceAccountToken") is False, f"{name}: mounts a service account token"
    )


def check_container_security(problems: Problems, ctr: Container, _cluster: Cluster) -> None:
    sc = ctr.spec.get("securityContext", {})
    problems.check(sc.get("allowPrivilegeEscalation") is False, f"{ctr.name}: allowPrivilegeEscalation")
    problems.check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{ctr.name}: capabilities not dropped")


def check_resources(problems: Problems, ctr: Container, _cluster: Cluster) -> None:
    res = ctr.spec.get("resources", {})
    problems.check(
        {"cpu", "memory"} <= set(res.get("requests", {})) and {"cpu", "memory"} <= set(res.get("limits", {})),
        f"{ctr.name}: cpu/memory requests and limits are not all set",
    )


def check_config_refs(problems: Problems, ctr: Container, cluster: Cluster) -> None:
    for ef in ctr.spec.get("envFrom", []):
        ref = ef.get("configMapRef", {}).get("name")
        if ref:
            problems.check(ref in cluster.configmaps, f"{ctr.name}: ConfigMap {ref} is not defined")


def check_secret_refs(problems: Problems, ctr: Container, cluster: Cluster) -> None:
    """Every Secret (and key) a container references is defined in secret.example.yaml."""
    for name, key in ctr.secret_refs:
        if not problems.check(
            name in cluster.secrets, f"{ctr.name}: Secret {name} is not defined in secret.example.yaml"
        ):
            continue
        problems.check(
            key is None or key in cluster.secrets[name],
            f"{ctr.name}: Secret {name} has no key {key} in secret.example.yaml",
        )


def database_secret(svc: str) -> str:
    """The Secret holding only ``svc``'s database URL."""
    return f"{svc}-database"


def secrets_key_secret(svc: str) -> str:
    """The Secret holding only ``svc``'s secrets key (LOGISTICS_SECRETS_KEY)."""
    return f"{svc}-secrets-key"


def check_database_secrets(problems: Problems, ctr: Container, _cluster: Cluster) -> None:
    """A container reads its database URL from its own service's Secret, never another's."""
    names = {name for name, _ in ctr.secret_refs}
    for other in services():
        if other != ctr.svc:
            problems.check(
                database_secret(other) not in names,
                f"{ctr.name}: references {other}'s database Secret {database_secret(other)}",
            )
            problems.check(
                secrets_key_secret(other) not in names,
                f"{ctr.name}: references {other}'s secrets key Secret {secrets_key_secret(other)}",
            )
    ref = ctr.env.get(database_var(ctr.svc), {}).get("valueFrom", {}).get("secretKeyRef", {})
    problems.check(
        ref.get("name") == database_secret(ctr.svc),
        f"{ctr.name}: {database_var(ctr.svc)} does not come from Secret {database_secret(ctr.svc)}",
    )


def check_container_databases(problems: Problems, ctr: Container, _cluster: Cluster) -> None:
    env = ctr.env
    problems.check(database_var(ctr.svc) in env, f"{ctr.name}: no database URL")
    for other in services():
        if other != ctr.svc:
            problems.check(database_var(other) not in env, f"{ctr.name}: gets {other}'s database URL")


def serving_port(ctr: Container) -> int | None:
    """The port a web, worker or dispatcher container serves (HTTP, probes, metrics) on."""
    if ctr.component == "web":
        return services()[ctr.svc]
    if ctr.component == "worker":
        return worker_port(ctr.svc)
    if ctr.component == "dispatcher":
        return dispatcher_port(ctr.svc)
    return None


def check_serving_ports(problems: Problems, ctr: Container, port: int) -> None:
    problems.check(list(ctr.ports.values()) == [port], f"{ctr.name}: containerPort is not {port}")


def check_probes(problems: Problems, ctr: Container, port: int) -> None:
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = ctr.spec.get(probe, {}).get("httpGet", {})
        probed = ctr.ports.get(get.get("port"), get.get("port"))
        problems.check(
            get.get("path") == path and probed == port, f"{ctr.name}: {probe} is not {path} on {port}"
        )


def check_scrape_annotations(problems: Problems, ctr: Container, port: int) -> None:
    annotations = ctr.annotations
    problems.check(
        annotations.get("prometheus.io/scrape") == "true"
        and annotations.get("prometheus.io/port") == str(port)
        and annotations.get("prometheus.io/path") == "/metrics",
        f"{ctr.name}: prometheus.io annotations do not point at :{port}/metrics",
    )


def check_component(problems: Problems, ctr: Container, _cluster: Cluster) -> None:
    """The container runs its component's command; a web or worker one serves on its port."""
    if ctr.component not in roles(ctr.svc):
        problems.append(f"{ctr.name}: unknown component {ctr.component} (for {ctr.svc})")
        return
    problems.check(ctr.args == command(ctr.component, ctr.svc), f"{ctr.name}: args {ctr.args}")
    port = serving_port(ctr)
    if port is None:  # migrate: a Job that runs to completion
        problems.check(ctr.pod.get("restartPolicy") in {"Never", "OnFailure"}, f"{ctr.name}: restartPolicy")
        return
    check_serving_ports(problems, ctr, port)
    check_probes(problems, ctr, port)
    check_scrape_annotations(problems, ctr, port)


def check_database_only(problems: Problems, ctr: Container, _cluster: Cluster) -> None:
    """Migrations and the wait-for-schema gate read their database URL and no other Secret
    (a migrate Job of a service with stored secrets may also get its secrets key: a data
    migration re-encrypts them, shipping's 0009); a dispatcher reads its database URL and
    its secrets key, no broker, Redis or anything else."""
    allowed = {database_secret(ctr.svc)}
    if ctr.init:
        pass
    elif ctr.component == "migrate":
        if ctr.svc in webhook_services():
            allowed.add(secrets_key_secret(ctr.svc))
    elif ctr.component == "dispatcher":
        allowed.add(secrets_key_secret(ctr.svc))
    else:
        return
    extra = sorted({name for name, _ in ctr.secret_refs} - allowed)
    problems.check(not extra, f"{ctr.name}: needs only {', '.join(sorted(allowed))}, also gets {extra}")


def secrets_key_held(ctr: Container, cluster: Cluster) -> bool:
    """Whether the container gets LOGISTICS_SECRETS_KEY (env, or an envFrom Secret/ConfigMap)."""
    if SECRETS_KEY_VAR in ctr.env:
        return True
    for ef in ctr.spec.get("envFrom", []):
        if ef.get("secretRef") and SECRETS_KEY_VAR in cluster.secrets.get(
            ef["secretRef"].get("name", ""), set()
        ):
            return True
        if ef.get("configMapRef") and SECRETS_KEY_VAR in cluster.configmap_keys.get(
            ef["configMapRef"].get("name", ""), set()
        ):
            return True
    return False


def check_secrets_key(problems: Problems, ctr: Container, cluster: Cluster) -> None:
    """The secrets key goes where stored secrets are opened: web and dispatcher of a service
    with webhooks must get it from its own ``<svc>-secrets-key`` Secret; workers, the
    wait-for-schema gate and every container of a service without webhooks never get it
    (a migrate Job may: check_database_only)."""
    kind = "init" if ctr.init else str(ctr.component)
    held = secrets_key_held(ctr, cluster)
    if ctr.svc in webhook_services() and kind in {"web", "dispatcher"}:
        ref = ctr.env.get(SECRETS_KEY_VAR, {}).get("valueFrom", {}).get("secretKeyRef", {})
        problems.check(
            ref.get("name") == secrets_key_secret(ctr.svc) and ref.get("key") == SECRETS_KEY_VAR,
            f"{ctr.name}: {SECRETS_KEY_VAR} does not come from Secret {secrets_key_secret(ctr.svc)}",
        )
    elif kind != "migrate" or ctr.svc not in webhook_services():
        problems.check(not held, f"{ctr.name}: gets {SECRETS_KEY_VAR}, which a {kind} container never reads")


JWT_SECRET_VAR = "LOGISTICS_JWT_SECRET"  # noqa: S105 - a variable's name, no value
JWT_PRIVATE_VAR = "LOGISTICS_JWT_PRIVATE_KEY_FILE"
JWT_PUBLIC_VAR = "LOGISTICS_JWT_PUBLIC_KEY_FILE"
JWT_ALGORITHM_VAR = "LOGISTICS_JWT_ALGORITHM"
#: The settings that carry (or choose) key material; issuer, audience and leeway do not.
JWT_KEY_VARS = frozenset({JWT_SECRET_VAR, JWT_PRIVATE_VAR, JWT_PUBLIC_VAR, JWT_ALGORITHM_VAR})
#: The ConfigMap (or Secret) the public key is mounted from, and the algorithms that verify
#: with a public key (shared/logistics_shared/settings.py jwt_algorithm; EdDSA is shipped).
JWT_PUBLIC_SOURCE = "logistics-jwt-public"
ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "RS256"})
#: What each kind of container may hold of those. Web verifies with the public key only;
#: nobody gets the private key or the HS256 secret, so no pod can mint a token. Workers
#: verify no token and `logistics worker` never reads the keys, so they get none; nor do the
#: migrate Job and the wait-for-schema initContainers, which never build the app.
JWT_ALLOWED: dict[str, frozenset[str]] = {
    "web": frozenset({JWT_ALGORITHM_VAR, JWT_PUBLIC_VAR}),
    "worker": frozenset(),
    "dispatcher": frozenset(),
    "migrate": frozenset(),
    "init": frozenset(),
}


def jwt_vars(ctr: Container, cluster: Cluster) -> set[str]:
    """The key-material JWT settings a container gets: env, and envFrom Secrets and ConfigMaps."""
    held = {name for name in ctr.env if name in JWT_KEY_VARS}
    for ef in ctr.spec.get("envFrom", []):
        if ef.get("secretRef"):
            held |= cluster.secrets.get(ef["secretRef"].get("name", ""), set()) & JWT_KEY_VARS
        if ef.get("configMapRef"):
            held |= cluster.configmap_keys.get(ef["configMapRef"].get("name", ""), set()) & JWT_KEY_VARS
    return held


def public_key_source(ctr: Container) -> tuple[str | None, str | None]:
    """(ConfigMap or Secret name, key) the file LOGISTICS_JWT_PUBLIC_KEY_FILE names is mounted from."""
    path = str(ctr.env.get(JWT_PUBLIC_VAR, {}).get("value") or "")
    volumes = {v.get("name"): v for v in ctr.pod.get("volumes", [])}
    for mount in ctr.spec.get("volumeMounts", []):
        base = str(mount.get("mountPath", "")).rstrip("/")
        if not base or not path.startswith(base + "/") or "subPath" in mount:
            continue
        file = path[len(base) + 1 :]
        volume = volumes.get(mount.get("name"), {})
        source = volume.get("configMap") or volume.get("secret") or {}
        name = source.get("name") or source.get("secretName")
        items = source.get("items")
        if items is None:
            return name, file
        return name, next((i.get("key") for i in items if i.get("path") == file), None)
    return None, None


def check_jwt_keys(problems: Problems, ctr: Container, cluster: Cluster) -> None:
    """Web verifies with a mounted public key; no container holds a private key or the HS256
    secret; what else each kind may hold is JWT_ALLOWED."""
    kind = "init" if ctr.init else str(ctr.component)
    allowed = JWT_ALLOWED.get(kind, frozenset())
    held = jwt_vars(ctr, cluster)
    extra = sorted(held - allowed)
    problems.check(
        not extra,
        f"{ctr.name}: gets {', '.join(extra)}; a {kind} container may get "
        f"{', '.join(sorted(allowed)) or 'no JWT key setting'}",
    )
    if kind == "web":
        algorithm = ctr.env.get(JWT_ALGORITHM_VAR, {}).get("value")
        problems.check(
            algorithm in ASYMMETRIC_ALGORITHMS,
            f"{ctr.name}: {JWT_ALGORITHM_VAR} is {algorithm!r}: web must verify with a public key"
            f" ({' or '.join(sorted(ASYMMETRIC_ALGORITHMS))})",
        )
        problems.check(JWT_PUBLIC_VAR in ctr.env, f"{ctr.name}: no {JWT_PUBLIC_VAR}")
    if JWT_PUBLIC_VAR in held and JWT_PUBLIC_VAR in ctr.env:
        name, key = public_key_source(ctr)
        keys = cluster.configmap_keys.get(name or "", set()) | cluster.secrets.get(name or "", set())
        problems.check(
            name == JWT_PUBLIC_SOURCE and key is not None and key in keys,
            f"{ctr.name}: {JWT_PUBLIC_VAR} is not a key of ConfigMap/Secret {JWT_PUBLIC_SOURCE}"
            f" mounted in the container (found {name}/{key})",
        )


def check_entrypoint(problems: Problems, ctr: Container, _cluster: Cluster) -> None:
    """A container sets ``args`` only: ``command`` would replace the image's entry point, tini,
    which forwards SIGTERM to the process and reaps zombies (PID 1)."""
    problems.check(
        "command" not in ctr.spec,
        f"{ctr.name}: sets command, which replaces the image's entry point (tini); use args",
    )


CONTAINER_CHECKS: tuple[Callable[[Problems, Container, Cluster], None], ...] = (
    check_entrypoint,
    check_container_security,
    check_resources,
    check_config_refs,
    check_secret_refs,
    check_database_secrets,
    check_database_only,
    check_secrets_key,
    check_container_databases,
    check_jwt_keys,
    check_component,
)
#: An initContainer runs no component: no command, port or probe of its own to check.
INIT_CONTAINER_CHECKS = tuple(c for c in CONTAINER_CHECKS if c is not check_component)


def check_workload(problems: Problems, cluster: Cluster, path: str, doc: dict[str, Any]) -> None:
    """A Deployment or a Job: its pod and every container in it."""
    name = f"{path}: {doc['kind']}/{doc['metadata']['name']}"
    labels = doc["metadata"].get("labels", {})
    svc = labels.get("app.kubernetes.io/name")
    if not problems.check(svc in services(), f"{name}: unknown app.kubernetes.io/name {svc}"):
        return
    template = doc["spec"]["template"]
    pod = template["spec"]
    check_selector(problems, name, doc)
    check_pod_security(problems, name, pod)
    inits = [(c, True) for c in pod.get("initContainers", [])]
    for c, init in inits + [(c, False) for c in pod["containers"]]:
        ctr = Container(
            name=f"{name} {'initContainer' if init else 'container'} {c['name']}",
            svc=svc,
            component=labels.get("app.kubernetes.io/component"),
            spec=c,
            pod=pod,
            annotations=template["metadata"].get("annotations", {}),
            init=init,
        )
        cluster.images.setdefault(svc, set()).add(c["image"])
        for check in INIT_CONTAINER_CHECKS if init else CONTAINER_CHECKS:
            check(problems, ctr, cluster)


def check_one_image_per_service(problems: Problems, cluster: Cluster) -> None:
    for svc, imgs in cluster.images.items():
        problems.check(len(imgs) == 1, f"{svc}: web, worker and migrate use different images {sorted(imgs)}")


def check_objects_exist(problems: Problems, cluster: Cluster) -> None:
    for svc in services():
        for kind, name in (
            ("Deployment", f"{svc}-web"),
            ("Deployment", f"{svc}-worker"),
            ("Job", f"{svc}-migrate"),
            ("Service", svc),
            ("ScaledObject", f"{svc}-web"),
            ("ScaledObject", f"{svc}-worker"),
            ("TriggerAuthentication", f"{svc}-worker-broker"),
            ("PodDisruptionBudget", f"{svc}-web"),
            ("PodDisruptionBudget", f"{svc}-worker"),
        ):
            problems.check(
                any(d["metadata"]["name"] == name for _, d in cluster.of_kind(kind)),
                f"k8s: {kind}/{name} is missing",
            )
        dispatcher = [
            ("Deployment", f"{svc}-dispatcher"),
            ("ScaledObject", f"{svc}-dispatcher"),
            ("PodDisruptionBudget", f"{svc}-dispatcher"),
            ("Secret", secrets_key_secret(svc)),
        ]
        for kind, name in dispatcher:
            present = any(d["metadata"]["name"] == name for _, d in cluster.of_kind(kind))
            if svc in webhook_services():
                problems.check(present, f"k8s: {kind}/{name} is missing ({svc} has webhooks)")
            else:
                problems.check(not present, f"k8s: {kind}/{name}: {svc} has no webhooks")
    if webhook_services():
        problems.check(
            any(
                (m["spec"].get("selector", {}).get("matchLabels") or {}).get("app.kubernetes.io/component")
                == "dispatcher"
                for _, m in cluster.of_kind("PodMonitor")
            ),
            "k8s: no PodMonitor scrapes the dispatchers (app.kubernetes.io/component: dispatcher)",
        )


def check_service_targets(problems: Problems, cluster: Cluster) -> None:
    """Each Service selects one Deployment, and its target ports are that Deployment's."""
    for path, s in cluster.of_kind("Service"):
        targets = [
            d for d in cluster.deployments.values() if labels_match(s["spec"]["selector"], pod_labels(d))
        ]
        if not problems.check(
            len(targets) == 1, f"{path}: Service {s['metadata']['name']} selects {len(targets)} Deployments"
        ):
            continue
        names = {
            p.get("name")
            for c in targets[0]["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for p in s["spec"]["ports"]:
            problems.check(
                p["targetPort"] in names, f"{path}: targetPort {p['targetPort']} is not a container port"
            )


def check_autoscalers(problems: Problems, cluster: Cluster) -> None:
    """HPAs and KEDA ScaledObjects (which create an HPA) own their target's replicas."""
    scalers = [
        (path, h["spec"]["scaleTargetRef"]["name"], h["spec"].get("minReplicas", 1))
        for path, h in cluster.of_kind("HorizontalPodAutoscaler")
    ] + [
        (path, so["spec"]["scaleTargetRef"]["name"], so["spec"].get("minReplicaCount", 0))
        for path, so in cluster.of_kind("ScaledObject")
    ]
    for path, ref, minimum in scalers:
        problems.check(ref in cluster.deployments, f"{path}: autoscaler targets unknown Deployment {ref}")
        problems.check(
            "replicas" not in cluster.deployments.get(ref, {}).get("spec", {}),
            f"{path}: {ref} sets replicas although an autoscaler owns them",
        )
        # Workers may run one pod (a relay must always run); web needs two for drains.
        floor = 2 if ref.endswith("-web") else 1
        problems.check(minimum >= floor, f"{path}: {ref} min replicas < {floor}")


def check_disruption_budgets(problems: Problems, cluster: Cluster) -> None:
    for path, p in cluster.of_kind("PodDisruptionBudget"):
        sel = p["spec"]["selector"]["matchLabels"]
        problems.check(
            any(labels_match(sel, pod_labels(d)) for d in cluster.deployments.values()),
            f"{path}: PDB {p['metadata']['name']} selects no Deployment",
        )
        # minAvailable: 1 lets a drain evict all but one replica at once; one at a
        # time keeps capacity while the autoscaler's replicas move between nodes.
        problems.check(
            p["spec"].get("maxUnavailable") == 1 and "minAvailable" not in p["spec"],
            f"{path}: PDB {p['metadata']['name']} must set maxUnavailable: 1 (and no minAvailable)",
        )


#: PostgreSQL's max_connections on the Kubernetes database server(s), and the
#: connections kept back for superusers (superuser_reserved_connections = 3),
#: psql sessions, backups and the exporter. Raise both with the server's setting.
POSTGRES_MAX_CONNECTIONS = 500
POSTGRES_RESERVE = 20
#: Settings defaults (shared/logistics_shared/settings.py) when the ConfigMap sets none.
DEFAULT_POOL_SIZE = 10
DEFAULT_MAX_OVERFLOW = 10


@dataclass(frozen=True)
class BudgetRow:
    """One workload's worst case on one database server."""

    server: str
    workload: str
    replicas: int
    processes: int
    per_process: int

    @property
    def connections(self) -> int:
        return self.replicas * self.processes * self.per_process


def budget_overruns(rows: list[BudgetRow], limit: int, reserve: int) -> dict[str, int]:
    """The servers whose summed worst case exceeds limit - reserve, with that sum."""
    totals: dict[str, int] = {}
    for r in rows:
        totals[r.server] = totals.get(r.server, 0) + r.connections
    return {server: total for server, total in totals.items() if total > limit - reserve}


def container_value(deployment: dict[str, Any], name: str) -> str | None:
    """The literal ``value`` a Deployment's (first) container sets for ``name``, if any: it
    overrides the ConfigMap's (``env`` wins over ``envFrom``)."""
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    for e in containers[0].get("env", []) if containers else []:
        if e.get("name") == name and "value" in e:
            return str(e["value"])
    return None


def budget_rows(cluster: Cluster) -> list[BudgetRow]:
    data: dict[str, str] = {}
    for _, c in cluster.of_kind("ConfigMap"):
        data |= c.get("data", {})

    def per_pool(workload: str) -> int:
        deployment = cluster.deployments.get(workload, {})
        size = container_value(deployment, "LOGISTICS_DB_POOL_SIZE")
        overflow = container_value(deployment, "LOGISTICS_DB_MAX_OVERFLOW")
        if size is None:
            size = str(data.get("LOGISTICS_DB_POOL_SIZE", DEFAULT_POOL_SIZE))
        if overflow is None:
            overflow = str(data.get("LOGISTICS_DB_MAX_OVERFLOW", DEFAULT_MAX_OVERFLOW))
        return int(size) + int(overflow)

    # A web process has two engines, each with a pool of its own: writes, and the autocommit
    # read engine (shared/logistics_shared/db.py make_read_engine); both keep up to pool_size
    # idle connections, so a process that served both holds connections in both (15 backends
    # were seen for one process with pool 8 + overflow 2, tests/ops/test_connection_budget.py).
    # A worker writes through one pool and holds the relay's LISTEN connection besides
    # (bus/relay.py _Waiter). A webhook dispatcher, likewise: the service's engine, with the
    # pool its container sets, and one LISTEN connection for the fan-out's NOTIFY
    # (webhooks/dispatcher.py _listen).
    per_process: dict[str, Callable[[str], int]] = {
        "web": lambda workload: 2 * per_pool(workload),
        "worker": lambda workload: per_pool(workload) + 1,
        "dispatcher": lambda workload: per_pool(workload) + 1,
    }
    # `logistics serve` runs gunicorn with LOGISTICS_WEB_WORKERS processes; 0 (the
    # default) means one per core of the node, which no budget can bound.
    processes = int(data.get("LOGISTICS_WEB_WORKERS", "0"))
    urls: dict[str, str] = {}
    for _, sec in cluster.of_kind("Secret"):
        urls |= sec.get("stringData", {})
    maxima = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
        for _, h in cluster.of_kind("HorizontalPodAutoscaler")
    }
    maxima |= {
        so["spec"]["scaleTargetRef"]["name"]: so["spec"]["maxReplicaCount"]
        for _, so in cluster.of_kind("ScaledObject")
    }
    rows = []
    for svc in services():
        url = urllib.parse.urlsplit(urls.get(f"LOGISTICS_{svc.upper()}_DATABASE_URL", ""))
        server = f"{url.hostname}:{url.port or 5432}"
        kinds = [("web", processes), ("worker", 1)]
        if f"{svc}-dispatcher" in cluster.deployments:
            kinds.append(("dispatcher", 1))
        for kind, procs in kinds:
            name = f"{svc}-{kind}"
            replicas = maxima.get(name, cluster.deployments.get(name, {}).get("spec", {}).get("replicas", 1))
            rows.append(BudgetRow(server, name, replicas, procs, per_process[kind](name)))
        # The migrate Job holds one connection while it runs (alembic).
        rows.append(BudgetRow(server, f"{svc}-migrate", 1, 1, 1))
    return rows


def check_connection_budget(problems: Problems, cluster: Cluster) -> None:
    """Max replicas x processes x (pool + overflow) must fit each server's max_connections."""
    rows = budget_rows(cluster)
    problems.check(
        all(r.processes > 0 for r in rows),
        "k8s: the ConfigMap must set LOGISTICS_WEB_WORKERS > 0 (0 forks one gunicorn process per node core)",
    )
    for server, total in budget_overruns(rows, POSTGRES_MAX_CONNECTIONS, POSTGRES_RESERVE).items():
        detail = ", ".join(f"{r.workload} {r.connections}" for r in rows if r.server == server)
        problems.check(
            False,
            f"k8s: {server} needs up to {total} connections at max scale ({detail}), more than"
            f" max_connections {POSTGRES_MAX_CONNECTIONS} - reserve {POSTGRES_RESERVE}",
        )


def check_trigger_auth_secrets(problems: Problems, cluster: Cluster) -> None:
    """KEDA TriggerAuthentications read Secrets and keys that secret.example.yaml defines."""
    for path, ta in cluster.of_kind("TriggerAuthentication"):
        for ref in ta["spec"].get("secretTargetRef", []):
            problems.check(
                ref.get("key") in cluster.secrets.get(ref.get("name"), set()),
                f"{path}: TriggerAuthentication {ta['metadata']['name']} reads Secret"
                f" {ref.get('name')} key {ref.get('key')}, not in secret.example.yaml",
            )


#: Redis: its port, and the Secret with its URL (secret.example.yaml).
REDIS_PORT = 6379
REDIS_SECRET_NAME = "logistics-redis"  # noqa: S105 - a Secret object's name, no value


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions; {} selects every pod)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if not {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(op, False):
            return False
    return True


def egress_allows(policies: list[dict[str, Any]], labels: dict[str, str], port: int) -> bool:
    """Whether the NetworkPolicies let a pod with ``labels`` out to TCP ``port`` (anywhere).

    Policies add up: one that selects the pod and has an egress rule with no ports, or with
    the port (TCP, the default protocol; a named port never names a remote one), allows it.
    """
    for pol in policies:
        spec = pol.get("spec", {})
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
        if "Egress" not in types or not selector_matches(spec.get("podSelector") or {}, labels):
            continue
        for rule in spec.get("egress") or []:
            ports = rule.get("ports")
            if not ports or any(
                p.get("protocol", "TCP") == "TCP"
                and (
                    "port" not in p
                    or p["port"] == port
                    or (isinstance(p["port"], int) and p["port"] <= port <= p.get("endPort", p["port"]))
                )
                for p in ports
            ):
                return True
    return False


def pod_secret_names(pod: dict[str, Any]) -> set[str]:
    """Every Secret a pod's containers (initContainers too) read through env or envFrom."""
    names = set()
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref.get("name", ""))
        for ef in c.get("envFrom", []):
            if ef.get("secretRef"):
                names.add(ef["secretRef"].get("name", ""))
    for v in pod.get("volumes", []):
        if v.get("secret"):
            names.add(v["secret"].get("secretName", ""))
    return names


def check_redis_egress(problems: Problems, cluster: Cluster) -> None:
    """A pod may reach Redis exactly when one of its containers has the Redis Secret."""
    policies = [doc for _, doc in cluster.of_kind("NetworkPolicy")]
    for path, doc in cluster.of_kind("Deployment") + cluster.of_kind("Job"):
        template = doc["spec"]["template"]
        labels = template.get("metadata", {}).get("labels", {})
        uses = REDIS_SECRET_NAME in pod_secret_names(template["spec"])
        allowed = egress_allows(policies, labels, REDIS_PORT)
        name = f"{path}: {doc['kind']}/{doc['metadata']['name']}"
        problems.check(
            allowed == uses,
            f"{name}: egress to Redis (:{REDIS_PORT}) is {'allowed' if allowed else 'denied'} but its"
            f" containers {'get' if uses else 'do not get'} Secret {REDIS_SECRET_NAME}",
        )


def check_web_rate_limits(problems: Problems, cluster: Cluster) -> None:
    """Every web Deployment counts rate limits in Redis (its replicas share one budget per
    caller), and the shared ConfigMap names the proxies whose X-Forwarded-For it believes."""
    for path, doc in cluster.of_kind("Deployment"):
        template = doc["spec"]["template"]
        if template.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component") != "web":
            continue
        names = {
            e["name"]
            for c in template["spec"].get("containers", [])
            for e in c.get("env", [])
            if e.get("valueFrom", {}).get("secretKeyRef")
        }
        problems.check(
            bool(names & {REDIS_VAR, RATE_LIMIT_STORAGE_VAR}),
            f"{path}: Deployment/{doc['metadata']['name']}: no {REDIS_VAR} from Secret {REDIS_SECRET_NAME}:"
            " each replica would count its own rate-limit budget",
        )
    config = {c["metadata"]["name"]: c.get("data") or {} for _, c in cluster.of_kind("ConfigMap")}
    value = config.get("logistics-config", {}).get(FORWARDED_VAR)
    problems.check(
        value is not None and trusted_networks(str(value)) is not None,
        f"ConfigMap logistics-config: {FORWARDED_VAR} is {value!r}; expected the ingress controller's"
        " addresses or network (never *: any client could choose the address it is counted by)",
    )


#: Where a webhook dispatcher must never connect: private, shared (CGNAT), link-local and
#: metadata ranges (the code refuses them too, logistics_shared/webhooks/addresses.py).
DISPATCHER_EXCEPT = frozenset(
    {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"}
)
#: The ports a dispatcher may reach the internet on (80 only with LOGISTICS_WEBHOOK_ALLOW_HTTP).
WEBHOOK_PORTS = frozenset({443, 80})
POSTGRES_PORT = 5432


def rule_ports(rule: dict[str, Any]) -> set[Any] | None:
    """The TCP ports of a NetworkPolicy rule (None: every port; endPort ranges expanded)."""
    ports = rule.get("ports")
    if not ports:
        return None
    found: set[Any] = set()
    for p in ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        if "port" not in p:
            return None
        if isinstance(p["port"], int) and "endPort" in p:
            found |= set(range(p["port"], p["endPort"] + 1))
        else:
            found.add(p["port"])
    return found


def is_dns_rule(rule: dict[str, Any]) -> bool:
    """An egress rule to kube-dns on port 53 only (the policy every pod gets)."""
    ports = rule.get("ports") or []
    to = rule.get("to") or []
    return (
        bool(ports)
        and all(p.get("port") == 53 and "endPort" not in p for p in ports)
        and bool(to)
        and all(
            "ipBlock" not in peer and "podSelector" in peer and "namespaceSelector" in peer for peer in to
        )
    )


def public_only(rule: dict[str, Any]) -> bool:
    """The rule's peers are ipBlocks of 0.0.0.0/0 that except every range in DISPATCHER_EXCEPT."""
    to = rule.get("to") or []
    return bool(to) and all(
        set(peer) == {"ipBlock"}
        and peer["ipBlock"].get("cidr") == "0.0.0.0/0"
        and set(peer["ipBlock"].get("except") or []) >= DISPATCHER_EXCEPT
        for peer in to
    )


def dispatcher_network_problems(policies: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """What the NetworkPolicies selecting a dispatcher pod allow beyond its needs: egress to
    kube-dns, to PostgreSQL (5432), and to public addresses on 443 (80) only; ingress to its
    health port from the monitoring namespace only."""
    found, web_out = [], False
    for pol in policies:
        spec = pol.get("spec", {})
        if not selector_matches(spec.get("podSelector") or {}, labels):
            continue
        name = pol.get("metadata", {}).get("name")
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
        if "Egress" in types:
            for i, rule in enumerate(spec.get("egress") or []):
                ports = rule_ports(rule)
                if is_dns_rule(rule):
                    continue
                if ports == {POSTGRES_PORT}:
                    continue
                if ports is not None and ports <= WEBHOOK_PORTS and public_only(rule):
                    web_out = web_out or 443 in ports
                    continue
                where = sorted(ports) if ports else "every port"
                found.append(
                    f"NetworkPolicy {name} egress[{i}] lets it out to {where}"
                    f" of {rule.get('to') or 'anywhere'}: only DNS, {POSTGRES_PORT} and 443/80 to"
                    f" 0.0.0.0/0 except {', '.join(sorted(DISPATCHER_EXCEPT))}"
                )
        if "Ingress" in types:
            for i, rule in enumerate(spec.get("ingress") or []):
                peers = rule.get("from") or []
                monitoring = bool(peers) and all(
                    set(peer) == {"namespaceSelector"}
                    and (peer["namespaceSelector"].get("matchLabels") or {}).get(
                        "kubernetes.io/metadata.name"
                    )
                    == "monitoring"
                    for peer in peers
                )
                if not (monitoring and rule_ports(rule) == {"health"}):
                    found.append(
                        f"NetworkPolicy {name} ingress[{i}] admits {peers or 'anyone'} on"
                        f" {rule.get('ports') or 'every port'}: only the monitoring namespace, port health"
                    )
    if not web_out:
        found.append(
            "no NetworkPolicy lets it out to 443 on 0.0.0.0/0 except the private ranges: no webhook gets out"
        )
    return found


def check_dispatcher_network(problems: Problems, cluster: Cluster) -> None:
    policies = [doc for _, doc in cluster.of_kind("NetworkPolicy")]
    for path, doc in cluster.of_kind("Deployment"):
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "dispatcher":
            continue
        labels = doc["spec"]["template"].get("metadata", {}).get("labels", {})
        for problem in dispatcher_network_problems(policies, labels):
            problems.append(f"{path}: Deployment/{doc['metadata']['name']}: {problem}")


def check_kustomization_kind(problems: Problems, kustomization: dict[str, Any]) -> None:
    problems.check(
        kustomization.get("kind") == "Kustomization"
        and str(kustomization.get("apiVersion", "")).startswith("kustomize.config.k8s.io/"),
        f"{rel(KUSTOMIZATION)}: not a kustomize.config.k8s.io Kustomization",
    )


def check_kustomization_resources(
    problems: Problems, kustomization: dict[str, Any], base: pathlib.Path, manifests: list[str]
) -> None:
    """Every listed file exists; every manifest (but the example Secret) is listed, once."""
    listed = [str(r) for r in kustomization.get("resources") or []]
    for r in listed:
        problems.check((base / r).is_file(), f"{rel(KUSTOMIZATION)}: resource {r} does not exist")
        problems.check(listed.count(r) == 1, f"{rel(KUSTOMIZATION)}: resource {r} listed twice")
        problems.check(r not in NOT_APPLIED, f"{rel(KUSTOMIZATION)}: lists {r}, which must not be applied")
    for m in manifests:
        if m not in NOT_APPLIED:
            problems.check(m in listed, f"{rel(KUSTOMIZATION)}: manifest {m} is not listed in resources")


def image_name(image: str) -> str:
    """An image reference without its tag or digest."""
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def check_kustomization_images(problems: Problems, kustomization: dict[str, Any], cluster: Cluster) -> None:
    """One images: entry per service image (newName and newTag or digest); digests are sha256."""
    entries = {str(i.get("name")): i for i in kustomization.get("images") or []}
    for svc, imgs in sorted(cluster.images.items()):
        for name in sorted({image_name(i) for i in imgs}):
            entry = entries.get(name)
            if not problems.check(
                entry is not None, f"{rel(KUSTOMIZATION)}: no images: entry for {name} ({svc})"
            ):
                continue
            assert entry is not None
            problems.check(
                bool(entry.get("newName")) and bool(entry.get("newTag") or entry.get("digest")),
                f"{rel(KUSTOMIZATION)}: image {name} needs newName and newTag or digest",
            )
    for name, entry in entries.items():
        digest = entry.get("digest")
        problems.check(
            digest is None or DIGEST.fullmatch(str(digest)) is not None,
            f"{rel(KUSTOMIZATION)}: image {name} digest {digest} is not sha256:<64 hex digits>",
        )


def check_kustomization(problems: Problems, cluster: Cluster) -> None:
    if not problems.check(KUSTOMIZATION.is_file(), f"{rel(KUSTOMIZATION)} does not exist"):
        return
    kustomization = load(KUSTOMIZATION)
    if not problems.check(isinstance(kustomization, dict), f"{rel(KUSTOMIZATION)}: not a mapping"):
        return
    check_kustomization_kind(problems, kustomization)
    manifests = [str(p.relative_to(K8S)) for p in k8s_manifests()]
    check_kustomization_resources(problems, kustomization, K8S, manifests)
    check_kustomization_images(problems, kustomization, cluster)


def check_ingress_backends(problems: Problems, cluster: Cluster) -> None:
    for path, ing in cluster.of_kind("Ingress"):
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                b = p["backend"]["service"]
                s = cluster.services.get(b["name"])
                if problems.check(s is not None, f"{path}: backend Service {b['name']} is not defined"):
                    assert s is not None
                    problems.check(
                        b["port"].get("name") in {sp.get("name") for sp in s["spec"]["ports"]},
                        f"{path}: Service {b['name']} has no port {b['port']}",
                    )


def cmd_k8s() -> int:
    problems = Problems()
    cluster = Cluster(list(k8s_documents()))
    check_namespaces(problems, cluster)
    for path, doc in cluster.of_kind("Deployment") + cluster.of_kind("Job"):
        check_workload(problems, cluster, path, doc)
    check_one_image_per_service(problems, cluster)
    check_objects_exist(problems, cluster)
    check_service_targets(problems, cluster)
    check_autoscalers(problems, cluster)
    check_disruption_budgets(problems, cluster)
    check_connection_budget(problems, cluster)
    check_ingress_backends(problems, cluster)
    check_trigger_auth_secrets(problems, cluster)
    check_redis_egress(problems, cluster)
    check_web_rate_limits(problems, cluster)
    check_dispatcher_network(problems, cluster)
    check_kustomization(problems, cluster)
    return finish(
        problems,
        f"{len(cluster.docs)} Kubernetes objects reference each other consistently; "
        "kustomization.yaml lists every manifest and image",
    )


# --------------------------------------------------------------------------- crds

CRD_SCHEMAS = K8S / "crd-schemas"
#: The vendored schema (deploy/k8s/crd-schemas/README.md) of each custom kind, by
#: (apiVersion, kind).
CRD_KINDS: dict[tuple[str, str], str] = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_v1_podmonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_v1_prometheusrule.json",
}
#: API groups whose objects are custom resources: every one needs a vendored schema.
CRD_GROUPS = frozenset({"keda.sh", "monitoring.coreos.com"})


def structural(node: Any) -> Any:
    """``node`` with every object that lists ``properties`` closed (``additionalProperties:
    false``), unless it says ``x-kubernetes-preserve-unknown-fields``: the API server prunes
    (or, with strict field validation, refuses) a field its structural schema does not name,
    so a misspelt one must fail here rather than vanish there."""
    if isinstance(node, list):
        return [structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: structural(v) for k, v in node.items()}
    if isinstance(out.get("pattern"), str):
        # Go's regexp takes inline flags anywhere ("^(?i)(abort|warn)?$", PrometheusRule's
        # partial_response_strategy); Python's re only at the start: the same expression.
        out["pattern"] = re.sub(r"^\^\(\?([aiLmsux]+)\)", r"(?\1)^", out["pattern"])
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(api_version: str, kind: str) -> Any:
    """A jsonschema validator for one custom kind, or None when no schema is vendored."""
    import jsonschema

    name = CRD_KINDS.get((api_version, kind))
    if name is None:
        return None
    schema = structural(json.loads((CRD_SCHEMAS / name).read_text()))
    return jsonschema.Draft7Validator(schema)


def is_custom(doc: dict[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).split("/")[0] in CRD_GROUPS


def field_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def crd_problems(doc: dict[str, Any]) -> list[str]:
    """What is wrong with one custom object against its vendored schema, each naming the field."""
    api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
    validator = crd_validator(api_version, kind)
    if validator is None:
        return [f"{api_version} {kind}: no schema vendored in {rel(CRD_SCHEMAS)} (see its README)"]
    found = []
    for err in validator.iter_errors(doc):
        where = list(err.absolute_path)
        if err.validator == "additionalProperties" and err.validator_value is False:
            known = set(err.schema.get("properties", {}))
            for extra in sorted(set(err.instance) - known):
                found.append(f"{field_path([*where, extra])}: unknown field")
        elif err.validator == "required":
            missing = [m for m in err.validator_value if m not in err.instance]
            for m in missing:
                found.append(f"{field_path([*where, m])}: required field missing")
        else:
            found.append(f"{field_path(where) or '(object)'}: {err.message}")
    return sorted(found)


def cmd_crds() -> int:
    problems = Problems()
    counts: dict[str, int] = {}
    for path, doc in k8s_documents():
        if not is_custom(doc):
            continue
        counts[doc["kind"]] = counts.get(doc["kind"], 0) + 1
        name = f"{path}: {doc['kind']}/{doc.get('metadata', {}).get('name')}"
        for problem in crd_problems(doc):
            problems.append(f"{name}: {problem}")
    for _, kind in CRD_KINDS:
        problems.check(counts.get(kind, 0) > 0, f"k8s: no {kind} validated (none found)")
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    return finish(problems, f"{summary} valid against the vendored CRD schemas ({rel(CRD_SCHEMAS)})")


def main(argv: list[str]) -> int:
    commands = {
        "yaml": cmd_yaml,
        "dockerfiles": cmd_dockerfiles,
        "compose": cmd_compose,
        "k8s": cmd_k8s,
        "crds": cmd_crds,
    }
    if len(argv) == 4 and argv[1] == "lb-env":
        return cmd_lb_env(argv[2], argv[3])
    if len(argv) != 2 or argv[1] not in commands:
        print(
            f"usage: {argv[0]} {{{'|'.join(commands)}}}\n"
            f"       {argv[0]} lb-env {{{'|'.join(SHAPES)}}} {{{'|'.join(TEMPLATES)}}}",
            file=sys.stderr,
        )
        return 2
    return commands[argv[1]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv))

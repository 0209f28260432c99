"""Static consistency checks for deploy/ and the service Dockerfiles.

Used by deploy/validate.sh; needs only the standard library and PyYAML.
Each sub-command prints a one-line summary and exits 0, or prints every
problem it found and exits 1:

    python deploy/checks.py yaml          every YAML file under deploy/ parses
    python deploy/checks.py dockerfiles   services/*/Dockerfile against the conventions
    python deploy/checks.py compose       docker-compose.yml, nginx, haproxy, prometheus agree
    python deploy/checks.py k8s           the Kubernetes manifests agree with each other

These catch what the linters cannot: a COPY of a path .dockerignore drops,
an nginx upstream naming a compose service that does not exist, a probe on
the wrong port, an Ingress route missing from nginx, a Secret key that the
example Secret does not define.
"""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import sys

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
ROOT = DEPLOY.parent
SERVICES = {"inventory": 6541, "shipping": 6542, "support": 6543}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what containers must listen on
WORKER_PORTS = {svc: port + 100 for svc, port in SERVICES.items()}
UID = 10001  # the image's "logistics" user; k8s runAsUser must match
NAMESPACE = "logistics"


class Problems(list):
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


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    path = ROOT / ".dockerignore"
    patterns = []
    if not path.exists():
        return patterns
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = line[1:] if negate else line
        pat = pat.strip("/")
        regex, i = "", 0
        while i < len(pat):
            if pat.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pat.startswith("**", i):
                regex += ".*"
                i += 2
            elif pat[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pat[i] == "?":
                regex += "[^/]"
                i += 1
            elif pat[i] == "[":
                j = pat.index("]", i)
                regex += pat[i : j + 1]
                i = j + 1
            else:
                regex += re.escape(pat[i])
                i += 1
        patterns.append((negate, re.compile(regex + "$")))
    return patterns


def dockerignored(path: str, patterns) -> bool:
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


def cmd_dockerfiles() -> int:
    problems = Problems()
    ignore = dockerignore_patterns()
    problems.check(bool(ignore), ".dockerignore is missing or empty at the repository root")
    for needed in (".git", ".venv", "var", "tests", "bench"):
        problems.check(dockerignored(needed, ignore), f".dockerignore does not exclude {needed}")
    for svc, port in SERVICES.items():
        path = ROOT / "services" / svc / "Dockerfile"
        name = rel(path)
        if not problems.check(path.exists(), f"{name} does not exist"):
            continue
        ins = dockerfile_instructions(path.read_text())
        froms = [a for i, a in ins if i == "FROM"]
        problems.check(len(froms) >= 2, f"{name}: not a multi-stage build")
        base_text = " ".join(a for i, a in ins if i in {"FROM", "ARG"})
        problems.check("python:3.11-slim" in base_text, f"{name}: base image is not python:3.11-slim")
        allowed = {"shared", f"services/{svc}"}
        for i, args in ins:
            if i not in {"COPY", "ADD"}:
                continue
            words = exec_form(args) or shlex.split(args)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            if any(f.startswith("--from") for f in flags):
                continue
            for src in paths[:-1]:
                clean = src.strip("/").removeprefix("./")
                problems.check((ROOT / clean).exists(), f"{name}: COPY source {src} does not exist")
                problems.check(
                    not dockerignored(clean, ignore),
                    f"{name}: COPY source {src} is excluded by .dockerignore",
                )
                problems.check(
                    clean in allowed,
                    f"{name}: COPY {src}: the image must only contain shared/ and services/{svc}/",
                )
        runs = " ".join(a for i, a in ins if i == "RUN")
        pip = re.search(r"pip install ([^&;|]*)", runs)
        if problems.check(pip is not None, f"{name}: no pip install"):
            pip_args = pip.group(1).split()
            problems.check("-e" not in pip_args and "--editable" not in pip_args, f"{name}: editable install")
            problems.check("./shared" in pip_args, f"{name}: pip install does not install ./shared")
            problems.check(
                f"./services/{svc}" in pip_args, f"{name}: pip install does not install ./services/{svc}"
            )
            problems.check(
                not any("[" in a for a in pip_args),
                f"{name}: pip install with extras (dev tools?) {pip_args}",
            )
        problems.check(f"--uid {UID}" in runs, f"{name}: the user is not created with uid {UID}")
        users = [a for i, a in ins if i == "USER"]
        problems.check(
            bool(users) and users[-1].split(":")[0] not in {"root", "0"},
            f"{name}: final USER is missing or root",
        )
        exposes = [a for i, a in ins if i == "EXPOSE"]
        problems.check(exposes == [str(port)], f"{name}: EXPOSE {exposes} is not [{port}]")
        checks = [a for i, a in ins if i == "HEALTHCHECK"]
        problems.check(
            bool(checks) and "urllib" in checks[-1] and f":{port}/healthz" in checks[-1],
            f"{name}: HEALTHCHECK does not fetch :{port}/healthz with urllib",
        )
        cmds = [a for i, a in ins if i == "CMD"]
        expected = ["logistics", "serve", svc, "--host", ALL_INTERFACES, "--port", str(port)]
        problems.check(
            bool(cmds) and exec_form(cmds[-1]) == expected,
            f"{name}: CMD is not {' '.join(expected)} (exec form)",
        )
    return finish(
        problems,
        f"{len(SERVICES)} Dockerfiles: COPY sources exist and are not dockerignored; ports, user, CMD agree",
    )


# ------------------------------------------------------------------------ compose


def load(path: pathlib.Path):
    with path.open() as fh:
        return yaml.safe_load(fh)


#: (service, /v1 resource) served by a service but routed to another one at the front
#: door: support's read model of shipments is /support/v1/shipments (shipping owns /v1/shipments).
PREFIX_ONLY = {("support", "shipments")}


def served_prefixes() -> dict[str, set[str]]:
    """The first path segment of every /v1 route each service declares (routes*.py)."""
    found: dict[str, set[str]] = {}
    for path in sorted(ROOT.glob("services/*/*/routes*.py")):
        svc = path.parent.parent.name
        for prefix in re.findall(r'add_route\(\s*"\w+",\s*"/v1/([a-z-]+)', path.read_text()):
            found.setdefault(svc, set()).add(prefix)
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


def ingress_routes(docs) -> dict[str, set[str]]:
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


def cmd_compose() -> int:
    problems = Problems()
    compose_path = DEPLOY / "docker-compose.yml"
    compose = load(compose_path)
    services = compose.get("services", {})

    def exposed(name: str) -> set[int]:
        svc = services.get(name, {})
        ports = {int(str(p).split("/")[0]) for p in svc.get("expose", [])}
        for p in svc.get("ports", []):
            ports.add(int(str(p).split(":")[-1].split("/")[0]))
        return ports

    for name, svc in services.items():
        problems.check("image" in svc, f"compose {name}: no image")
        build = svc.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            problems.check(context == ROOT, f"compose {name}: build context is not the repository root")
            problems.check(
                (context / build["dockerfile"]).exists(),
                f"compose {name}: {build['dockerfile']} does not exist",
            )
        for vol in svc.get("volumes", []):
            src = str(vol).split(":")[0]
            if src.startswith("."):
                problems.check((DEPLOY / src).exists(), f"compose {name}: volume source {src} does not exist")
        for dep in svc.get("depends_on", {}) or {}:
            problems.check(dep in services, f"compose {name}: depends_on unknown service {dep}")

    for svc, port in SERVICES.items():
        db_var = f"LOGISTICS_{svc.upper()}_DATABASE_URL"
        for role in ("migrate", "web", "worker"):
            name = f"{svc}-{role}"
            if not problems.check(name in services, f"compose: service {name} is missing"):
                continue
            env = services[name].get("environment", {})
            problems.check(db_var in env, f"compose {name}: {db_var} not set")
            for other in SERVICES:
                if other != svc:
                    problems.check(
                        f"LOGISTICS_{other.upper()}_DATABASE_URL" not in env,
                        f"compose {name}: gets the database URL of {other}",
                    )
        migrate_cmd = services.get(f"{svc}-migrate", {}).get("command")
        problems.check(
            migrate_cmd == ["logistics", "migrate", svc], f"compose {svc}-migrate: command {migrate_cmd}"
        )
        worker = services.get(f"{svc}-worker", {})
        problems.check(
            worker.get("command") == ["logistics", "worker", svc, "--health-host", ALL_INTERFACES],
            f"compose {svc}-worker: command {worker.get('command')}",
        )
        hc = " ".join(worker.get("healthcheck", {}).get("test", []))
        problems.check(
            f":{WORKER_PORTS[svc]}/" in hc, f"compose {svc}-worker: healthcheck not on :{WORKER_PORTS[svc]}"
        )
        problems.check(port in exposed(f"{svc}-web"), f"compose {svc}-web: does not expose {port}")
        problems.check(
            WORKER_PORTS[svc] in exposed(f"{svc}-worker"),
            f"compose {svc}-worker: does not expose {WORKER_PORTS[svc]}",
        )
    replicas = services.get("inventory-web", {}).get("deploy", {}).get("replicas", 1)
    problems.check(replicas >= 2, "compose inventory-web: fewer than 2 replicas")

    # The balancers and Prometheus must name services and ports that compose has.
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text()
    haproxy = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    targets = [("nginx", h, int(p)) for h, p in re.findall(r"^\s*server ([\w.-]+):(\d+)", nginx, re.M)]
    targets += [
        ("haproxy", h, int(p))
        for h, p in re.findall(r"^\s*server-template \S+ \d+ ([\w.-]+):(\d+)", haproxy, re.M)
    ]
    prom = load(DEPLOY / "prometheus" / "prometheus.yml")
    for job in prom.get("scrape_configs", []):
        for sd in job.get("dns_sd_configs", []):
            targets += [(f"prometheus {job['job_name']}", n, sd["port"]) for n in sd["names"]]
        for sc in job.get("static_configs", []):
            for t in sc["targets"]:
                host, _, p = t.partition(":")
                if host != "localhost":
                    targets.append((f"prometheus {job['job_name']}", host, int(p)))
    problems.check(len(targets) >= 9, f"only {len(targets)} upstream/scrape targets found")
    for who, host, p in targets:
        if problems.check(host in services, f"{who}: {host} is not a compose service"):
            if host in {"rabbitmq", "haproxy"}:
                continue  # ports of the stock images, not declared in compose
            problems.check(p in exposed(host), f"{who}: {host} does not expose port {p}")
    problems.check("client_max_body_size 1m;" in nginx, "nginx: client_max_body_size is not 1m")
    problems.check("$request_id" in nginx and "X-Request-ID" in nginx, "nginx: no X-Request-ID handling")
    problems.check("X-Forwarded-For" in nginx, "nginx: no X-Forwarded-For")
    problems.check("gt 1048576" in haproxy, "haproxy: no 1 MiB body limit")
    problems.check("uri /readyz" in haproxy, "haproxy: health checks are not on /readyz")
    problems.check("option forwardfor" in haproxy, "haproxy: no X-Forwarded-For")

    # The three public entry points route the same resources to the same services.
    k8s_docs = [
        d for p in sorted((DEPLOY / "k8s").rglob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d
    ]
    routes = {
        "nginx": nginx_routes(nginx),
        "haproxy": haproxy_routes(haproxy),
        "ingress": ingress_routes(k8s_docs),
    }
    problems.check(set(routes["nginx"]) == set(SERVICES), f"nginx routes only {sorted(routes['nginx'])}")
    for who, table in routes.items():
        for svc in sorted(set(table) | set(routes["nginx"])):
            mine, ref = table.get(svc, set()), routes["nginx"].get(svc, set())
            problems.check(
                mine == ref,
                f"{who} routes to {svc}: missing {sorted(ref - mine)}, extra {sorted(mine - ref)}"
                " (compared with nginx)",
            )
    # Every /v1/<resource> a service serves reaches it through the front door, unless
    # another service owns that prefix (then it is only under /<svc>/, listed here).
    routed = {prefix: svc for svc, prefixes in routes["nginx"].items() for prefix in prefixes}
    for svc, prefixes in sorted(served_prefixes().items()):
        for prefix in sorted(prefixes - routes["nginx"].get(svc, set())):
            problems.check(
                (svc, prefix) in PREFIX_ONLY and routed.get(prefix) not in (None, svc),
                f"{svc} serves /v1/{prefix} but nginx does not route it there",
            )
    n_routes = sum(len(v) for v in routes["nginx"].values())
    return finish(
        problems,
        f"{len(services)} compose services; {len(targets)} nginx/haproxy/prometheus targets resolve to them; "
        f"nginx, haproxy and ingress route the same {n_routes} prefixes",
    )


# ---------------------------------------------------------------------------- k8s


def labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def cmd_k8s() -> int:
    problems = Problems()
    docs = []
    for path in sorted((DEPLOY / "k8s").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((rel(path), doc))
    by_kind: dict[str, list] = {}
    for path, doc in docs:
        by_kind.setdefault(doc["kind"], []).append((path, doc))
        if doc["kind"] != "Namespace":
            problems.check(
                doc["metadata"].get("namespace") == NAMESPACE,
                f"{path}: {doc['kind']}/{doc['metadata']['name']} is not in namespace {NAMESPACE}",
            )

    secret_keys = set()
    for _, s in by_kind.get("Secret", []):
        secret_keys |= set(s.get("stringData", {})) | set(s.get("data", {}))
    configmaps = {c["metadata"]["name"] for _, c in by_kind.get("ConfigMap", [])}
    deployments = {d["metadata"]["name"]: d for _, d in by_kind.get("Deployment", [])}
    images: dict[str, set[str]] = {}

    for path, doc in by_kind.get("Deployment", []) + by_kind.get("Job", []):
        name = f"{path}: {doc['kind']}/{doc['metadata']['name']}"
        labels = doc["metadata"].get("labels", {})
        svc = labels.get("app.kubernetes.io/name")
        component = labels.get("app.kubernetes.io/component")
        if not problems.check(svc in SERVICES, f"{name}: unknown app.kubernetes.io/name {svc}"):
            continue
        tmpl = doc["spec"]["template"]
        pod = tmpl["spec"]
        if doc["kind"] == "Deployment":
            problems.check(
                labels_match(doc["spec"]["selector"]["matchLabels"], tmpl["metadata"]["labels"]),
                f"{name}: selector does not match the pod labels",
            )
        psc = pod.get("securityContext", {})
        problems.check(psc.get("runAsNonRoot") is True, f"{name}: runAsNonRoot is not true")
        problems.check(psc.get("runAsUser") == UID, f"{name}: runAsUser is not {UID}")
        problems.check(
            pod.get("automountServiceAccountToken") is False, f"{name}: mounts a service account token"
        )
        for c in pod["containers"]:
            cname = f"{name} container {c['name']}"
            images.setdefault(svc, set()).add(c["image"])
            sc = c.get("securityContext", {})
            problems.check(sc.get("allowPrivilegeEscalation") is False, f"{cname}: allowPrivilegeEscalation")
            problems.check(
                sc.get("capabilities", {}).get("drop") == ["ALL"], f"{cname}: capabilities not dropped"
            )
            res = c.get("resources", {})
            problems.check(
                {"cpu", "memory"} <= set(res.get("requests", {}))
                and {"cpu", "memory"} <= set(res.get("limits", {})),
                f"{cname}: cpu/memory requests and limits are not all set",
            )
            for ef in c.get("envFrom", []):
                ref = ef.get("configMapRef", {}).get("name")
                if ref:
                    problems.check(ref in configmaps, f"{cname}: ConfigMap {ref} is not defined")
            env = {e["name"]: e for e in c.get("env", [])}
            for e in env.values():
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    problems.check(
                        ref["key"] in secret_keys,
                        f"{cname}: Secret key {ref['key']} not in the example Secret",
                    )
            problems.check(f"LOGISTICS_{svc.upper()}_DATABASE_URL" in env, f"{cname}: no database URL")
            for other in SERVICES:
                if other != svc:
                    problems.check(
                        f"LOGISTICS_{other.upper()}_DATABASE_URL" not in env,
                        f"{cname}: gets {other}'s database URL",
                    )
            args = c.get("args") or c.get("command")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            annotations = tmpl["metadata"].get("annotations", {})
            if component == "web":
                want_port, ready, live = SERVICES[svc], "/readyz", "/healthz"
                problems.check(
                    args == ["logistics", "serve", svc, "--host", ALL_INTERFACES, "--port", str(want_port)],
                    f"{cname}: args {args}",
                )
            elif component == "worker":
                want_port, ready, live = WORKER_PORTS[svc], "/readyz", "/healthz"
                problems.check(
                    args == ["logistics", "worker", svc, "--health-host", ALL_INTERFACES],
                    f"{cname}: args {args}",
                )
            elif component == "migrate":
                problems.check(args == ["logistics", "migrate", svc], f"{cname}: args {args}")
                problems.check(pod.get("restartPolicy") in {"Never", "OnFailure"}, f"{cname}: restartPolicy")
                continue
            else:
                problems.append(f"{cname}: unknown component {component}")
                continue
            problems.check(list(ports.values()) == [want_port], f"{cname}: containerPort is not {want_port}")
            for probe, path_ in (("readinessProbe", ready), ("livenessProbe", live)):
                get = c.get(probe, {}).get("httpGet", {})
                port = ports.get(get.get("port"), get.get("port"))
                problems.check(
                    get.get("path") == path_ and port == want_port,
                    f"{cname}: {probe} is not {path_} on {want_port}",
                )
            problems.check(
                annotations.get("prometheus.io/scrape") == "true"
                and annotations.get("prometheus.io/port") == str(want_port)
                and annotations.get("prometheus.io/path") == "/metrics",
                f"{cname}: prometheus.io annotations do not point at :{want_port}/metrics",
            )
    for svc, imgs in images.items():
        problems.check(len(imgs) == 1, f"{svc}: web, worker and migrate use different images {sorted(imgs)}")
    for svc in SERVICES:
        for kind, name in (
            ("Deployment", f"{svc}-web"),
            ("Deployment", f"{svc}-worker"),
            ("Job", f"{svc}-migrate"),
            ("Service", svc),
            ("HorizontalPodAutoscaler", f"{svc}-web"),
            ("PodDisruptionBudget", f"{svc}-web"),
        ):
            problems.check(
                any(d["metadata"]["name"] == name for _, d in by_kind.get(kind, [])),
                f"k8s: {kind}/{name} is missing",
            )

    services = {}
    for path, s in by_kind.get("Service", []):
        services[s["metadata"]["name"]] = s
        targets = [
            d
            for d in deployments.values()
            if labels_match(s["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        if problems.check(
            len(targets) == 1, f"{path}: Service {s['metadata']['name']} selects {len(targets)} Deployments"
        ):
            names = {
                p.get("name")
                for c in targets[0]["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
            }
            for p in s["spec"]["ports"]:
                problems.check(
                    p["targetPort"] in names, f"{path}: targetPort {p['targetPort']} is not a container port"
                )
    for path, h in by_kind.get("HorizontalPodAutoscaler", []):
        ref = h["spec"]["scaleTargetRef"]["name"]
        problems.check(ref in deployments, f"{path}: HPA targets unknown Deployment {ref}")
        problems.check(
            "replicas" not in deployments.get(ref, {}).get("spec", {}),
            f"{path}: {ref} sets replicas although an HPA owns them",
        )
        problems.check(
            h["spec"].get("minReplicas", 1) >= 2, f"{path}: minReplicas < 2 (the PDB would block drains)"
        )
    for path, p in by_kind.get("PodDisruptionBudget", []):
        sel = p["spec"]["selector"]["matchLabels"]
        problems.check(
            any(labels_match(sel, d["spec"]["template"]["metadata"]["labels"]) for d in deployments.values()),
            f"{path}: PDB {p['metadata']['name']} selects no Deployment",
        )
    for path, ing in by_kind.get("Ingress", []):
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                b = p["backend"]["service"]
                s = services.get(b["name"])
                if problems.check(s is not None, f"{path}: backend Service {b['name']} is not defined"):
                    problems.check(
                        b["port"].get("name") in {sp.get("name") for sp in s["spec"]["ports"]},
                        f"{path}: Service {b['name']} has no port {b['port']}",
                    )
    return finish(problems, f"{len(docs)} Kubernetes objects reference each other consistently")


def main(argv: list[str]) -> int:
    commands = {"yaml": cmd_yaml, "dockerfiles": cmd_dockerfiles, "compose": cmd_compose, "k8s": cmd_k8s}
    if len(argv) != 2 or argv[1] not in commands:
        print(f"usage: {argv[0]} {{{'|'.join(commands)}}}", file=sys.stderr)
        return 2
    return commands[argv[1]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv))

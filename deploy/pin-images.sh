#!/usr/bin/env bash
# Pin the Kubernetes images by digest: after `make images`, write each service image's
# digest into deploy/k8s/kustomization.yaml (deploy/README.md "Images by digest").
#
#   make images && bash deploy/pin-images.sh
#   kubectl apply -k deploy/k8s
#
# Reads `<engine> image inspect --format '{{.Digest}}'` of
# ${IMAGE_PREFIX}<svc>:${IMAGE_TAG} (the Makefile's defaults: localhost/logistics-, latest)
# for every service in ${IMAGE_SERVICES}, with podman (docker when podman is absent;
# IMAGE_ENGINE chooses). REGISTRY=<host>/<path> also sets newName to <REGISTRY>/<svc>.
# The digest must be the registry's: if the push recompresses layers, pin what
# `podman push --digestfile` reports instead. Exits 1, changing nothing, when an
# image is missing or its digest is not sha256:<64 hex digits>.

set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KUSTOMIZATION=${KUSTOMIZATION:-$DEPLOY_DIR/k8s/kustomization.yaml}
IMAGE_SERVICES=${IMAGE_SERVICES:-inventory shipping support}
IMAGE_PREFIX=${IMAGE_PREFIX:-localhost/logistics-}
IMAGE_TAG=${IMAGE_TAG:-latest}
REGISTRY=${REGISTRY:-}
PYTHON=${PYTHON:-python3}
if [[ -z ${IMAGE_ENGINE:-} ]]; then
    if command -v podman >/dev/null 2>&1; then IMAGE_ENGINE=podman; else IMAGE_ENGINE=docker; fi
fi

pins=()
for svc in $IMAGE_SERVICES; do
    image="$IMAGE_PREFIX$svc:$IMAGE_TAG"
    if ! digest=$("$IMAGE_ENGINE" image inspect --format '{{.Digest}}' "$image" 2>/dev/null); then
        echo "pin-images: $image: no such image ($IMAGE_ENGINE); run make images first" >&2
        exit 1
    fi
    if [[ ! $digest =~ ^sha256:[0-9a-f]{64}$ ]]; then
        echo "pin-images: $image: digest '$digest' is not sha256:<64 hex digits> (push it first?)" >&2
        exit 1
    fi
    pins+=("$svc=$digest")
done

# Edit the images: entries line by line, so the comments and the order stay as they are.
"$PYTHON" - "$KUSTOMIZATION" "$REGISTRY" "${pins[@]}" <<'PY'
import pathlib
import re
import sys

path, registry, pins = pathlib.Path(sys.argv[1]), sys.argv[2], dict(p.split("=", 1) for p in sys.argv[3:])
lines = path.read_text().splitlines()
out, svc, found = [], None, set()
for line in lines:
    entry = re.match(r"(\s*)- name: (\S+)$", line)
    if entry:
        name = entry.group(2)
        svc = next((s for s in pins if name.rsplit("/", 1)[-1] == s), None)
        indent = entry.group(1) + "  "
    elif svc and re.match(r"\s*digest:", line):
        continue  # replaced below
    elif svc and registry and re.match(r"\s*newName:", line):
        line = f"{indent}newName: {registry}/{svc}"
    out.append(line)
    if svc and re.match(r"\s*newTag:", line):
        out.append(f"{indent}digest: {pins[svc]}")
        found.add(svc)
missing = sorted(set(pins) - found)
if missing:
    sys.exit(f"pin-images: {path}: no images: entry with newTag for {', '.join(missing)}")
path.write_text("\n".join(out) + "\n")
for s, d in pins.items():
    print(f"{s}: {d}")
PY

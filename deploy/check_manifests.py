"""Checks the Kubernetes manifests and the Helm chart (run by
deploy/check-manifests.sh, which provides helm and kubernetes-validate).

- Every manifest of deploy/k8s and of deploy/k8s/dynamic (the Deployment with
  dynamic membership) validates against the Kubernetes API schema, unknown
  fields refused.
- The chart lints, and renders for 1 to 7 members, with and without TLS;
  every render validates the same way, and HA_HOSTS lists one member per
  replica, in ordinal order.
- Rendered with its defaults as release "redhac", the chart is the plain
  manifests of deploy/k8s (the labels Helm adds aside): the two cannot drift
  apart. The chart covers the StatefulSet only, not deploy/k8s/dynamic.
"""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLAIN = ROOT / "deploy" / "k8s"
# Applied on its own (`kubectl apply -f deploy/k8s/` does not descend into it).
DYNAMIC = PLAIN / "dynamic"
CHART = ROOT / "deploy" / "helm" / "redhac"
# The oldest Kubernetes the manifests support (the preStop sleep action).
KUBERNETES = "1.30.0"
HELM_LABELS = {"app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart"}


def run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def validate(paths: list[Path]) -> None:
    run("kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES, *map(str, paths))


def render(*sets: str) -> list[dict]:
    args = ["helm", "template", "redhac", str(CHART)]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(run(*args)) if d]


def without_helm_labels(value):
    if isinstance(value, dict):
        return {k: without_helm_labels(v) for k, v in value.items() if k not in HELM_LABELS}
    if isinstance(value, list):
        return [without_helm_labels(v) for v in value]
    return value


def by_object(docs: list[dict]) -> dict:
    return {(d["kind"], d["metadata"]["name"]): without_helm_labels(d) for d in docs}


def env(docs: list[dict], name: str) -> str:
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    return next(e["value"] for e in container["env"] if e["name"] == name)


def main() -> None:
    plain = sorted(PLAIN.glob("*.yaml"))
    dynamic = sorted(DYNAMIC.glob("*.yaml"))
    if not dynamic:
        sys.exit(f"no manifests in {DYNAMIC}")
    validate(plain + dynamic)
    print(
        f"{len(plain)} manifests of deploy/k8s and {len(dynamic)} of deploy/k8s/dynamic "
        f"validate against Kubernetes {KUBERNETES} (strict)"
    )

    run("helm", "lint", "--strict", str(CHART))
    out = ROOT / "target" / "chart-renders"
    out.mkdir(parents=True, exist_ok=True)
    renders = []
    for members in range(1, 8):
        for tls in ("true", "false"):
            docs = render(f"replicaCount={members}", f"tls.enabled={tls}")
            scheme = "https" if tls == "true" else "http"
            want = ",".join(f"{scheme}://redhac-{i}.redhac:8001" for i in range(members))
            got = env(docs, "HA_HOSTS")
            if got != want:
                sys.exit(f"{members} members, TLS {tls}: HA_HOSTS is {got!r}, not {want!r}")
            path = out / f"redhac-{members}-tls-{tls}.yaml"
            path.write_text(yaml.safe_dump_all(docs))
            renders.append(path)
    validate(renders)
    print(f"the chart renders for 1 to 7 members with and without TLS; {len(renders)} renders validate")

    chart = by_object(render())
    manifests = by_object([yaml.safe_load(p.read_text()) for p in plain])
    if chart.keys() != manifests.keys():
        sys.exit(f"the chart renders {sorted(chart)}, deploy/k8s holds {sorted(manifests)}")
    for key, doc in chart.items():
        if doc != manifests[key]:
            sys.exit(
                f"{key[0]} {key[1]}: the chart's default render differs from deploy/k8s:\n"
                f"chart: {yaml.safe_dump(doc)}\nplain: {yaml.safe_dump(manifests[key])}"
            )
    print(f"the chart's default render is deploy/k8s ({len(chart)} objects)")


if __name__ == "__main__":
    main()

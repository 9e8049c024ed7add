"""Checks the Kubernetes manifests and the Helm chart (run by
deploy/check-manifests.sh, which provides helm and kubernetes-validate).

- Every manifest of deploy/k8s and of deploy/k8s/dynamic (the Deployment with
  dynamic membership) validates against the Kubernetes API schema, unknown
  fields refused.
- The chart lints, in both membership modes.
- membership: static (the default) renders for 1 to 7 members, with and
  without TLS; every render validates the same way, and HA_HOSTS lists one
  member per replica, in ordinal order.
- membership: dynamic renders for 3, 5 and 7 members, with and without TLS;
  every render validates the same way, holds a Deployment and no
  StatefulSet, discovers its members through the <release>-peers service,
  and HA_BOOTSTRAP_EXPECT is a majority of the replicas. The render fails on
  settings that could split the cluster or that the members refuse
  (bootstrapExpect 1 of 3 replicas, among others).
- Rendered with its defaults as release "redhac", the chart is the plain
  manifests of deploy/k8s, and with membership=dynamic those of
  deploy/k8s/dynamic (the labels Helm adds aside): neither pair can drift
  apart.
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
# The release name the renders use, as the plain manifests' names assume.
RELEASE = "redhac"


def run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def validate(paths: list[Path]) -> None:
    run("kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES, *map(str, paths))


def template_args(sets: tuple[str, ...]) -> list[str]:
    args = ["helm", "template", RELEASE, str(CHART)]
    for s in sets:
        args += ["--set", s]
    return args


def render(*sets: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(run(*template_args(sets))) if d]


def render_fails(expected: str, *sets: str) -> None:
    """The render fails, saying `expected`."""
    args = template_args(sets)
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode == 0:
        sys.exit(f"{' '.join(args)} rendered; it must fail ({expected})")
    if expected not in done.stderr:
        sys.exit(f"{' '.join(args)} failed without saying {expected!r}:\n{done.stderr}")


def without_helm_labels(value):
    if isinstance(value, dict):
        return {k: without_helm_labels(v) for k, v in value.items() if k not in HELM_LABELS}
    if isinstance(value, list):
        return [without_helm_labels(v) for v in value]
    return value


def by_object(docs: list[dict]) -> dict:
    return {(d["kind"], d["metadata"]["name"]): without_helm_labels(d) for d in docs}


def same_objects(chart_docs: list[dict], paths: list[Path], where: str) -> int:
    """The chart's render is the plain manifests of `where`, Helm's labels
    aside; returns the number of objects."""
    chart = by_object(chart_docs)
    manifests = by_object([yaml.safe_load(p.read_text()) for p in paths])
    if chart.keys() != manifests.keys():
        sys.exit(f"the chart renders {sorted(chart)}, {where} holds {sorted(manifests)}")
    for key, doc in chart.items():
        if doc != manifests[key]:
            sys.exit(
                f"{key[0]} {key[1]}: the chart's render differs from {where}:\n"
                f"chart: {yaml.safe_dump(doc)}\nplain: {yaml.safe_dump(manifests[key])}"
            )
    return len(chart)


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    if len(found) != 1:
        sys.exit(f"the render holds {len(found)} {kind} objects, not one")
    return found[0]


def env(docs: list[dict], kind: str, name: str) -> str | None:
    workload = one(docs, kind)
    container = workload["spec"]["template"]["spec"]["containers"][0]
    return next((e.get("value") for e in container["env"] if e["name"] == name), None)


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
    run("helm", "lint", "--strict", str(CHART), "--set", "membership=dynamic")
    out = ROOT / "target" / "chart-renders"
    out.mkdir(parents=True, exist_ok=True)

    renders = []
    for members in range(1, 8):
        for tls in ("true", "false"):
            docs = render(f"replicaCount={members}", f"tls.enabled={tls}")
            if any(d["kind"] == "Deployment" for d in docs):
                sys.exit(f"{members} members, TLS {tls}: membership static renders a Deployment")
            scheme = "https" if tls == "true" else "http"
            want = ",".join(f"{scheme}://{RELEASE}-{i}.{RELEASE}:8001" for i in range(members))
            got = env(docs, "StatefulSet", "HA_HOSTS")
            if got != want:
                sys.exit(f"{members} members, TLS {tls}: HA_HOSTS is {got!r}, not {want!r}")
            path = out / f"redhac-{members}-tls-{tls}.yaml"
            path.write_text(yaml.safe_dump_all(docs))
            renders.append(path)
    validate(renders)
    print(
        f"membership static renders for 1 to 7 members with and without TLS; "
        f"{len(renders)} renders validate"
    )

    renders = []
    for members in (3, 5, 7):
        for tls in ("true", "false"):
            what = f"membership dynamic, {members} members, TLS {tls}"
            docs = render("membership=dynamic", f"replicaCount={members}", f"tls.enabled={tls}")
            if any(d["kind"] == "StatefulSet" for d in docs):
                sys.exit(f"{what}: renders a StatefulSet")
            deployment = one(docs, "Deployment")
            if deployment["spec"]["replicas"] != members:
                sys.exit(f"{what}: {deployment['spec']['replicas']} replicas")
            scheme = "https" if tls == "true" else "http"
            want = {
                "HA_DISCOVER": f"{scheme}://{RELEASE}-peers:8001",
                "HA_ADVERTISE": "$(POD_IP)",
                "HA_BOOTSTRAP_EXPECT": str(members // 2 + 1),
                "HA_VOTERS": "3",
                "HA_HOSTS": None,
                "HOSTNAME_OVERWRITE": None,
            }
            for name, value in want.items():
                got = env(docs, "Deployment", name)
                if got != value:
                    sys.exit(f"{what}: {name} is {got!r}, not {value!r}")
            names = {(d["kind"], d["metadata"]["name"]) for d in docs}
            if ("Service", f"{RELEASE}-peers") not in names:
                sys.exit(f"{what}: no headless service {RELEASE}-peers, only {sorted(names)}")
            path = out / f"redhac-dynamic-{members}-tls-{tls}.yaml"
            path.write_text(yaml.safe_dump_all(docs))
            renders.append(path)
    # Five voters: the PodDisruptionBudget keeps 3 of them.
    docs = render("membership=dynamic", "replicaCount=5", "dynamic.voters=5")
    if one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] != 2:
        sys.exit("membership dynamic with 5 voters: the PDB does not allow 2 pods down")
    # The optional times reach the members as given.
    times = {
        "HA_DISCOVER_INTERVAL": ("discoverInterval", "500ms"),
        "HA_REPLACE_AFTER": ("replaceAfter", "5s"),
        "HA_REMOVE_AFTER": ("removeAfter", "1m"),
        "HA_LEAVE_TIMEOUT": ("leaveTimeout", "30s"),
    }
    docs = render(
        "membership=dynamic",
        "terminationGracePeriodSeconds=60",
        *(f"dynamic.{key}={value}" for key, value in times.values()),
    )
    for name, (_, value) in times.items():
        if env(docs, "Deployment", name) != value:
            sys.exit(f"membership dynamic: {name} is {env(docs, 'Deployment', name)!r}, not {value!r}")
    path = out / "redhac-dynamic-times.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    renders.append(path)
    validate(renders)
    print(
        f"membership dynamic renders for 3, 5 and 7 members with and without TLS, "
        f"5 voters, the optional times; {len(renders)} renders validate"
    )

    refused = [
        ("not above half of replicaCount 3", "dynamic.bootstrapExpect=1"),
        ("above replicaCount 3", "dynamic.bootstrapExpect=4"),
        ("dynamic.voters is 4", "replicaCount=5", "dynamic.voters=4"),
        ("dynamic.voters is 5, above replicaCount 3", "dynamic.voters=5"),
        ("terminationGracePeriodSeconds is 45", "dynamic.leaveTimeout=40s"),
        ("dynamic.removeAfter", "dynamic.replaceAfter=2m", "dynamic.removeAfter=1m"),
    ]
    for expected, *sets in refused:
        render_fails(expected, "membership=dynamic", *sets)
    render_fails("membership is \"both\"", "membership=both")
    print(f"the chart refuses {len(refused) + 1} settings (bootstrapExpect 1 of 3 replicas, ...)")

    count = same_objects(render(), plain, "deploy/k8s")
    print(f"the chart's default render is deploy/k8s ({count} objects)")
    count = same_objects(render("membership=dynamic"), dynamic, "deploy/k8s/dynamic")
    print(f"the chart's default render with membership=dynamic is deploy/k8s/dynamic ({count} objects)")


if __name__ == "__main__":
    main()

"""Invariants of the container image recipe and the Kubernetes manifests under deploy/.

No cluster and no network. The base is always checked: rendered with ``kubectl kustomize`` when
kubectl is on PATH, otherwise read directly from deploy/base with PyYAML (resources, ConfigMap
generators and common labels: all the base uses). The dev and prod overlays need kustomize
(patches, generators with merge, images, replicas), so without kubectl their rendered checks are
skipped with a reason that says so; their declared executor modes are still read directly.

Each invariant is a function returning a list of problems, so the same checks also run against
deliberately broken manifests (``test_checks_catch_*``) to prove they would fail.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from shared.config import SECRET_NAME, ServiceSettings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
OVERLAYS = {"dev": DEPLOY / "overlays" / "dev", "prod": DEPLOY / "overlays" / "prod"}
SECRET_EXAMPLES = BASE / "secrets.example"
KUBECTL = shutil.which("kubectl")
KUBERNETES_VERSION = "1.32.0"  # the kubectl/cluster generation these manifests are written for

Obj = dict[str, Any]

SERVICES = {"executor": 50052, "scanner": 50051, "budget": 50053}  # name -> gRPC port
PREFIX = {"executor": "EXECUTOR_", "scanner": "SCANNER_", "budget": "BUDGET_"}
WORKLOADS = (*SERVICES, "migrator")
OPERATOR_LABEL = "auto-invest-oracle/operator"
TRADE_KEY_VARS = ("EXECUTOR_BITVAVO_API_KEY", "EXECUTOR_BITVAVO_API_SECRET")
POD_WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}
# Egress ports each workload needs, and nothing more (DNS, PostgreSQL, HTTPS, gRPC peers).
EGRESS_PORTS = {
    "executor": {53, 5432, 443},
    "scanner": {53, 5432, 443, 50052, 50053},
    "budget": {53, 5432},
    "migrator": {53, 5432},
}
# Who may open a connection to each workload: our pods by name, or operator clients.
INGRESS_FROM = {
    "executor": {"scanner", "operator-pods", "operator-namespaces"},
    "scanner": {"operator-pods", "operator-namespaces"},
    "budget": {"scanner", "operator-pods", "operator-namespaces"},
    "migrator": set(),
}


# --------------------------------------------------------------------------------------------
# Rendering


def kustomize(path: Path) -> list[Obj]:
    """``kubectl kustomize path`` as objects (kubectl must be on PATH)."""
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a kustomize env file (comments and blank lines ignored)."""
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=value: {line!r}"
            out[key] = value
    return out


def load_directly(root: Path) -> list[Obj]:
    """A kustomization read with PyYAML alone: its resources, its ConfigMap generators (without
    the name hash) and its common labels. Enough for deploy/base, which uses nothing else; any
    other feature is refused so this never silently renders something different from kustomize."""
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text(encoding="utf-8"))
    known = {"apiVersion", "kind", "resources", "configMapGenerator", "labels"}
    unknown = set(kustomization) - known
    assert not unknown, f"{root}: the direct loader does not support {sorted(unknown)}; use kubectl"
    objects: list[Obj] = []
    for entry in kustomization.get("resources", []):
        path = root / entry
        if path.is_dir():
            objects.extend(load_directly(path))
        else:
            objects.extend(doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    for generator in kustomization.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env in generator.get("envs", []):
            data.update(read_env_file(root / env))
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        labels = dict(generator.get("options", {}).get("labels", {}))
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"], "labels": labels},
                "data": data,
            }
        )
    for rule in kustomization.get("labels", []):
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(rule["pairs"])
            template = pod_template(obj)
            if rule.get("includeTemplates") and template is not None:
                template.setdefault("metadata", {}).setdefault("labels", {}).update(rule["pairs"])
    return objects


_CACHE: dict[str, list[Obj]] = {}


def rendered(target: str) -> list[Obj]:
    """The objects of ``target`` (base, dev or prod), rendered once per session (deep copies)."""
    if target not in _CACHE:
        if target == "base":
            _CACHE[target] = kustomize(BASE) if KUBECTL else load_directly(BASE)
        else:
            if not KUBECTL:
                pytest.skip(
                    f"kubectl is not on PATH: overlay {target} not rendered (the base was checked from its YAML; "
                    "install kubectl >= 1.27 to check the overlays)"
                )
            _CACHE[target] = kustomize(OVERLAYS[target])
    return copy.deepcopy(_CACHE[target])


TARGETS = ["base", "dev", "prod"]


# --------------------------------------------------------------------------------------------
# Helpers


def ident(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_template(obj: Obj) -> Obj | None:
    kind = obj.get("kind")
    if kind == "Pod":
        return obj
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]  # type: ignore[no-any-return]
    if kind in POD_WORKLOAD_KINDS:
        return obj["spec"]["template"]  # type: ignore[no-any-return]
    return None


def pod_specs(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, pod spec) for every object that makes pods."""
    for obj in objects:
        template = pod_template(obj)
        if template is not None:
            yield obj, template["spec"]


def all_containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec.get("containers", []), *spec.get("ephemeralContainers", [])]


def app_name(obj: Obj) -> str:
    template = pod_template(obj)
    labels = (template or obj).get("metadata", {}).get("labels", {})
    return str(labels.get("app.kubernetes.io/name", ""))


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def config_map_named(objects: list[Obj], base_name: str) -> Obj:
    """A generated ConfigMap by its name before kustomize appended the content hash."""
    pattern = re.compile(rf"^{re.escape(base_name)}(-[a-z0-9]{{10}})?$")
    matches = [o for o in objects if o["kind"] == "ConfigMap" and pattern.match(o["metadata"]["name"])]
    assert len(matches) == 1, f"expected one ConfigMap {base_name}, found {[ident(m) for m in matches]}"
    return matches[0]


def strings(node: Any) -> Iterator[str]:
    """Every string in a YAML tree, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def secret_refs(spec: Obj) -> set[str]:
    """Names of the Secrets a pod spec uses (volumes, projected volumes, envFrom, env)."""
    names: set[str] = set()
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            names.add(volume["secret"].get("secretName", ""))
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                names.add(source["secret"].get("name", ""))
    for container in all_containers(spec):
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                names.add(source["secretRef"].get("name", ""))
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                names.add(ref.get("name", ""))
    return names


def env_names(objects: list[Obj], spec: Obj) -> set[str]:
    """Names of the variables a pod's containers get from the manifests: env entries, and the
    keys of the ConfigMaps they envFrom (Secrets are not in the manifests: see secret_refs)."""
    names: set[str] = set()
    config_maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    for container in all_containers(spec):
        names.update(env["name"] for env in container.get("env", []))
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if prefix:
                names.add(prefix + "*")
            if "configMapRef" in source:
                config_map = config_maps.get(source["configMapRef"]["name"], {})
                names.update(prefix + key for key in config_map.get("data", {}))
    return names


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


# --------------------------------------------------------------------------------------------
# The invariants (each returns its problems)


def hardening_problems(objects: list[Obj]) -> list[str]:
    """Every container: non-root numeric user, read-only root, no privilege escalation, all
    capabilities dropped, RuntimeDefault seccomp, requests and limits; every pod: no API token,
    no service-link variables, no host namespaces or host paths."""
    problems: list[str] = []
    for obj, spec in pod_specs(objects):
        where = ident(obj)
        pod_sc = spec.get("securityContext", {})
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken must be false")
        if spec.get("enableServiceLinks") is not False:
            problems.append(f"{where}: enableServiceLinks must be false (Service env vars like EXECUTOR_PORT)")
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(field):
                problems.append(f"{where}: {field} must not be set")
        if any("hostPath" in volume for volume in spec.get("volumes", [])):
            problems.append(f"{where}: hostPath volumes are not allowed")
        for container in all_containers(spec):
            cwhere = f"{where} container {container['name']}"
            sc = container.get("securityContext", {})

            def effective(field: str, sc: Obj = sc, pod_sc: Obj = pod_sc) -> Any:
                return sc.get(field, pod_sc.get(field))

            if effective("runAsNonRoot") is not True:
                problems.append(f"{cwhere}: runAsNonRoot must be true")
            user = effective("runAsUser")
            if not isinstance(user, int) or user <= 0:
                problems.append(f"{cwhere}: runAsUser must be a numeric non-root UID, got {user!r}")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cwhere}: readOnlyRootFilesystem must be true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cwhere}: allowPrivilegeEscalation must be false")
            if sc.get("privileged"):
                problems.append(f"{cwhere}: privileged must not be set")
            caps = sc.get("capabilities", {})
            if "ALL" not in caps.get("drop", []) or caps.get("add"):
                problems.append(f"{cwhere}: capabilities must drop ALL and add none")
            if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{cwhere}: seccompProfile must be RuntimeDefault")
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(section, {}):
                        problems.append(f"{cwhere}: resources.{section}.{resource} is missing")
    return problems


def probe_problems(objects: list[Obj]) -> list[str]:
    """Every Deployment: native grpc liveness and readiness probes on its container's gRPC port,
    a Service reaching that port, and a termination grace above preStop + the app's grace."""
    problems: list[str] = []
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        where = ident(obj)
        spec = obj["spec"]["template"]["spec"]
        for container in spec["containers"]:
            ports = {p["containerPort"] for p in container.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe"):
                grpc = container.get(probe, {}).get("grpc")
                if grpc is None:
                    problems.append(f"{where}: {probe} must be a native grpc probe")
                elif grpc.get("port") not in ports:
                    problems.append(f"{where}: {probe} port {grpc.get('port')} is not a container port {ports}")
            name = app_name(obj)
            if name in SERVICES and SERVICES[name] not in ports:
                problems.append(f"{where}: must listen on {SERVICES[name]}")
            listen = _config_value(objects, container, f"{PREFIX.get(name, '')}LISTEN_ADDR")
            if name in SERVICES and listen != f"0.0.0.0:{SERVICES[name]}":
                problems.append(f"{where}: LISTEN_ADDR is {listen!r}, not 0.0.0.0:{SERVICES[name]}")
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            grace = float(_config_value(objects, container, f"{PREFIX.get(name, '')}GRACE_SECONDS") or 10)
            if spec.get("terminationGracePeriodSeconds", 30) <= pre_stop + grace:
                problems.append(
                    f"{where}: terminationGracePeriodSeconds must exceed preStop {pre_stop}s + grace {grace}s"
                )
        services = [
            s
            for s in objects
            if s["kind"] == "Service" and selector_matches({"matchLabels": s["spec"].get("selector", {})}, _labels(obj))
        ]
        if not services:
            problems.append(f"{where}: no Service selects its pods")
    return problems


def _labels(obj: Obj) -> dict[str, str]:
    template = pod_template(obj)
    return dict((template or obj).get("metadata", {}).get("labels", {}))


def _config_value(objects: list[Obj], container: Obj, key: str) -> str | None:
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
            value = names.get(source["configMapRef"]["name"], {}).get("data", {}).get(key)
            if value is not None:
                return str(value)
    return None


def key_separation_problems(objects: list[Obj]) -> list[str]:
    """Key separation (docs/design.md#key-separation) in the manifests: only the executor's Deployment (and its own ServiceAccount,
    which allow-lists it) mention executor-secrets or a trade-key variable; the scanner gets no
    variable saying TRADE or EXECUTOR_BITVAVO; every pod uses only its own <sa>-secrets and its
    own <sa>-tls (certificate, key and CA bundle)."""
    problems: list[str] = []
    allowed = {"Deployment/executor", "ServiceAccount/executor"}
    for obj in objects:
        if ident(obj) in allowed:
            continue
        for text in strings(obj):
            if "executor-secrets" in text or "EXECUTOR_BITVAVO_API" in text:
                problems.append(f"{ident(obj)} mentions the executor's trade secrets: {text[:80]!r}")
    for obj, spec in pod_specs(objects):
        account = spec.get("serviceAccountName", "default")
        for name in secret_refs(spec) - {f"{account}-secrets", f"{account}-tls"}:
            problems.append(f"{ident(obj)} (ServiceAccount {account}) uses Secret {name!r}, not its own")
        if app_name(obj) == "scanner":
            for var in env_names(objects, spec):
                if "TRADE" in var.upper() or "EXECUTOR_BITVAVO" in var.upper():
                    problems.append(f"{ident(obj)}: the scanner must not get variable {var}")
    executor = [o for o in objects if ident(o) == "Deployment/executor"]
    if len(executor) != 1 or executor[0]["spec"]["template"]["spec"].get("serviceAccountName") != "executor":
        problems.append("Deployment/executor must exist and run as ServiceAccount executor")
    return problems


def secret_object_problems(objects: list[Obj]) -> list[str]:
    """No Secret is ever rendered, and no ConfigMap holds a secret-looking setting."""
    problems = [f"{ident(o)}: Secrets are created by hand, never rendered" for o in objects if o["kind"] == "Secret"]
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            problems.extend(
                f"{ident(obj)}: {key} looks secret (belongs in a Secret)"
                for key in obj.get("data", {})
                if SECRET_NAME.search(key)
            )
    return problems


def identity_problems(objects: list[Obj]) -> list[str]:
    """Every workload runs as its own ServiceAccount (no token, listing only its own Secret), and
    no RBAC object binds those accounts or grants secrets, exec, attach or wildcards."""
    problems: list[str] = []
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    used: dict[str, str] = {}
    for obj, spec in pod_specs(objects):
        account = spec.get("serviceAccountName")
        name = app_name(obj)
        if account != name:
            problems.append(f"{ident(obj)}: must run as its own ServiceAccount {name!r}, not {account!r}")
        if account in used and used[account] != ident(obj):
            problems.append(f"{ident(obj)} shares ServiceAccount {account} with {used[account]}")
        used[str(account)] = ident(obj)
        sa = accounts.get(str(account))
        if sa is None:
            problems.append(f"{ident(obj)}: ServiceAccount {account} is not in the manifests")
            continue
        if sa.get("automountServiceAccountToken") is not False:
            problems.append(f"ServiceAccount/{account}: automountServiceAccountToken must be false")
        if [s.get("name") for s in sa.get("secrets", [])] != [f"{account}-secrets"]:
            problems.append(f"ServiceAccount/{account}: must allow-list exactly {account}-secrets")
        if sa.get("metadata", {}).get("annotations", {}).get("kubernetes.io/enforce-mountable-secrets") != "true":
            problems.append(f"ServiceAccount/{account}: enforce-mountable-secrets must be on")
    for obj in objects:
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for subject in obj.get("subjects", []):
                if subject.get("kind") == "ServiceAccount" and subject.get("name") in accounts:
                    problems.append(
                        f"{ident(obj)} binds ServiceAccount {subject['name']}: the services need no API access"
                    )
        if obj["kind"] in ("Role", "ClusterRole"):
            for rule in obj.get("rules", []):
                resources, verbs = set(rule.get("resources", [])), set(rule.get("verbs", []))
                bad = resources & {"secrets", "pods/exec", "pods/attach", "*"}
                if bad or "*" in verbs:
                    problems.append(
                        f"{ident(obj)} grants {sorted(bad) or '*'}: never secrets, exec, attach or wildcards"
                    )
                if verbs - {"get", "list", "watch"} and resources - {"pods/portforward"}:
                    problems.append(f"{ident(obj)} may change {sorted(resources)}: the operator Role is read-only")
    return problems


def network_problems(objects: list[Obj], *, database_narrowed: bool) -> list[str]:
    """Default deny; each workload reachable only from its expected peers and able to reach only
    its expected ports; HTTPS only to public addresses; DNS only to kube-dns."""
    problems: list[str] = []
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    deny = [
        p
        for p in policies
        if p["spec"].get("podSelector") == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        problems.append("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)")
    workloads = {app_name(o): _labels(o) for o, _ in pod_specs(objects)}
    operator_pod = {OPERATOR_LABEL: "true"}
    for name, labels in workloads.items():
        selecting = [p for p in policies if selector_matches(p["spec"].get("podSelector"), labels)]
        ingress_from: set[str] = set()
        egress_ports: set[int] = set()
        for policy in selecting:
            pname = ident(policy)
            types = policy["spec"].get("policyTypes", [])
            for rule in policy["spec"].get("ingress", []) if "Ingress" in types else []:
                if not rule.get("from") or not rule.get("ports"):
                    problems.append(f"{pname}: an ingress rule for {name} without from/ports admits everything")
                for peer in rule.get("from", []):
                    if "ipBlock" in peer:
                        problems.append(f"{pname}: ingress to {name} from an ipBlock")
                    elif "namespaceSelector" in peer:
                        if peer["namespaceSelector"] != {"matchLabels": operator_pod} or "podSelector" in peer:
                            problems.append(f"{pname}: ingress to {name} from namespaces {peer['namespaceSelector']}")
                        ingress_from.add("operator-namespaces")
                    else:
                        selector = peer.get("podSelector")
                        ingress_from.update(n for n, lbl in workloads.items() if selector_matches(selector, lbl))
                        if selector_matches(selector, operator_pod):
                            ingress_from.add("operator-pods")
                for port in rule.get("ports", []):
                    if name in SERVICES and port.get("port") != SERVICES[name]:
                        problems.append(f"{pname}: ingress to {name} on port {port.get('port')}")
            for rule in policy["spec"].get("egress", []) if "Egress" in types else []:
                ports = [p.get("port") for p in rule.get("ports", [])]
                if not ports:
                    problems.append(f"{pname}: an egress rule for {name} without ports allows every port")
                egress_ports.update(int(p) for p in ports)
                problems.extend(_egress_destination_problems(pname, name, rule, ports, workloads, database_narrowed))
        if ingress_from != INGRESS_FROM[name]:
            problems.append(
                f"{name}: ingress allowed from {sorted(ingress_from)}, expected {sorted(INGRESS_FROM[name])}"
            )
        if egress_ports != EGRESS_PORTS[name]:
            problems.append(f"{name}: egress ports {sorted(egress_ports)}, expected {sorted(EGRESS_PORTS[name])}")
    return problems


def _egress_destination_problems(
    pname: str, name: str, rule: Obj, ports: list[Any], workloads: dict[str, dict[str, str]], database_narrowed: bool
) -> list[str]:
    problems: list[str] = []
    peers = rule.get("to", [])
    for port in ports:
        if port == 53:
            dns = {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
            if peers != [dns]:
                problems.append(f"{pname}: DNS for {name} must go to kube-dns only")
        elif port == 443:
            for peer in peers:
                block = peer.get("ipBlock")
                public_v4 = block and block["cidr"] == "0.0.0.0/0" and PRIVATE_RANGES <= set(block.get("except", []))
                public_v6 = block and block["cidr"] == "::/0" and "fc00::/7" in block.get("except", [])
                if not (public_v4 or public_v6):
                    problems.append(f"{pname}: HTTPS for {name} must go to public addresses only, not {peer}")
            if not peers:
                problems.append(f"{pname}: HTTPS for {name} must go to public addresses only, not anywhere")
        elif port == 5432:
            if database_narrowed and not peers:
                problems.append(f"{pname}: PostgreSQL egress for {name} must be narrowed to the database")
        else:
            targets = {
                n for n, lbl in workloads.items() for peer in peers if selector_matches(peer.get("podSelector"), lbl)
            }
            expected = {n for n, p in SERVICES.items() if p == port}
            if targets != expected or any(set(peer) != {"podSelector"} for peer in peers):
                problems.append(f"{pname}: port {port} for {name} must go to {expected} pods only, not {peers}")
    return problems


# --------------------------------------------------------------------------------------------
# Tests on rendered output


@pytest.mark.parametrize("target", TARGETS)
def test_containers_are_hardened(target: str) -> None:
    objects = rendered(target)
    assert {app_name(o) for o, _ in pod_specs(objects)} == set(WORKLOADS)
    assert hardening_problems(objects) == []


@pytest.mark.parametrize("target", TARGETS)
def test_deployments_have_grpc_probes_on_their_port(target: str) -> None:
    objects = rendered(target)
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"} == set(SERVICES)
    assert probe_problems(objects) == []


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_executor_touches_the_trade_key(target: str) -> None:
    assert key_separation_problems(rendered(target)) == []


@pytest.mark.parametrize("target", TARGETS)
def test_no_secret_is_rendered(target: str) -> None:
    assert secret_object_problems(rendered(target)) == []


@pytest.mark.parametrize("target", TARGETS)
def test_every_workload_has_its_own_identity_and_no_api_rights(target: str) -> None:
    assert identity_problems(rendered(target)) == []


@pytest.mark.parametrize("target", TARGETS)
def test_network_policies(target: str) -> None:
    assert network_problems(rendered(target), database_narrowed=target == "prod") == []


@pytest.mark.parametrize("target", TARGETS)
def test_every_deployment_has_a_disruption_budget(target: str) -> None:
    objects = rendered(target)
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    for obj in objects:
        if obj["kind"] == "Deployment":
            covering = [b for b in budgets if selector_matches(b["spec"]["selector"], _labels(obj))]
            assert len(covering) == 1, f"{ident(obj)}: {len(covering)} PodDisruptionBudgets"
            assert covering[0]["spec"].get("maxUnavailable") == 1, "maxUnavailable 1 keeps 1-replica drains possible"


@pytest.mark.parametrize("target", TARGETS)
def test_recommended_labels(target: str) -> None:
    for obj in rendered(target):
        labels = obj["metadata"].get("labels", {})
        if obj["kind"] == "Namespace":
            continue
        assert labels.get("app.kubernetes.io/part-of") == "auto-invest-oracle", ident(obj)
        assert labels.get("app.kubernetes.io/managed-by") == "kustomize", ident(obj)
        if obj["kind"] in ("Deployment", "Job", "Service", "ServiceAccount", "PodDisruptionBudget", "ConfigMap"):
            assert labels.get("app.kubernetes.io/name") in WORKLOADS, ident(obj)


@pytest.mark.parametrize("target", TARGETS)
def test_migration_job(target: str) -> None:
    objects = rendered(target)
    job = find(objects, "Job", "migrate")
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["shared.db.migrate"]
    (env,) = container["env"]
    # Required: without DATABASE_URL the migrator would fall back to an embedded database.
    assert env == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "migrator-secrets", "key": "DATABASE_URL", "optional": False}},
    }
    assert "envFrom" not in container
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["parallelism"] == 1 and job["spec"]["completions"] == 1
    assert 0 < job["spec"]["backoffLimit"] <= 5 and job["spec"]["activeDeadlineSeconds"] > 0
    # Only the Job and its ServiceAccount mention the owner credential.
    holders = {ident(o) for o in objects if any("migrator-secrets" in s for s in strings(o))}
    assert holders == {"Job/migrate", "ServiceAccount/migrator"}


@pytest.mark.parametrize("target", TARGETS)
def test_the_migration_step_applies_the_job_under_default_deny(target: str) -> None:
    """deploy/README.md applies ``-l 'app.kubernetes.io/component in (network, migration)'`` before
    anything else: that must be the Job, its ServiceAccount and exactly the shared policies."""
    selected = {
        ident(o)
        for o in rendered(target)
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") in ("network", "migration")
    }
    assert selected == {
        "Job/migrate",
        "ServiceAccount/migrator",
        "NetworkPolicy/default-deny-all",
        "NetworkPolicy/allow-dns-egress",
        "NetworkPolicy/allow-postgres-egress",
    }


@pytest.mark.parametrize("target", TARGETS)
def test_one_image_for_every_workload(target: str) -> None:
    objects = rendered(target)
    images = {c["image"] for _, spec in pod_specs(objects) for c in all_containers(spec)}
    assert len(images) == 1, images
    (image,) = images
    args = {c["args"][0] for _, spec in pod_specs(objects) for c in all_containers(spec)}
    assert args == {"services.executor", "services.scanner", "services.budget", "shared.db.migrate"}
    if target == "prod":
        assert re.fullmatch(r"[a-z0-9.\-/]+@sha256:[0-9a-f]{64}", image), (
            f"prod image must be pinned by digest: {image}"
        )


@pytest.mark.parametrize("target", TARGETS)
def test_executor_mode_and_authentication(target: str) -> None:
    objects = rendered(target)
    mode = config_map_named(objects, "executor-config")["data"]["EXECUTOR_MODE"]
    assert mode == {"base": "paper", "dev": "paper", "prod": "live"}[target]
    for service, prefix in PREFIX.items():
        data = config_map_named(objects, f"{service}-config")["data"]
        assert data.get(f"{prefix}AUTH_MODE") == "token", f"{service}: AUTH_MODE must stay token in a cluster"
    assert not [s for o in objects for s in strings(o) if "insecure-dev" in s]


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_overlay_namespace_enforces_restricted_pods_and_the_secret_guard(target: str) -> None:
    objects = rendered(target)
    (namespace,) = [o for o in objects if o["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    guard = [
        o
        for o in load_plain(DEPLOY / "cluster" / "secret-guard" / "policy.yaml")
        if o["kind"] == "ValidatingAdmissionPolicy"
    ]
    assert selector_matches(guard[0]["spec"]["matchConstraints"]["namespaceSelector"], labels)
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {
        namespace["metadata"]["name"]
    }


def test_replicas_per_overlay() -> None:
    expected = {"base": 2, "dev": 1, "prod": 3}
    for target, count in expected.items():
        deployments = [o for o in rendered(target) if o["kind"] == "Deployment"]
        assert {d["spec"]["replicas"] for d in deployments} == {count}, target


@pytest.mark.parametrize("target", TARGETS)
def test_objects_match_the_kubernetes_schemas(target: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    for obj in rendered(target):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_cluster_and_component_objects_match_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    paths = [
        *(DEPLOY / "cluster").rglob("*.yaml"),
        *(DEPLOY / "components").rglob("*.yaml"),
        *SECRET_EXAMPLES.glob("*.yaml"),
        *(OVERLAYS["prod"]).glob("*.yaml"),
    ]
    for path in paths:
        if path.name == "kustomization.yaml" or path.parent.name == "monitoring":
            continue  # the monitoring component: patches and CRDs, rendered by test_monitoring.py
        for obj in load_plain(path):
            if path.parent.name == "prod" and obj["kind"] != "Namespace":
                continue  # patches are partial objects
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_direct_loader_agrees_with_kustomize() -> None:
    """The fallback used without kubectl renders the base exactly as kustomize does (up to the
    ConfigMap name hashes), so checking it is checking the real thing."""
    if not KUBECTL:
        pytest.skip("kubectl is not on PATH: nothing to compare the direct loader with")
    unhash = re.compile(r"\b((?:executor|scanner|budget)-config)-[a-z0-9]{10}\b")

    def canonical(objects: list[Obj]) -> list[str]:
        return sorted(unhash.sub(r"\1", yaml.safe_dump(obj, sort_keys=True)) for obj in objects)

    assert canonical(kustomize(BASE)) == canonical(load_directly(BASE))


# --------------------------------------------------------------------------------------------
# Tests on the sources themselves (need no kubectl)


def load_plain(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def overlay_literals(overlay: Path, config_map: str) -> dict[str, str]:
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for generator in kustomization.get("configMapGenerator", []):
        if generator["name"] == config_map:
            assert generator.get("behavior") == "merge", f"{overlay}: {config_map} must merge into the base"
            out.update(dict(lit.partition("=")[::2] for lit in generator.get("literals", [])))
    return out


def test_overlays_declare_their_executor_mode() -> None:
    """Read without kustomize, so it runs on machines without kubectl too."""
    assert overlay_literals(OVERLAYS["dev"], "executor-config")["EXECUTOR_MODE"] == "paper"
    assert overlay_literals(OVERLAYS["prod"], "executor-config")["EXECUTOR_MODE"] == "live"
    assert read_env_file(BASE / "executor" / "config.env")["EXECUTOR_MODE"] == "paper"


def secret_examples() -> dict[str, Obj]:
    return {obj["metadata"]["name"]: obj for path in sorted(SECRET_EXAMPLES.glob("*.yaml")) for obj in load_plain(path)}


def test_secret_examples_are_placeholders_and_never_deployed() -> None:
    examples = secret_examples()
    assert set(examples) == {f"{w}-secrets" for w in WORKLOADS}
    for name, secret in examples.items():
        assert secret["kind"] == "Secret" and "data" not in secret, name
        for key, value in secret["stringData"].items():
            assert "REPLACE_ME" in value, f"{name}.{key} must be a REPLACE_ME placeholder"
    for key in examples["scanner-secrets"]["stringData"]:
        assert key.startswith("SCANNER_") and "TRADE" not in key and "EXECUTOR_BITVAVO" not in key, key
    for key in examples["budget-secrets"]["stringData"]:
        assert key.startswith("BUDGET_"), key
    assert set(examples["migrator-secrets"]["stringData"]) == {"DATABASE_URL"}
    # No kustomization anywhere under deploy/ lists the examples.
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        listed = strings(yaml.safe_load(kustomization.read_text(encoding="utf-8")))
        assert not [s for s in listed if "secrets.example" in s or "-secrets" in s], kustomization


def settings_module(service: str) -> ModuleType:
    name = f"services.{service}.config"
    return importlib.import_module(name)


def settings_model(module: ModuleType) -> type[ServiceSettings]:
    (model,) = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v.__module__ == module.__name__
    ]
    return model


def fake_secret_env(service: str, *, paper: bool) -> dict[str, str]:
    """The example Secret of ``service`` with every placeholder replaced by a valid fake value."""
    counter = iter(range(1000))
    env: dict[str, str] = {}
    for key, value in secret_examples()[f"{service}-secrets"]["stringData"].items():
        if key.endswith("OPERATOR_ID"):
            env[key] = "1001"
        else:
            env[key] = re.sub("REPLACE_ME", lambda _: f"fake{next(counter):03d}" + "0" * 24, value)
    if paper:  # what the example tells a paper deployment to do: no trade key at all
        for key in (*TRADE_KEY_VARS, "EXECUTOR_OPERATOR_ID"):
            env.pop(key, None)
    return env


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_setting_in_the_manifests_is_a_real_setting(service: str) -> None:
    """Unknown variables are ignored by the services, so a misspelt one would silently fall back
    to its default: every ConfigMap and example Secret key must be a field of the settings model."""
    model = settings_model(settings_module(service))
    prefix = PREFIX[service]
    keys = set(read_env_file(BASE / service / "config.env")) | set(
        secret_examples()[f"{service}-secrets"]["stringData"]
    )
    for overlay in OVERLAYS.values():
        keys |= set(overlay_literals(overlay, f"{service}-config"))
    for path in (DEPLOY / "components").rglob("kustomization.yaml"):
        for generator in yaml.safe_load(path.read_text(encoding="utf-8")).get("configMapGenerator", []):
            if generator["name"] == f"{service}-config":
                keys |= {lit.partition("=")[0] for lit in generator.get("literals", [])}
    unknown = sorted(k for k in keys if not k.startswith(prefix) or k[len(prefix) :].lower() not in model.model_fields)
    assert unknown == [], f"not settings of {model.__name__}: {unknown}"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", list(SERVICES))
def test_each_service_accepts_its_rendered_configuration(target: str, service: str) -> None:
    """The service's own load_settings accepts ConfigMap + (example) Secret of each target."""
    module = settings_module(service)
    objects = rendered(target)
    env = dict(config_map_named(objects, f"{service}-config")["data"])
    env.update(fake_secret_env(service, paper=env.get("EXECUTOR_MODE") == "paper"))
    settings = module.load_settings(env)
    if service == "executor":
        assert settings.mode.value == env["EXECUTOR_MODE"]


@pytest.mark.parametrize("target", TARGETS)
def test_no_retired_executor_variable_is_set(target: str) -> None:
    """The account daily notional cap moved into the database (UpdateAccountSettings); the executor
    refuses to start while its old variable is set, so no manifest may carry it."""
    from services.executor.config import RETIRED

    env = set(config_map_named(rendered(target), "executor-config")["data"])
    env |= set(secret_examples()["executor-secrets"]["stringData"])
    assert sorted(env & set(RETIRED)) == []


def test_requirements_lock_agrees_with_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lock: dict[str, str] = {}
    for line in (DEPLOY / "docker" / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[A-Za-z0-9_.\-]+", name), f"lock lines are name==version: {line!r}"
            normalized = re.sub(r"[-_.]+", "-", name).lower()
            assert normalized not in lock, f"{name} pinned twice"
            lock[normalized] = version
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^\s;]+)", requirement)
        assert match, f"pyproject dependency not pinned with ==: {requirement}"
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        assert lock.get(name) == match.group(3), f"{requirement}: lock has {lock.get(name)} (regenerate the lock)"


def test_dockerfile_and_build_context() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in instructions
    assert sum(1 for line in instructions if line.startswith("FROM ")) >= 2, "multi-stage"
    assert instructions[-1] == 'ENTRYPOINT ["python", "-m"]'
    assert not [line for line in instructions if line.startswith("CMD")], "nothing runs by default"
    (user,) = [line for line in instructions if line.startswith("USER ")]
    assert user == "USER ${UID}:${GID}" and "ARG UID=10001" in instructions and "ARG GID=10001" in instructions
    for _, spec in pod_specs(load_directly(BASE)):
        assert spec["securityContext"]["runAsUser"] == 10001 and spec["securityContext"]["runAsGroup"] == 10001
    assert "requirements.lock" in dockerfile and "--no-deps" in dockerfile and "pip check" in dockerfile
    for line in instructions:  # nothing secret is baked in
        if line.startswith(("ENV", "ARG", "LABEL")):
            assert not SECRET_NAME.search(line.replace("PYTHON_IMAGE", "")), line
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    ignore = [line for line in ignore if line and not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore is an allow-list"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "deploy/docker/requirements.lock", "protos", "shared", "services", "oraclectl"}
    for copied in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, flags=re.M):
        assert copied in allowed, f"COPY {copied} is not in the build context"
    for module in ("services.executor", "services.scanner", "services.budget", "shared.db.migrate"):
        assert importlib.util.find_spec(module) is not None, f"the image cannot run {module}"


# --------------------------------------------------------------------------------------------
# The checks bite: each is run on deliberately broken manifests


def _mutated(mutate: Callable[[list[Obj]], None]) -> list[Obj]:
    objects = rendered("base")
    mutate(objects)
    return objects


def _container(objects: list[Obj], kind: str, name: str) -> Obj:
    return find(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_checks_catch_the_trade_key_secret_in_the_scanner() -> None:
    def add_secret(objects: list[Obj]) -> None:
        _container(objects, "Deployment", "scanner")["envFrom"].append({"secretRef": {"name": "executor-secrets"}})

    def add_variable(objects: list[Obj]) -> None:
        _container(objects, "Deployment", "scanner").setdefault("env", []).append(
            {"name": "EXECUTOR_BITVAVO_API_KEY", "valueFrom": {"secretKeyRef": {"name": "scanner-secrets", "key": "k"}}}
        )

    def add_trade_config(objects: list[Obj]) -> None:
        config_map_named(objects, "scanner-config")["data"]["SCANNER_TRADE_KEY"] = "x"

    def mount_as_volume(objects: list[Obj]) -> None:
        spec = find(objects, "Deployment", "budget")["spec"]["template"]["spec"]
        spec["volumes"] = [{"name": "k", "projected": {"sources": [{"secret": {"name": "executor-secrets"}}]}}]

    for mutate in (add_secret, add_variable, add_trade_config, mount_as_volume):
        assert key_separation_problems(_mutated(mutate)), mutate.__name__


def test_checks_catch_weakened_pods_probes_identity_and_network() -> None:
    def writable_root(objects: list[Obj]) -> None:
        _container(objects, "Deployment", "executor")["securityContext"]["readOnlyRootFilesystem"] = False

    def root_user(objects: list[Obj]) -> None:
        find(objects, "Job", "migrate")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
        find(objects, "Job", "migrate")["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0

    assert hardening_problems(_mutated(writable_root))
    assert hardening_problems(_mutated(root_user))

    def http_probe(objects: list[Obj]) -> None:
        _container(objects, "Deployment", "budget")["livenessProbe"] = {"tcpSocket": {"port": 50053}}

    assert probe_problems(_mutated(http_probe))

    def shared_account(objects: list[Obj]) -> None:
        find(objects, "Deployment", "scanner")["spec"]["template"]["spec"]["serviceAccountName"] = "executor"

    def secret_reader(objects: list[Obj]) -> None:
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "reader"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
            }
        )

    assert identity_problems(_mutated(shared_account))
    assert identity_problems(_mutated(secret_reader))
    assert key_separation_problems(_mutated(shared_account)) or identity_problems(_mutated(shared_account))

    def open_executor(objects: list[Obj]) -> None:
        find(objects, "NetworkPolicy", "executor")["spec"]["ingress"][0]["from"].append({"podSelector": {}})

    def executor_to_budget(objects: list[Obj]) -> None:
        find(objects, "NetworkPolicy", "executor")["spec"]["egress"].append(
            {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "budget"}}}], "ports": [{"port": 50053}]}
        )

    assert network_problems(_mutated(open_executor), database_narrowed=False)
    assert network_problems(_mutated(executor_to_budget), database_narrowed=False)
    assert network_problems(rendered("base"), database_narrowed=True), "base leaves PostgreSQL egress open"

    def rendered_secret(objects: list[Obj]) -> None:
        objects.append(secret_examples()["executor-secrets"])

    assert secret_object_problems(_mutated(rendered_secret))

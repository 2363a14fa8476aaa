"""Every kustomization in k8s/ renders, validates offline, lints, and means what it says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config import load_config
from proxy.datapath.routes import compile_routes
from proxy.inject import InjectOptions, inject_object
from proxy.inject.options import (
    CONTAINER_NAME,
    DATA_PORT,
    ENDPOINT,
    INJECT,
    METRICS_PORT,
    METRICS_PORT_NAME,
    SHUTDOWN_MARGIN,
    VERSION_LABEL,
)
from tests.k8s.manifests import K8S, ROOT, VENV_BIN, find, pod_templates, render, validate
from tests.tools import generate_k8s

#: Every kustomization and the Kubernetes version it must validate for.
KUSTOMIZATIONS = {
    "base": "1.33",
    "overlays/legacy-sidecar": "1.28",
    "monitoring": "1.33",
    "injector": "1.33",
    "jobs": "1.33",
}
YAMLLINT_TARGETS = ["k8s", "config/k8s.yaml", "tests/k8s/promtool"]


def test_every_kustomization_is_covered():
    found = {
        str(p.parent.relative_to(K8S)) for p in K8S.rglob("kustomization.yaml")
    }  # fmt: skip
    assert found == set(KUSTOMIZATIONS)


def test_generated_files_are_current():
    assert generate_k8s.SCHEMA.exists(), f"missing {generate_k8s.SCHEMA.relative_to(ROOT)}"
    stale = [str(p.relative_to(ROOT)) for p in generate_k8s.stale_files()]
    assert not stale, f"stale: {stale}; run `python tests/tools/generate_k8s.py`"


@pytest.mark.parametrize(("kustomization", "version"), sorted(KUSTOMIZATIONS.items()))
def test_renders_and_validates_strictly(kustomization: str, version: str):
    docs = render(kustomization)
    assert docs
    for doc in docs:
        validate(doc, version)


@pytest.mark.parametrize(("kustomization", "version"), sorted(KUSTOMIZATIONS.items()))
def test_kubernetes_validate_cli_passes_builtin_kinds(
    kustomization: str, version: str, tmp_path: Path
):
    builtin = [d for d in render(kustomization) if "coreos.com" not in d["apiVersion"]]
    builtin = [d for d in builtin if "cert-manager.io" not in d["apiVersion"]]
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    proc = subprocess.run(
        [str(VENV_BIN / "kubernetes-validate"), "--strict", "-k", version, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed for resource") == len(builtin), proc.stdout


def test_crd_validation_rejects_typos():
    monitor = dict(find(render("monitoring"), "PodMonitor"))
    monitor["spec"] = {**monitor["spec"], "podMetricEndpoints": []}
    with pytest.raises(AssertionError, match="Additional properties"):
        validate(monitor, "1.33")
    cert = find(render("injector"), "Certificate", "format-proxy-injector")
    broken = {**cert, "spec": {**cert["spec"], "usages": ["server-auth"]}}
    with pytest.raises(AssertionError, match="is not one of"):
        validate(broken, "1.33")
    with pytest.raises(AssertionError, match="no schema"):
        validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {}}, "1.33")


def test_example_app_validates():
    for doc in yaml.safe_load_all((K8S / "examples" / "orders-reader.yaml").read_text()):
        validate(doc, "1.33")
        validate(doc, "1.28")


def test_yamllint_passes():
    proc = subprocess.run(
        [str(VENV_BIN / "yamllint"), "-s", "-f", "parsable", "-c", "k8s/yamllint.yaml",
         *YAMLLINT_TARGETS],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""


def test_yamllint_catches_problems(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: yes\nb:   1\n")
    proc = subprocess.run(
        [str(VENV_BIN / "yamllint"), "-s", "-c", str(K8S / "yamllint.yaml"), str(bad)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0 and "truthy" in proc.stdout


# --- the example app with its native sidecar ---------------------------------------------


def _sidecar(pod: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for where in ("initContainers", "containers"):
        for c in pod["spec"].get(where, []):
            if c["name"] == CONTAINER_NAME:
                return where, c
    raise AssertionError("no format-proxy container")


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _proxy_config() -> Any:
    return load_config(
        ROOT / "config" / "k8s.yaml",
        environ={"FORMAT_PROXY_APP_VERSION": "v2"},
    )


def test_base_has_a_native_sidecar_that_gates_the_app():
    docs = render("base")
    pod = find(docs, "Deployment", "orders-reader")["spec"]["template"]
    where, sidecar = _sidecar(pod)
    assert where == "initContainers"
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/readyz", "port": METRICS_PORT_NAME}
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert ports == {METRICS_PORT_NAME: METRICS_PORT}
    env = _env(sidecar)
    assert env["FORMAT_PROXY_APP_VERSION"] == {
        "fieldRef": {"fieldPath": f"metadata.labels['{VERSION_LABEL}']"}
    }
    assert env["FORMAT_PROXY_LISTEN"] == f"127.0.0.1:{DATA_PORT}"
    assert env["FORMAT_PROXY_METRICS_LISTEN"] == f"0.0.0.0:{METRICS_PORT}"
    assert pod["metadata"]["labels"][VERSION_LABEL] == "v2"
    assert pod["metadata"]["labels"][INJECT] == "true"
    for app in pod["spec"]["containers"]:
        assert _env(app)["AWS_ENDPOINT_URL_S3"] == ENDPOINT == f"http://127.0.0.1:{DATA_PORT}"


def test_base_sidecar_spools_to_an_emptydir_and_reads_the_generated_configmap():
    docs = render("base")
    pod = find(docs, "Deployment", "orders-reader")["spec"]["template"]
    _, sidecar = _sidecar(pod)
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    tmp = mounts[_env(sidecar)["TMPDIR"]]
    assert "emptyDir" in volumes[tmp["name"]]
    config_dir = str(Path(_env(sidecar)["FORMAT_PROXY_CONFIG"]).parent)
    assert mounts[config_dir]["readOnly"] is True
    cm_name = volumes[mounts[config_dir]["name"]]["configMap"]["name"]
    configmap = find(docs, "ConfigMap", cm_name)  # the generated one, hash suffix and all
    assert set(configmap["data"]) == {"config.yaml", "order.schema.json"}
    assert Path(_env(sidecar)["FORMAT_PROXY_CONFIG"]).name == "config.yaml"


def test_configmap_carries_config_k8s_yaml_and_its_schema_and_loads(tmp_path: Path):
    configmap = find(render("base"), "ConfigMap")
    assert configmap["data"]["config.yaml"] == (ROOT / "config" / "k8s.yaml").read_text()
    assert configmap["data"]["order.schema.json"] == generate_k8s.SCHEMA.read_text()
    # Materialise the mount and load it as the sidecar would (the schema compiles too).
    for key, text in configmap["data"].items():
        (tmp_path / key).write_text(text)
    config = load_config(tmp_path / "config.yaml", environ={"FORMAT_PROXY_APP_VERSION": "v2"})
    assert [r.name for r in config.routes] == ["orders"]
    assert config.routes[0].bucket == "shop-data" and config.routes[0].prefix == "orders/"
    assert config.routes[0].formats == {"v1": "xml", "v2": "json"}
    assert [r.name for r in compile_routes(config)] == ["orders"]


def test_termination_grace_covers_app_drain_plus_proxy_drain():
    pod = find(render("base"), "Deployment")["spec"]["template"]
    example = generate_k8s._example_deployment()["spec"]["template"]["spec"]
    app_grace = example["terminationGracePeriodSeconds"]
    proxy_grace = _proxy_config().shutdown_grace_seconds
    assert proxy_grace == 25
    assert pod["spec"]["terminationGracePeriodSeconds"] == app_grace + proxy_grace + SHUTDOWN_MARGIN


def _without_hash(doc: dict[str, Any]) -> dict[str, Any]:
    text = yaml.safe_dump(doc)
    return yaml.safe_load(
        re.sub(r"format-proxy-config-[a-z0-9]{10}\b", "format-proxy-config", text)
    )


@pytest.mark.parametrize(
    ("kustomization", "mode"), [("base", "native"), ("overlays/legacy-sidecar", "legacy")]
)
def test_rendered_deployment_is_exactly_what_the_injector_produces(kustomization: str, mode: str):
    rendered = _without_hash(find(render(kustomization), "Deployment", "orders-reader"))
    plain = generate_k8s._example_deployment()
    injected = inject_object(plain, InjectOptions(mode=mode), where="example").injected  # type: ignore[arg-type]
    assert rendered == injected


def test_legacy_overlay_has_a_regular_sidecar_that_outlives_the_app():
    pod = find(render("overlays/legacy-sidecar"), "Deployment")["spec"]["template"]
    assert not pod["spec"].get("initContainers")
    first = pod["spec"]["containers"][0]
    assert first["name"] == CONTAINER_NAME and "restartPolicy" not in first
    assert first["lifecycle"]["postStart"]["exec"]["command"][:2] == ["python", "-c"]
    sleep = first["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == ["sleep", "30"]
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 30 + 25
    assert pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "app"


RESTRICTED_KUSTOMIZATIONS = ["base", "overlays/legacy-sidecar", "injector"]


@pytest.mark.parametrize("kustomization", RESTRICTED_KUSTOMIZATIONS)
def test_workloads_meet_restricted_pod_security_and_have_probes_and_resources(kustomization: str):
    templates = pod_templates(render(kustomization))
    assert templates
    for name, pod in templates:
        spec = pod["spec"]
        pod_sc = spec.get("securityContext", {})
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), f"{name}: {key}"
        assert not any("hostPath" in v for v in spec.get("volumes", [])), name
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name} container {c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            assert not sc.get("privileged"), where
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            resources = c.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), where
            if c.get("restartPolicy") == "Always" or c in spec["containers"]:
                assert "livenessProbe" in c and "readinessProbe" in c, where


# --- the injector ---------------------------------------------------------------------------


def test_injector_pieces_agree():
    docs = render("injector")
    namespace = find(docs, "Namespace")["metadata"]["name"]
    deploy = find(docs, "Deployment")
    pod = deploy["spec"]["template"]
    assert deploy["spec"]["replicas"] == 2
    pdb = find(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert 1 <= pdb["spec"]["minAvailable"] < deploy["spec"]["replicas"]
    service = find(docs, "Service")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    (svc_port,) = service["spec"]["ports"]
    assert svc_port["targetPort"] in port_names
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"][1:])
    assert container["args"][0] == "webhook"
    assert args["listen"].endswith(f":{port_names[svc_port['targetPort']]}")
    assert args["image"] == container["image"]  # the webhook injects its own image

    sa = find(docs, "ServiceAccount")
    assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert sa["automountServiceAccountToken"] is False
    assert not [
        d for d in docs if d["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    ]

    config = find(docs, "MutatingWebhookConfiguration")
    (hook,) = config["webhooks"]
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["failurePolicy"] == "Ignore" and args["failure-policy"] == "ignore"
    assert 1 <= hook["timeoutSeconds"] <= 10
    assert hook["objectSelector"] == {"matchLabels": {INJECT: "true"}}
    (expr,) = hook["namespaceSelector"]["matchExpressions"]
    assert expr["key"] == "kubernetes.io/metadata.name" and expr["operator"] == "NotIn"
    assert set(expr["values"]) == {namespace, "kube-system"}
    assert hook["rules"] == [
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
         "resources": ["pods"], "scope": "Namespaced"}
    ]  # fmt: skip
    ref = hook["clientConfig"]["service"]
    assert (ref["name"], ref["namespace"], ref["port"], ref["path"]) == (
        service["metadata"]["name"], namespace, svc_port["port"], "/mutate",
    )  # fmt: skip

    ca_from = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    cert_ns, cert_name = ca_from.split("/")
    cert = find(docs, "Certificate", cert_name)
    assert cert_ns == namespace == cert["metadata"]["namespace"]
    assert f"{service['metadata']['name']}.{namespace}.svc" in cert["spec"]["dnsNames"]
    assert "server auth" in cert["spec"]["usages"]
    secrets = {v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
    assert cert["spec"]["secretName"] in secrets
    issuer = find(docs, "Issuer", cert["spec"]["issuerRef"]["name"])
    ca_cert = find(docs, "Certificate", "format-proxy-injector-ca")
    assert issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"]
    assert ca_cert["spec"]["isCA"] is True
    for d in docs:
        if d["kind"] not in ("Namespace", "MutatingWebhookConfiguration"):
            assert d["metadata"]["namespace"] == namespace, d["metadata"]["name"]


# --- monitoring -----------------------------------------------------------------------------


def test_podmonitor_scrapes_every_injected_sidecar():
    docs = render("monitoring")
    monitor = find(docs, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"] == {"matchLabels": {INJECT: "true"}}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == METRICS_PORT_NAME and endpoint["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "format-proxy"} in (
        endpoint["relabelings"]
    )
    # ...and every injected pod carries that label (the injector sets it).
    pod = find(render("base"), "Deployment")["spec"]["template"]
    assert pod["metadata"]["labels"][INJECT] == "true"


def test_prometheusrule_equals_the_plain_rules_file(tmp_path: Path):
    rule = find(render("monitoring"), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    plain = yaml.safe_load((K8S / "monitoring" / "rules" / "format-proxy.rules.yaml").read_text())
    assert rule["spec"] == plain
    alerts = {r["alert"] for g in plain["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == {
        "FormatProxySidecarDown",
        "FormatProxyTranslationFailures",
        "FormatProxyShadowCheckFailures",
        "FormatProxyRefusingRequests",
        "FormatProxyHighErrorRatio",
        "FormatProxyHighLatencyP99",
    }
    # promtool accepts the rendered CR's groups, not only the source file.
    extracted = tmp_path / "from-prometheusrule.yaml"
    extracted.write_text(yaml.safe_dump(rule["spec"]))
    _promtool("check", "rules", str(extracted))


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not installed (apt-get install prometheus)"
    proc = subprocess.run(
        [promtool, *args], capture_output=True, text=True, check=False, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_promtool_check_rules():
    out = _promtool("check", "rules", "k8s/monitoring/rules/format-proxy.rules.yaml")
    assert "SUCCESS: 8 rules found" in out


def test_promtool_test_rules():
    out = _promtool("test", "rules", "tests/k8s/promtool/format-proxy.rules.test.yaml")
    assert "SUCCESS" in out


def test_promtool_test_rules_can_fail(tmp_path: Path):
    # The rule tests are real: a rules file with a changed threshold fails them.
    rules = (K8S / "monitoring" / "rules" / "format-proxy.rules.yaml").read_text()
    broken = rules.replace('up{job="format-proxy"} == 0', 'up{job="format-proxy"} == 2')
    assert broken != rules
    (tmp_path / "rules.yaml").write_text(broken)
    test = (ROOT / "tests/k8s/promtool/format-proxy.rules.test.yaml").read_text()
    test = test.replace("../../../k8s/monitoring/rules/format-proxy.rules.yaml", "rules.yaml")
    (tmp_path / "test.yaml").write_text(test)
    proc = subprocess.run(
        ["promtool", "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True,
        text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0 and "FormatProxySidecarDown" in proc.stdout + proc.stderr


def test_dashboard_configmap_is_generated_from_every_dashboard_file():
    configmap = find(render("monitoring"), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = sorted((K8S / "monitoring" / "dashboards").glob("*.json"))
    assert files
    assert configmap["data"] == {f.name: f.read_text() for f in files}


def test_kustomize_is_found():
    from tests.k8s.manifests import kustomize_command

    cmd = kustomize_command()
    assert Path(cmd[0]).name in ("kubectl", "kustomize")
    assert sys.executable  # the venv's bin is searched too


def test_transition_jobs_run_the_commands_they_describe():
    from proxy.app.cli import build_parser
    from proxy.transition.shard import Shard, parse_shard

    docs = render("jobs")
    job = find(docs, "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    [migrate] = spec["template"]["spec"]["containers"]
    args = build_parser().parse_args(migrate["args"])
    assert (args.command, args.route, args.to) == ("migrate", "orders", "json")
    count = spec["completions"]
    assert spec["parallelism"] == count
    # Every pod's index (JOB_COMPLETION_INDEX) picks a different shard of the same N.
    shards = {parse_shard(args.shard, {"JOB_COMPLETION_INDEX": str(i)}) for i in range(count)}
    assert shards == {Shard(i, count) for i in range(count)}
    assert spec["template"]["spec"]["restartPolicy"] == "Never"

    cron = find(docs, "CronJob")
    [scan] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    scan_args = build_parser().parse_args(scan["args"])
    assert scan_args.command == "scan" and scan_args.pushgateway.startswith("http")

    configmap = find(docs, "ConfigMap")
    for pod in (spec["template"]["spec"], cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]):
        [volume] = [v for v in pod["volumes"] if "configMap" in v]
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert "routes:" in configmap["data"]["config.yaml"]

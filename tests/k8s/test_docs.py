"""docs/kubernetes.md and docs/transition-runbook.md say what the manifests and code do."""

from __future__ import annotations

import re

import promql_parser
import pytest
import yaml

from proxy.app.cli import build_parser
from proxy.inject import options
from tests.k8s.dashboard import load as load_dashboard
from tests.k8s.dashboard import panels
from tests.k8s.manifests import K8S, ROOT, find, render
from tests.k8s.test_dashboard import _exported_names

KUBERNETES_RAW = (ROOT / "docs" / "kubernetes.md").read_text()
RUNBOOK_RAW = (ROOT / "docs" / "transition-runbook.md").read_text()
# Prose wraps anywhere: phrases are looked up in the text with whitespace collapsed.
KUBERNETES = " ".join(KUBERNETES_RAW.split())
RUNBOOK = " ".join(RUNBOOK_RAW.split())
DOCS = {"kubernetes.md": KUBERNETES, "transition-runbook.md": RUNBOOK}


def test_ports_match_code_dockerfile_and_manifests():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {options.DATA_PORT} {options.METRICS_PORT}" in dockerfile
    assert f"http://127.0.0.1:{options.DATA_PORT}" in KUBERNETES
    assert f"FORMAT_PROXY_LISTEN=127.0.0.1:{options.DATA_PORT}" in KUBERNETES
    assert f"FORMAT_PROXY_METRICS_LISTEN=0.0.0.0:{options.METRICS_PORT}" in KUBERNETES
    assert f"`{options.METRICS_PORT_NAME}` ({options.METRICS_PORT})" in KUBERNETES
    monitor = find(render("monitoring"), "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == options.METRICS_PORT_NAME
    # Every port number the page mentions is one of ours.
    for port in set(re.findall(r"\b1\d{4}\b", KUBERNETES)):
        assert int(port) in (options.DATA_PORT, options.METRICS_PORT, options.RUN_AS), port


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_format_proxy_io_key_in_the_docs_exists(name: str):
    known = {options.INJECT, options.APP_VERSION, options.CONFIG, options.MODE, options.STATUS}
    mentioned = set(re.findall(r"format-proxy\.io/[a-z-]+", DOCS[name]))
    assert mentioned <= known, mentioned - known


def test_every_annotation_and_label_is_documented():
    for key in (options.INJECT, options.APP_VERSION, options.CONFIG, options.MODE, options.STATUS,
                options.VERSION_LABEL, options.DEFAULT_CONTAINER):  # fmt: skip
        assert f"`{key}`" in KUBERNETES, key


def test_monitoring_claims():
    docs = render("monitoring")
    for kind in ("PodMonitor", "PrometheusRule"):
        release = find(docs, kind)["metadata"]["labels"]["release"]
        assert f"`release: {release}`" in KUBERNETES
    configmap = find(docs, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert 'labelled `grafana_dashboard: "1"`' in KUBERNETES
    assert f"ConfigMap `{configmap['metadata']['name']}`" in KUBERNETES
    assert configmap["metadata"]["namespace"] == "monitoring"
    rules = yaml.safe_load((K8S / "monitoring/rules/format-proxy.rules.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    records = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    documented = set(re.findall(r"`(FormatProxy\w+)`", KUBERNETES))
    assert documented == alerts
    for record in records:
        assert f"`{record}`" in KUBERNETES
    assert f"uid `{load_dashboard()['uid']}`" in KUBERNETES


def test_injector_claims():
    docs = render("injector")
    hook = find(docs, "MutatingWebhookConfiguration")["webhooks"][0]
    assert f"`failurePolicy: {hook['failurePolicy']}`" in KUBERNETES
    assert f"| `timeoutSeconds` | `{hook['timeoutSeconds']}` |" in KUBERNETES
    assert f"webhook `{hook['name']}`" in KUBERNETES
    namespace = find(docs, "Namespace")["metadata"]["name"]
    assert f"namespace `{namespace}`" in KUBERNETES
    assert f"NotIn [{', '.join(hook['namespaceSelector']['matchExpressions'][0]['values'])}]" in (
        KUBERNETES
    )
    deploy = find(docs, "Deployment")
    assert f"**{deploy['spec']['replicas']} replicas**" in KUBERNETES
    assert find(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert "(`minAvailable: 1`)" in KUBERNETES
    ca_from = find(docs, "MutatingWebhookConfiguration")["metadata"]["annotations"][
        "cert-manager.io/inject-ca-from"
    ]
    assert ca_from in KUBERNETES


def test_shutdown_budget_claims():
    pod = find(render("base"), "Deployment")["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    assert f"`terminationGracePeriodSeconds: {grace}` (30 + 25 + 5)" in KUBERNETES
    assert grace == 30 + 25 + options.SHUTDOWN_MARGIN
    assert "terminationGracePeriodSeconds = app drain + proxy drain + 5" in KUBERNETES


def test_sidecar_resources_and_identity_claims():
    pod = find(render("base"), "Deployment")["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["initContainers"] if c["name"] == options.CONTAINER_NAME)
    r = sidecar["resources"]
    assert (
        f"requests `cpu: {r['requests']['cpu']}, memory: {r['requests']['memory']}`" in KUBERNETES
    )
    assert f"limits `cpu: {r['limits']['cpu']}, memory: {r['limits']['memory']}`" in KUBERNETES
    assert f"UID/GID {options.RUN_AS}" in KUBERNETES
    assert f"USER {options.RUN_AS}:{options.RUN_AS}" in KUBERNETES
    base = (ROOT / "Dockerfile").read_text().split("\n")
    image = next(line.split()[1] for line in base if line.startswith("FROM "))
    assert f"`{image}`" in KUBERNETES


@pytest.mark.parametrize("name", sorted(DOCS))
def test_paths_mentioned_exist(name: str):
    for path in set(re.findall(r"`((?:k8s|config|tests|docs|proxy)/[\w./*-]+)`", DOCS[name])):
        path = path.rstrip(".")
        if "*" in path:
            assert list(ROOT.glob(path)), path
        else:
            assert (ROOT / path).exists(), path


@pytest.mark.parametrize("name", sorted(DOCS))
def test_metric_names_mentioned_exist(name: str):
    from proxy.transition.scan import STORED_BYTES, STORED_OBJECTS

    exported = _exported_names() | {
        "route:format_proxy_reads_translated:ratio_rate5m",
        "route_direction:format_proxy_translations:rate5m",
        STORED_OBJECTS,  # pushed by `format-proxy scan --pushgateway`
        STORED_BYTES,
    }
    for metric in set(re.findall(r"\b(?:route\w*:)?format_proxy_[\w:]+", DOCS[name])):
        if metric.startswith("format_proxy_") and metric.endswith("_seconds"):
            metric += "_bucket"  # histograms are named by their family in prose
        assert metric in exported, metric


def test_runbook_promql_parses_and_names_dashboard_panels():
    blocks = re.findall(r"```promql\n(.*?)```", RUNBOOK_RAW, flags=re.S)
    assert len(blocks) >= 6
    for block in blocks:
        promql_parser.parse(block)
    titles = {p["title"] for p in panels(load_dashboard())}
    quoted = set(re.findall(r'[Pp]anels? "([^"]+)"', RUNBOOK)) | set(
        re.findall(r'"([^"]+)":', RUNBOOK)
    )
    quoted |= set(re.findall(r'panel\s+"([^"]+)"', RUNBOOK))
    mentioned = {t for t in re.findall(r'"([^"]+)"', RUNBOOK) if t in titles}
    assert mentioned, "the runbook names no dashboard panel"
    for title in quoted:
        assert title in titles, title
    for phase in range(6):
        assert f"## Phase {phase}:" in RUNBOOK
    # Shadow mode comes first: the route is checked before it translates anything.
    assert RUNBOOK.index("## Phase 0: shadow") < RUNBOOK.index("## Phase 0, active:")
    assert RUNBOOK.index("## Phase 0, active:") < RUNBOOK.index("## Phase 1:")
    for heading in ("**Change.**", "**Watch.**", "**Roll back.**"):
        assert RUNBOOK.count(heading) == 7, heading
    assert RUNBOOK.count("**Safe to go on**") == 6


def test_route_in_the_runbook_is_config_k8s_yaml():
    route = yaml.safe_load((ROOT / "config" / "k8s.yaml").read_text())["routes"][0]
    snippet = yaml.safe_load(re.search(r"```yaml\n(.*?)```", RUNBOOK_RAW, flags=re.S).group(1))
    (documented,) = snippet["routes"]
    assert documented == {k: route[k] for k in documented}


def test_cli_flags_mentioned_exist():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    flags = set()
    for command in ("inject", "webhook"):
        for action in sub.choices[command]._actions:
            flags |= set(action.option_strings)
    mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", KUBERNETES))
    # Flags of other tools in examples (aws-cli, kubectl, kubernetes-validate).
    mentioned -= {"--recursive", "--from-file", "--strict"}
    assert mentioned <= flags, mentioned - flags

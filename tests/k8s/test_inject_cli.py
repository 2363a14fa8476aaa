"""``format-proxy inject`` as a real process on multi-document workload YAML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from proxy.inject import InjectOptions, inject_stream
from proxy.inject.options import CONTAINER_NAME, ENDPOINT, STATUS
from proxy.inject.stream import split_documents
from proxy.inject.workloads import TEMPLATE_PATHS

FIXTURES = Path(__file__).parent / "fixtures" / "inject"
WORKLOADS = FIXTURES / "workloads.yaml"
CLI = [str(Path(sys.executable).parent / "format-proxy"), "inject"]

#: Documents of workloads.yaml (1-based) that opt in.
OPTED_IN = {"Pod/debug", "Deployment/orders-reader", "StatefulSet/orders-archive",
            "DaemonSet/node-reporter", "ReplicaSet/orders-canary", "Job/orders-backfill",
            "CronJob/orders-report"}  # fmt: skip


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def key(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def template(obj: dict[str, Any]) -> dict[str, Any]:
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    node = obj
    for part in TEMPLATE_PATHS[(group, obj["kind"])]:
        node = node[part]
    return node


@pytest.fixture(scope="module")
def native_output() -> str:
    proc = run("-f", str(WORKLOADS))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def test_untouched_documents_are_byte_for_byte(native_output: str):
    source = split_documents(WORKLOADS.read_text())
    result = split_documents(native_output)
    assert len(source) == len(result)
    unchanged = 0
    for before, after in zip(source, result, strict=True):
        obj = yaml.safe_load(before.text)
        if key(obj) in OPTED_IN:
            assert before.text != after.text
        else:
            assert before.text == after.text, key(obj)
            unchanged += 1
    assert unchanged == 4  # Namespace, ConfigMap, the plain Deployment, Service
    assert native_output.endswith("# a trailing comment after the last document\n")
    assert "metadata: {name: shop}     # flow style and this comment survive\n" in native_output


def test_every_workload_kind_is_injected_and_valid(native_output: str):
    seen = set()
    for obj in yaml.safe_load_all(native_output):
        kubernetes_validate.validate(obj, "1.33", strict=True)
        if key(obj) not in OPTED_IN:
            continue
        seen.add(key(obj))
        pod = template(obj)
        inits = pod["spec"]["initContainers"]
        sidecars = [c for c in inits if c["name"] == CONTAINER_NAME]
        assert len(sidecars) == 1 and sidecars[0]["restartPolicy"] == "Always"
        for c in pod["spec"]["containers"]:
            assert {"name": "AWS_ENDPOINT_URL_S3", "value": ENDPOINT} in c["env"]
        assert json.loads(pod["metadata"]["annotations"][STATUS])["mode"] == "native"
        assert pod["metadata"]["labels"]["format-proxy.io/inject"] == "true"
    assert seen == OPTED_IN


def test_existing_env_init_containers_and_annotations_are_kept(native_output: str):
    docs = {key(d): d for d in yaml.safe_load_all(native_output)}
    pod = template(docs["Deployment/orders-reader"])
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["spec"]["serviceAccountName"] == "orders"
    inits = pod["spec"]["initContainers"]
    # Our sidecar starts before the regular init container, which can then use the proxy.
    assert [c["name"] for c in inits] == [CONTAINER_NAME, "wait-for-db"]
    assert inits[1]["args"] == ["--db", "orders-db:5432"]
    assert inits[1]["env"] == [{"name": "AWS_ENDPOINT_URL_S3", "value": ENDPOINT}]
    env = pod["spec"]["containers"][0]["env"]
    assert env[:2] == [
        {"name": "DB_HOST", "value": "orders-db"},
        {"name": "AWS_REGION", "valueFrom": {"configMapKeyRef": {"name": "aws", "key": "region"}}},
    ]
    archive = template(docs["StatefulSet/orders-archive"])["spec"]
    assert archive["terminationGracePeriodSeconds"] == 120 + 25 + 5
    assert {"name": "format-proxy-config", "configMap": {"name": "archive-proxy-config"}} in (
        archive["volumes"]
    )


def test_injection_is_idempotent(native_output: str):
    again = run("-f", "-", stdin=native_output)
    assert again.returncode == 0, again.stderr
    assert again.stdout == native_output


def test_legacy_mode_refuses_jobs_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "out.yaml"
    proc = run("--legacy", "-f", str(WORKLOADS), "-o", str(out))
    assert proc.returncode == 1
    assert "document 9 (Job/orders-backfill)" in proc.stderr
    assert "restartPolicy Never would never complete" in proc.stderr
    assert proc.stdout == "" and not out.exists()


def test_legacy_mode_output_validates_for_1_28(tmp_path: Path):
    # Without the run-to-completion workloads, legacy mode injects everything else.
    docs = split_documents(WORKLOADS.read_text())
    keep = [d.text for d in docs if yaml.safe_load(d.text)["kind"] not in ("Job", "CronJob")]
    src = tmp_path / "in.yaml"
    src.write_text("".join(keep))
    out = tmp_path / "out.yaml"
    proc = run("--legacy", "-f", str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    injected = 0
    for obj in yaml.safe_load_all(out.read_text()):
        kubernetes_validate.validate(obj, "1.28", strict=True)
        if key(obj) in OPTED_IN:
            pod = template(obj)
            first = pod["spec"]["containers"][0]
            assert first["name"] == CONTAINER_NAME and "restartPolicy" not in first
            assert first["lifecycle"]["postStart"]["exec"]["command"][:2] == ["python", "-c"]
            assert "initContainers" not in pod["spec"] or all(
                c["name"] != CONTAINER_NAME for c in pod["spec"]["initContainers"]
            )
            injected += 1
    assert injected == 5


def test_options_are_applied(native_output: str):
    proc = run("--image", "registry.example.com/fp:9", "--config-map", "shared-proxy",
               "--proxy-grace-seconds", "40", "-f", str(WORKLOADS))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pod = template(next(d for d in yaml.safe_load_all(proc.stdout) if key(d) == "Pod/debug"))
    assert pod["spec"]["initContainers"][0]["image"] == "registry.example.com/fp:9"
    assert {"name": "format-proxy-config", "configMap": {"name": "shared-proxy"}} in (
        pod["spec"]["volumes"]
    )
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30 + 40 + 5


def test_invalid_yaml_is_a_clear_error():
    bad = "apiVersion: v1\nkind: List\n---\nkind: Pod\nmetadata: x\n  name: y\n"
    proc = run("-f", "-", stdin=bad)
    assert proc.returncode == 1
    assert "document 2 (line 6): not valid YAML: mapping values are not allowed" in proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "/nonexistent/x.yaml"], "cannot read /nonexistent/x.yaml"),
        (["--config-map", "Not_A_Name", "-f", "-"], "not a valid ConfigMap name"),
    ],
)
def test_bad_arguments_are_clear_errors(args: list[str], message: str):
    proc = run(*args, stdin="")
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_opted_in_pod_without_containers_is_an_error():
    doc = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {format-proxy.io/inject: 'true'}\nspec: {containers: []}\n"  # noqa: E501
    proc = run(stdin=doc)
    assert proc.returncode == 1
    assert "document 1 (Pod/p): spec.containers is empty" in proc.stderr


def test_bad_mode_annotation_is_an_error():
    annotations = {"format-proxy.io/inject": "true", "format-proxy.io/mode": "sideways"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": annotations},
           "spec": {"containers": [{"name": "a", "image": "a"}]}}  # fmt: skip
    doc = yaml.safe_dump(pod)
    proc = run(stdin=doc)
    assert proc.returncode == 1
    assert "format-proxy.io/mode must be 'native' or 'legacy', got 'sideways'" in proc.stderr


def test_missing_declared_version_warns():
    doc = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {format-proxy.io/inject: 'true'}\nspec: {containers: [{name: a, image: a}]}\n"  # noqa: E501
    proc = run(stdin=doc)
    assert proc.returncode == 0
    assert "warning: document 1 (Pod/p): no declared version" in proc.stderr
    assert yaml.safe_load(proc.stdout)["spec"]["initContainers"][0]["name"] == CONTAINER_NAME


def test_json_input_stays_json_and_lists_are_walked():
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "labels": {"format-proxy.io/inject": "true",
                                                "app.kubernetes.io/version": "v1"}},
           "spec": {"containers": [{"name": "a", "image": "a"}]}}  # fmt: skip
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    doc = {"apiVersion": "v1", "kind": "List", "items": [other, pod]}
    proc = run(stdin=json.dumps(doc))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["items"][0] == other
    assert out["items"][1]["spec"]["initContainers"][0]["name"] == CONTAINER_NAME


def test_split_documents_is_lossless_and_exact():
    text = "%YAML 1.1\n---\na: 1\n...\n# c\n---\nb: |\n  --- not a marker\n---\r\nc: 3"
    docs = split_documents(text)
    assert "".join(d.text for d in docs) == text
    assert [yaml.safe_load(d.text) for d in docs] == [
        {"a": 1},
        None,
        {"b": "--- not a marker\n"},
        {"c": 3},
    ]
    assert [d.first_line for d in docs] == [1, 5, 6, 9]


def test_library_and_cli_agree(native_output: str):
    result = inject_stream(WORKLOADS.read_text(), InjectOptions())
    assert result.text == native_output
    assert result.injected == len(OPTED_IN)


def test_host_network_pods_are_refused():
    doc = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {format-proxy.io/inject: 'true'}\nspec: {hostNetwork: true, containers: [{name: a, image: a}]}\n"  # noqa: E501
    proc = run(stdin=doc)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "document 1 (Pod/p): hostNetwork pods share the node's loopback" in proc.stderr


def test_an_endpoint_from_value_from_is_replaced_with_a_warning():
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "labels": {"format-proxy.io/inject": "true",
                                                "app.kubernetes.io/version": "v1"}},
           "spec": {"containers": [{"name": "a", "image": "a", "env": [
               {"name": "AWS_ENDPOINT_URL_S3",
                "valueFrom": {"configMapKeyRef": {"name": "s3", "key": "url"}}}]}]}}  # fmt: skip
    proc = run(stdin=yaml.safe_dump(pod))
    assert proc.returncode == 0, proc.stderr
    assert "took AWS_ENDPOINT_URL_S3 from valueFrom" in proc.stderr
    out = yaml.safe_load(proc.stdout)
    assert out["spec"]["containers"][0]["env"] == [
        {"name": "AWS_ENDPOINT_URL_S3", "value": ENDPOINT}
    ]
    sidecar_env = {e["name"] for e in out["spec"]["initContainers"][0]["env"]}
    assert "FORMAT_PROXY_UPSTREAM" not in sidecar_env

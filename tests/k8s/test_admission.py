"""Golden tests of the admission webhook logic on AdmissionReview v1 fixtures.

Each ``fixtures/admission/<case>.review.json`` is a review as the API server sends it (a pod
created by a ReplicaSet: ``generateName``, no ``metadata.namespace``, defaulted fields, a
projected service-account volume). ``<case>.expected.json`` is the response with its patch
decoded. Regenerate after an intended change with ``UPDATE_GOLDEN=1`` and review the diff.
Every patch is applied with ``jsonpatch`` and the patched pod validated for Kubernetes 1.33.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest

from proxy.errors import InjectionError
from proxy.inject import InjectOptions, review_response
from proxy.inject.options import CONTAINER_NAME, ENDPOINT, STATUS

FIXTURES = Path(__file__).parent / "fixtures" / "admission"
CASES = sorted(p.name.removesuffix(".review.json") for p in FIXTURES.glob("*.review.json"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def load_review(case: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{case}.review.json").read_text())


def answer(review: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    outcome = review_response(json.dumps(review).encode(), InjectOptions(), **kw)
    assert outcome.review["apiVersion"] == "admission.k8s.io/v1"
    assert outcome.review["kind"] == "AdmissionReview"
    response = dict(outcome.review["response"])
    assert response["uid"] == review["request"]["uid"]
    ops: list[dict[str, Any]] = []
    if "patch" in response:
        assert response.pop("patchType") == "JSONPatch"
        ops = json.loads(base64.b64decode(response.pop("patch"), validate=True))
    return response, ops


def patched_pod(review: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    pod = jsonpatch.apply_patch(review["request"]["object"], ops, in_place=False)
    kubernetes_validate.validate(pod, "1.33", strict=True)
    return pod


def test_fixtures_present():
    assert len(CASES) >= 9, CASES


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str):
    review = load_review(case)
    response, ops = answer(review)
    got = {"response": response, "patch": ops}
    golden = FIXTURES / f"{case}.expected.json"
    if UPDATE:
        golden.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    assert got == json.loads(golden.read_text()), f"{case}: response differs from {golden.name}"
    if ops:
        pod = patched_pod(review, ops)
        names = [
            c["name"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
        ]
        assert names.count(CONTAINER_NAME) == 1
        assert STATUS in pod["metadata"]["annotations"]
        # The patched pod is a fixed point: the webhook leaves it alone the second time.
        again = json.loads(json.dumps(review))
        again["request"]["object"] = pod
        response2, ops2 = answer(again)
        assert response2["allowed"] is True and ops2 == []


def _sidecar(pod: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    for where in ("initContainers", "containers"):
        for i, c in enumerate(pod["spec"].get(where, [])):
            if c["name"] == CONTAINER_NAME:
                return where, i, c
    raise AssertionError("no sidecar")


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_generate_name_without_namespace_is_injected_as_native_sidecar():
    review = load_review("generate-name-no-namespace")
    obj = review["request"]["object"]
    assert "name" not in obj["metadata"] and "namespace" not in obj["metadata"]
    response, ops = answer(review)
    assert response["allowed"] is True
    pod = patched_pod(review, ops)
    where, index, sidecar = _sidecar(pod)
    assert (where, index, sidecar["restartPolicy"]) == ("initContainers", 0, "Always")
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/readyz"
    version = _env(sidecar)["FORMAT_PROXY_APP_VERSION"]
    assert version == {"fieldRef": {"fieldPath": "metadata.labels['app.kubernetes.io/version']"}}
    app = pod["spec"]["containers"][0]
    assert _env(app) == {"LOG_LEVEL": "info", "AWS_ENDPOINT_URL_S3": ENDPOINT}  # existing env kept
    assert pod["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]  # kept
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30 + 25 + 5
    # The service-account volume and mount stay; ours are added.
    assert [v["name"] for v in pod["spec"]["volumes"]] == [
        "kube-api-access-x7k2p",
        "format-proxy-config",
        "format-proxy-tmp",
    ]


def test_pod_without_annotations_map_gets_one():
    review = load_review("no-annotations")
    assert "annotations" not in review["request"]["object"]["metadata"]
    _, ops = answer(review)
    assert (ops[-1]["op"], ops[-1]["path"]) == ("add", "/metadata/annotations")
    pod = patched_pod(review, ops)
    assert list(pod["metadata"]["annotations"]) == [STATUS]
    assert _env(pod["spec"]["containers"][0]) == {"AWS_ENDPOINT_URL_S3": ENDPOINT}


def test_already_injected_pod_is_left_alone():
    review = load_review("already-injected")
    response, ops = answer(review)
    assert ops == [] and response == {"uid": review["request"]["uid"], "allowed": True}


def test_annotation_keys_with_slash_are_json_pointer_escaped():
    review = load_review("slash-annotation-keys")
    _, ops = answer(review)
    paths = [op["path"] for op in ops]
    assert "/metadata/annotations/format-proxy.io~1status" in paths
    assert "/metadata/labels/format-proxy.io~1inject" not in paths  # label already "true"
    pod = patched_pod(review, ops)
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["example.com/owner~team"] == "payments"
    _, _, sidecar = _sidecar(pod)
    assert _env(sidecar)["FORMAT_PROXY_APP_VERSION"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['format-proxy.io/app-version']"}
    }


def test_existing_native_sidecars_start_first_and_init_containers_use_the_proxy():
    review = load_review("existing-native-sidecars")
    _, ops = answer(review)
    pod = patched_pod(review, ops)
    inits = pod["spec"]["initContainers"]
    assert [c["name"] for c in inits] == ["mesh-proxy", "log-shipper", CONTAINER_NAME, "migrate"]
    assert "env" not in inits[0] and "env" not in inits[1]  # other sidecars untouched
    assert _env(inits[3]) == {"AWS_ENDPOINT_URL_S3": ENDPOINT}
    # The app's own endpoint becomes the proxy's upstream.
    assert _env(pod["spec"]["containers"][0]) == {"AWS_ENDPOINT_URL_S3": ENDPOINT}
    assert _env(inits[2])["FORMAT_PROXY_UPSTREAM"] == "https://s3.eu-west-1.amazonaws.com"


def test_legacy_mode_puts_a_regular_container_first():
    review = load_review("legacy-mode")
    _, ops = answer(review)
    pod = patched_pod(review, ops)
    where, index, sidecar = _sidecar(pod)
    assert (where, index) == ("containers", 0)
    assert "restartPolicy" not in sidecar
    assert sidecar["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "45"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 45 + 25 + 5
    assert pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "app"
    for app in pod["spec"]["containers"][1:]:
        assert _env(app)["AWS_ENDPOINT_URL_S3"] == ENDPOINT


def test_malformed_review_is_admitted_with_a_clear_warning():
    review = load_review("malformed-no-spec")
    response, ops = answer(review)
    assert ops == []
    assert response["allowed"] is True
    assert "request.object is missing or is not a Pod with a spec" in response["warnings"][0]
    assert response["auditAnnotations"]["error"]


def test_malformed_review_is_denied_under_fail_policy():
    response, ops = answer(load_review("malformed-no-spec"), policy="fail")
    assert ops == [] and response["allowed"] is False
    assert response["status"]["code"] == 400
    assert "not a Pod with a spec" in response["status"]["message"]


def test_legacy_sidecar_in_a_job_pod_is_refused_with_reason():
    response, ops = answer(load_review("legacy-job-refused"))
    assert ops == [] and response["allowed"] is True
    assert "restartPolicy Never would never complete" in response["warnings"][0]


def test_annotation_opt_out_beats_the_label():
    response, ops = answer(load_review("annotation-opt-out"))
    assert ops == [] and response["allowed"] is True and "warnings" not in response


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "no 'request'"),
        (b'{"request": {"object": {}}}', "request.uid is missing"),
        (b"\xff\xfe", "request body is not JSON"),
    ],
)
def test_unanswerable_bodies_raise(body: bytes, message: str):
    with pytest.raises(InjectionError, match=message):
        review_response(body, InjectOptions())


def test_wrong_api_version_is_answered_per_policy():
    review = load_review("no-annotations")
    review["apiVersion"] = "admission.k8s.io/v1beta1"
    response, ops = answer(review)
    assert ops == [] and response["allowed"] is True
    assert "expected apiVersion admission.k8s.io/v1" in response["warnings"][0]


def test_non_pod_and_non_create_requests_pass_untouched():
    review = load_review("no-annotations")
    review["request"]["operation"] = "UPDATE"
    assert answer(review) == ({"uid": review["request"]["uid"], "allowed": True}, [])
    review = load_review("no-annotations")
    review["request"]["subResource"] = "ephemeralcontainers"
    assert answer(review)[1] == []


def test_validation_catches_a_broken_pod():
    # The validator the golden tests rely on really rejects an invalid pod.
    review = load_review("no-annotations")
    _, ops = answer(review)
    ops.append({"op": "add", "path": "/spec/initContainers/0/restartPolicy", "value": 7})
    with pytest.raises(kubernetes_validate.ValidationError):
        patched_pod(review, ops)

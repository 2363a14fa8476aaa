"""The sidecar container and volumes the injector adds (pure data, no I/O).

``k8s/base`` ships exactly what these functions build (a test compares them), so a change here
is a change to the reference manifests too: regenerate with ``tests/tools/generate_k8s.py``.
"""

from __future__ import annotations

from typing import Any

from proxy.inject.options import (
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_VOLUME,
    CONTAINER_NAME,
    DATA_PORT,
    METRICS_PORT,
    METRICS_PORT_NAME,
    RUN_AS,
    SHUTDOWN_MARGIN,
    TMP_DIR,
    TMP_VOLUME,
)

#: Requests sized for passthrough traffic; the memory limit must cover the translation cache
#: and the largest translated document (``limits`` in the proxy config; see docs/kubernetes.md).
RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "96Mi"},
    "limits": {"cpu": "1", "memory": "384Mi"},
}

#: Scratch space for multipart uploads spooled on translating routes (``TMPDIR``).
TMP_SIZE_LIMIT = "1Gi"

#: Legacy mode: a ``postStart`` hook that blocks until the proxy is ready. The kubelet starts a
#: pod's containers in order and waits for each postStart hook, so the app (listed after the
#: proxy) starts only once the proxy answers. argv[1] = attempts, 0.5 s apart.
WAIT_READY_SCRIPT = (
    "import sys,time,urllib.request as u\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    try:\n"
    f"        u.urlopen('http://127.0.0.1:{METRICS_PORT}/readyz', timeout=1)\n"
    "        sys.exit(0)\n"
    "    except OSError:\n"
    "        time.sleep(0.5)\n"
    "sys.exit(1)\n"
)
WAIT_READY_ATTEMPTS = 120


def termination_grace(app_grace: int, proxy_grace: int) -> int:
    """The pod's ``terminationGracePeriodSeconds``: app drain, then proxy drain, then a margin.

    Native sidecars get SIGTERM only after every app container has exited; a legacy sidecar
    sleeps through the app's drain in ``preStop`` before it gets SIGTERM. Either way the two
    drains happen one after the other and the budget is their sum.
    """
    return app_grace + proxy_grace + SHUTDOWN_MARGIN


def _probe(path: str, *, period: int, failures: int, timeout: int = 1) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": METRICS_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def sidecar_container(
    *,
    image: str,
    native: bool,
    version_field: str,
    upstream: str | None = None,
    app_grace: int = 30,
) -> dict[str, Any]:
    """The format-proxy container.

    ``version_field`` is the Downward API ``fieldPath`` the declared version comes from;
    ``upstream`` a real S3 endpoint taken over from the app's own ``AWS_ENDPOINT_URL_S3``;
    ``app_grace`` the app's drain time (legacy mode keeps the proxy up that long on shutdown).
    """
    env: list[dict[str, Any]] = [
        {"name": "FORMAT_PROXY_CONFIG", "value": CONFIG_FILE},
        {
            "name": "FORMAT_PROXY_APP_VERSION",
            "valueFrom": {"fieldRef": {"fieldPath": version_field}},
        },
        {"name": "FORMAT_PROXY_LISTEN", "value": f"127.0.0.1:{DATA_PORT}"},
        {"name": "FORMAT_PROXY_METRICS_LISTEN", "value": f"0.0.0.0:{METRICS_PORT}"},
        {"name": "TMPDIR", "value": TMP_DIR},
    ]
    if upstream is not None:
        env.append({"name": "FORMAT_PROXY_UPSTREAM", "value": upstream})
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["serve"],
    }
    if native:
        # A native sidecar: started before the app, stopped after it (Kubernetes >= 1.29).
        container["restartPolicy"] = "Always"
    container |= {
        "env": env,
        "ports": [{"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"}],
        # Native mode: the kubelet starts the app only once this probe has passed.
        "startupProbe": _probe("/readyz", period=1, failures=60),
        "readinessProbe": _probe("/readyz", period=5, failures=3),
        "livenessProbe": _probe("/healthz", period=10, failures=3, timeout=2),
        "resources": {k: dict(v) for k, v in RESOURCES.items()},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": TMP_VOLUME, "mountPath": TMP_DIR},
        ],
    }
    if not native:
        container["lifecycle"] = {
            "postStart": {
                "exec": {"command": ["python", "-c", WAIT_READY_SCRIPT, str(WAIT_READY_ATTEMPTS)]}
            },
            # All containers get SIGTERM at once: keep serving while the app drains.
            "preStop": {"exec": {"command": ["sleep", str(app_grace)]}},
        }
    return container


def sidecar_volumes(config_map: str) -> list[dict[str, Any]]:
    """The config (read-only ConfigMap) and scratch (emptyDir behind ``TMPDIR``) volumes."""
    return [
        {"name": CONFIG_VOLUME, "configMap": {"name": config_map}},
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
    ]

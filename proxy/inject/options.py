"""Names and defaults the injector, the manifests and the docs share.

Annotation and label keys are a public contract: users put them on pod templates, the webhook's
``objectSelector`` and the PodMonitor select on them, and ``docs/kubernetes.md`` documents them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from proxy import __version__

#: Label *or* annotation ``"true"`` opts a pod in. The webhook's objectSelector can only see
#: labels, so for the webhook the label is what counts; the CLI honours either (an annotation
#: overrides the label, so ``"false"`` there opts a labelled pod out).
INJECT = "format-proxy.io/inject"
#: Annotation: the declared version, when it is not the ``app.kubernetes.io/version`` label.
APP_VERSION = "format-proxy.io/app-version"
#: Annotation: name of the ConfigMap holding ``config.yaml`` (and its schema files).
CONFIG = "format-proxy.io/config"
#: Annotation: ``native`` (init container with ``restartPolicy: Always``) or ``legacy``.
MODE = "format-proxy.io/mode"
#: Annotation written by the injector; its presence makes injection idempotent.
STATUS = "format-proxy.io/status"
#: The standard label the declared version is read from by default (Downward API).
VERSION_LABEL = "app.kubernetes.io/version"
#: Tells ``kubectl logs/exec`` which container to default to (set in legacy mode, where the
#: sidecar is the first regular container).
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"

CONTAINER_NAME = "format-proxy"
CONFIG_VOLUME = "format-proxy-config"
TMP_VOLUME = "format-proxy-tmp"
DEFAULT_CONFIG_MAP = "format-proxy-config"
CONFIG_DIR = "/etc/format-proxy"
CONFIG_FILE = f"{CONFIG_DIR}/config.yaml"
TMP_DIR = "/tmp"

DATA_PORT = 15480
METRICS_PORT = 15490
METRICS_PORT_NAME = "proxy-metrics"
ENDPOINT_ENV = "AWS_ENDPOINT_URL_S3"
ENDPOINT = f"http://127.0.0.1:{DATA_PORT}"

#: The image's fixed non-root UID/GID (see the Dockerfile).
RUN_AS = 10001

#: Kubernetes' own default for ``terminationGracePeriodSeconds``.
KUBERNETES_DEFAULT_GRACE = 30
#: Seconds added on top of app drain + proxy drain for signal delivery and process exit.
SHUTDOWN_MARGIN = 5

Mode = Literal["native", "legacy"]
MODES: tuple[Mode, ...] = ("native", "legacy")

# Image tags allow [A-Za-z0-9_.-]; a local version such as ``0.1.0+local`` does not qualify.
DEFAULT_IMAGE = "format-proxy:" + re.sub(r"[^A-Za-z0-9_.-]", "-", __version__)

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


def is_dns_subdomain(name: str) -> bool:
    """Whether ``name`` is a valid ConfigMap (DNS-1123 subdomain) name."""
    return len(name) <= 253 and bool(_DNS1123_SUBDOMAIN.match(name))


@dataclass(frozen=True)
class InjectOptions:
    """Cluster-wide defaults of one injector (CLI flags or webhook flags)."""

    image: str = DEFAULT_IMAGE
    mode: Mode = "native"
    config_map: str = DEFAULT_CONFIG_MAP
    #: The proxy's ``shutdown_grace_seconds`` (its config default is 25).
    proxy_grace_seconds: int = 25

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not is_dns_subdomain(self.config_map):
            raise ValueError(f"not a valid ConfigMap name: {self.config_map!r}")
        if self.proxy_grace_seconds < 0:
            raise ValueError("proxy_grace_seconds must not be negative")
        if not self.image or any(c.isspace() for c in self.image):
            raise ValueError(f"not a container image reference: {self.image!r}")

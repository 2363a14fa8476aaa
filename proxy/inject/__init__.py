"""Sidecar injection: one pure patch logic shared by ``format-proxy inject`` and the webhook.

- :mod:`proxy.inject.patch` — pod in, RFC 6902 JSON Patch out (the shared logic).
- :mod:`proxy.inject.workloads` — finds the pod template of Deployments, Jobs, CronJobs, ...
- :mod:`proxy.inject.stream` — multi-document YAML, untouched documents kept byte-for-byte.
- :mod:`proxy.inject.admission` — AdmissionReview v1 in, AdmissionReview v1 out.
- :mod:`proxy.inject.server` — the aiohttp TLS server (the only module here doing I/O).
"""

from proxy.inject.admission import review_response
from proxy.inject.options import InjectOptions
from proxy.inject.patch import PodPatch, plan_pod_patch
from proxy.inject.stream import inject_stream
from proxy.inject.workloads import inject_object

__all__ = [
    "InjectOptions",
    "PodPatch",
    "inject_object",
    "inject_stream",
    "plan_pod_patch",
    "review_response",
]

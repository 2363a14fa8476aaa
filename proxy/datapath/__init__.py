"""The translating data path: objects on routes, in the format of the pod's version.

See ``docs/datapath.md`` for the behaviour, every difference from plain S3, and the metrics.
"""

from proxy.datapath.handler import TranslatingHandler

__all__ = ["TranslatingHandler"]
